/**
 * A throwaway Functions project built from TypeScript fixture functions, for tests that start the local host on
 * something other than the app: each fixture transpiled to `dist/functions/*.js`, a package.json whose `main` glob
 * names them, and the given host.json.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { appRoot } from '../../shared/platform/packageInfo';

/** Builds the project `name` under `.test-run/` from the fixtures in `sources`; returns its root. */
export function buildFixtureProject(name: string, sources: string, hostJson: object): string {
  const root = path.join(appRoot(), '.test-run', `${name}-${process.pid}`);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(path.join(root, 'dist', 'functions'), { recursive: true });
  for (const file of readdirSync(sources).filter((f) => f.endsWith('.ts'))) {
    const { outputText } = ts.transpileModule(readFileSync(path.join(sources, file), 'utf8'), {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    });
    writeFileSync(path.join(root, 'dist', 'functions', file.replace(/\.ts$/, '.js')), outputText);
  }
  writeFileSync(path.join(root, 'package.json'), JSON.stringify({ private: true, main: 'dist/functions/*.js' }));
  writeFileSync(path.join(root, 'host.json'), JSON.stringify(hostJson));
  return root;
}
