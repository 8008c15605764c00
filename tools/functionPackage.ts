/**
 * The deployment package: every function bundled by esbuild into one file, staged in a folder that
 * `func azure functionapp publish` can run from (host.json, a package.json whose `main` is the bundle, a minimal
 * local.settings.json, .funcignore) and nothing else. `npm run deploy`, `npm start` and the tests' functions host all
 * stage it with this module, so what runs locally is what ships.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { zipSync, type Zippable } from 'fflate';
import { trimDependencyMappings, type SourceMapV3 } from './sourceMapTrim';

/** `main` of the staged package.json: enables source maps, then loads the bundle (its map trimmed: sourceMapTrim.ts). */
export const PACKAGE_MAIN = 'dist/main.js';

/** The bundle every function is in (next to its source map). */
export const BUNDLE_FILE = 'dist/app.js';

/** The only setting the staged local.settings.json holds: Core Tools' publish reads the worker runtime from it. */
export const LOCAL_SETTINGS = { IsEncrypted: false, Values: { FUNCTIONS_WORKER_RUNTIME: 'node' } } as const;

/**
 * Files Core Tools never packs, whatever .funcignore says (FileSystemHelpers.GetLocalFiles in
 * Azure/azure-functions-core-tools: `.funcignore`, `.gitignore`, `local.settings.json`, `project.lock.json`, and the
 * `.git` and `.vscode` folders).
 */
const ALWAYS_SKIPPED_FILES = ['.funcignore', '.gitignore', 'local.settings.json', 'project.lock.json'];
const ALWAYS_SKIPPED_DIRS = ['.git', '.vscode'];

/** What `stageFunctionPackage` produced. */
export interface StagedPackage {
  /** The staging folder (absolute). */
  dir: string;
  /** The function source files bundled, relative to the project root, in load order. */
  entryPoints: string[];
  /** Every staged file, relative to `dir`, sorted. */
  files: string[];
}

/** The function files the Functions host would load from the sources: `functions/*.ts`, sorted like a glob. */
export function functionSourceFiles(projectRoot: string): string[] {
  return readdirSync(path.join(projectRoot, 'functions'))
    .filter((name) => name.endsWith('.ts') && !name.endsWith('.d.ts'))
    .sort()
    .map((name) => `functions/${name}`);
}

/**
 * Bundles every function of `projectRoot` and stages the publishable folder at `dir` (emptied first). One bundle
 * rather than one per function: each function file pulls in most of the SDKs, so separate bundles repeat them (22 MB
 * of JavaScript instead of 3.6 MB, measured) and load slower.
 */
export async function stageFunctionPackage(projectRoot: string, dir: string): Promise<StagedPackage> {
  const root = path.resolve(projectRoot);
  const out = path.resolve(dir);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(path.join(out, 'dist'), { recursive: true });
  const entryPoints = functionSourceFiles(root);
  const sourcePkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as Record<string, unknown>;

  await build({
    // A generated entry importing each function file in the order the host would load them.
    stdin: {
      contents: entryPoints.map((file) => `import './${file.replace(/\.ts$/, '')}';`).join('\n'),
      resolveDir: root,
      sourcefile: 'functions.entry.ts',
      loader: 'ts',
    },
    outfile: path.join(out, BUNDLE_FILE),
    bundle: true,
    platform: 'node',
    // Azure runs Node 22/24; node20 syntax also runs on the Node 20 the sandbox and CI use.
    target: 'node20',
    format: 'cjs',
    // The Functions worker injects this module; the sandbox host answers it with its shim.
    external: ['@azure/functions-core'],
    sourcemap: 'linked',
    // Stack traces need the mappings, not the sources: leaving them out halves the map.
    sourcesContent: false,
    minifyWhitespace: true,
    minifySyntax: true,
    // Identifiers stay readable in logs and in stack traces read without the map.
    minifyIdentifiers: false,
    legalComments: 'none',
    logLevel: 'silent',
    // Some SDKs ship ESM that derives `require` from import.meta.url, which a CommonJS bundle lacks.
    define: { 'import.meta.url': '__bundleFileUrl' },
    banner: { js: 'const __bundleFileUrl = require("node:url").pathToFileURL(__filename).href;' },
  });

  const mapFile = path.join(out, `${BUNDLE_FILE}.map`);
  const { map } = trimDependencyMappings(JSON.parse(readFileSync(mapFile, 'utf8')) as SourceMapV3, (source) =>
    isOwnSource(root, path.resolve(path.dirname(mapFile), source)),
  );
  writeFileSync(mapFile, JSON.stringify(map));

  writeFileSync(
    path.join(out, PACKAGE_MAIN),
    [
      '// Source maps must be on before the bundle is compiled for stack traces to point at the TypeScript sources.',
      "'use strict';",
      'process.setSourceMapsEnabled(true);',
      `require('./${path.basename(BUNDLE_FILE)}');`,
      '',
    ].join('\n'),
  );
  writeJson(path.join(out, 'package.json'), {
    name: sourcePkg.name,
    version: sourcePkg.version,
    description: sourcePkg.description,
    private: true,
    license: sourcePkg.license,
    main: PACKAGE_MAIN,
    engines: sourcePkg.engines,
  });
  copyFileSync(path.join(root, 'host.json'), path.join(out, 'host.json'));
  writeJson(path.join(out, 'local.settings.json'), LOCAL_SETTINGS);
  writeFileSync(
    path.join(out, '.funcignore'),
    [
      '# Staged by tools/functionPackage.ts: everything here ships. Core Tools leaves local.settings.json out anyway.',
      'local.settings.json',
      '',
    ].join('\n'),
  );
  return { dir: out, entryPoints, files: listFiles(out) };
}

/**
 * True for the gateway's own sources (`functions/`, `shared/`, the generated entry), not its dependencies' (their
 * files, or the sources their own maps name, such as `webpack://...`).
 */
function isOwnSource(root: string, file: string): boolean {
  const parts = path.relative(root, file).split(path.sep);
  return parts.includes('node_modules') ? false : ['functions', 'shared', 'functions.entry.ts'].includes(parts[0]);
}

/** Every file under `dir`, relative, with `/` separators, sorted. */
export function listFiles(dir: string): string[] {
  const found: string[] = [];
  const walk = (sub: string): void => {
    for (const entry of readdirSync(path.join(dir, sub), { withFileTypes: true })) {
      const rel = sub === '' ? entry.name : `${sub}/${entry.name}`;
      if (entry.isDirectory()) walk(rel);
      else found.push(rel);
    }
  };
  walk('');
  return found.sort();
}

/**
 * Zips a staged package the way `func azure functionapp publish` does: every file except the ones Core Tools always
 * leaves out, deflated. The staged .funcignore excludes nothing else, so this is the upload's content.
 */
export function zipFunctionPackage(dir: string): Buffer {
  const entries: Zippable = {};
  for (const rel of listFiles(dir)) {
    const parts = rel.split('/');
    if (ALWAYS_SKIPPED_FILES.includes(parts[parts.length - 1])) continue;
    if (parts.slice(0, -1).some((p) => ALWAYS_SKIPPED_DIRS.includes(p))) continue;
    const file = path.join(dir, rel);
    entries[rel] = [readFileSync(file), { level: 6, mtime: statSync(file).mtime }];
  }
  return Buffer.from(zipSync(entries));
}

function writeJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}
