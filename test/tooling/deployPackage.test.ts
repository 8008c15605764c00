/**
 * The deployment package (`npm run deploy`): what is staged, what the zip weighs, what `func` is run with (a fake
 * `func` first on PATH records it), the message when Core Tools is missing, and that the functions host running the
 * staged bundle registers every function the repository's build does and sends mail end to end.
 */
import { spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { SourceMap } from 'node:module';
import path from 'node:path';
import { decode } from '@jridgewell/sourcemap-codec';
import { LocalFunctionsHost, nodeModuleLoader, type RegisteredFunction } from '../sandbox/host';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { startTestCloud, type TestCloud } from '../support/testEnv';
import { findExecutable } from '../../tools/findExecutable';
import { listFiles, zipFunctionPackage } from '../../tools/functionPackage';
import type { SourceMapV3 } from '../../tools/sourceMapTrim';

const ROOT = path.join(__dirname, '..', '..');
const DEPLOY = path.join(ROOT, 'dist', 'tools', 'deploy.js');

function packageDir(): string {
  const dir = process.env.TEST_PACKAGE_DIR;
  if (!dir) throw new Error('TEST_PACKAGE_DIR is not set: run the tests with `npm test`.');
  return dir;
}

/** Runs `node dist/tools/deploy.js ...args` (what `npm run deploy -- ...args` runs after the build). */
function runDeploy(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [DEPLOY, ...args], { cwd: ROOT, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('the staged deployment package', () => {
  it('holds host.json, a package.json whose main is the bundle, a runtime-only local.settings.json and .funcignore', () => {
    const dir = packageDir();
    const files = listFiles(dir);
    expect(files).toEqual(
      [
        '.funcignore',
        'dist/app.js',
        'dist/app.js.map',
        'dist/main.js',
        'host.json',
        'local.settings.json',
        'package.json',
      ].sort(),
    );
    const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(pkg.main).toBe('dist/main.js');
    expect(existsSync(path.join(dir, pkg.main as string))).toBe(true);
    // Everything is in the bundle: nothing for npm to install, no node_modules, no devDependencies.
    expect(pkg).not.toHaveProperty('dependencies');
    expect(pkg).not.toHaveProperty('devDependencies');
    expect(JSON.parse(readFileSync(path.join(dir, 'local.settings.json'), 'utf8'))).toEqual({
      IsEncrypted: false,
      Values: { FUNCTIONS_WORKER_RUNTIME: 'node' },
    });
    expect(readFileSync(path.join(dir, 'host.json'), 'utf8')).toBe(readFileSync(path.join(ROOT, 'host.json'), 'utf8'));
  });

  it('keeps @azure/functions-core external and maps stack traces to the TypeScript sources', () => {
    const dir = packageDir();
    const bundle = readFileSync(path.join(dir, 'dist', 'app.js'), 'utf8');
    expect(bundle).toContain('require("@azure/functions-core")');
    expect(bundle).toMatch(/\/\/# sourceMappingURL=app\.js\.map\s*$/);
    const map = JSON.parse(readFileSync(path.join(dir, 'dist', 'app.js.map'), 'utf8')) as { sources: string[] };
    const sources = map.sources.map((s) => path.resolve(dir, 'dist', s));
    expect(sources).toContain(path.join(ROOT, 'functions', 'sendMail.ts'));
    expect(sources).toContain(path.join(ROOT, 'shared', 'platform', 'config.ts'));
    expect(readFileSync(path.join(dir, 'dist', 'main.js'), 'utf8')).toContain('process.setSourceMapsEnabled(true)');
  });

  it("maps a frame in the gateway's own code to its exact line, and keeps one mapping per dependency line", () => {
    const dir = packageDir();
    const bundle = readFileSync(path.join(dir, 'dist', 'app.js'), 'utf8');
    const payload = JSON.parse(readFileSync(path.join(dir, 'dist', 'app.js.map'), 'utf8')) as SourceMapV3;
    // A string only one source file of ours holds, once: where it is in the bundle must map to where it is there.
    const source = path.join(ROOT, 'shared', 'messages', 'messageReadApi.ts');
    const tsLines = readFileSync(source, 'utf8').split('\n');
    const marker = 'open the mail in Outlook to follow it';
    expect(tsLines.filter((l) => l.includes(marker))).toHaveLength(1);
    // The template literal starts with its first placeholder: the mapping of the literal is where it opens.
    const at = bundle.indexOf('is a reference attachment', bundle.indexOf(marker) - 400);
    expect(bundle.indexOf(marker)).toBeGreaterThan(0);
    expect(bundle.indexOf(marker, bundle.indexOf(marker) + 1)).toBe(-1);
    const before = bundle.slice(0, at).split('\n');
    const entry = new SourceMap(payload as never).findEntry(before.length - 1, before[before.length - 1].length) as {
      originalSource?: string;
      originalLine?: number;
    };
    expect(path.resolve(dir, 'dist', entry.originalSource ?? '')).toBe(source);
    expect(entry.originalLine).toBe(tsLines.findIndex((l) => l.includes(marker)));
    // Dependencies: no two mappings in a row on one generated line point at the same line of the same file.
    const isDependency = payload.sources.map((s) => s.includes('node_modules') || s.startsWith('webpack:'));
    let repeats = 0;
    let dependencyMappings = 0;
    for (const segments of decode(payload.mappings)) {
      for (let i = 0; i < segments.length; i++) {
        const [, src, line] = segments[i];
        if (src === undefined || !isDependency[src]) continue;
        dependencyMappings++;
        const prev = segments[i - 1];
        if (prev && prev[1] === src && prev[2] === line) repeats++;
      }
    }
    expect(dependencyMappings).toBeGreaterThan(1000);
    expect(repeats).toBe(0);
  });

  it('zips (as Core Tools packs it, without local.settings.json) to under 5 MB', () => {
    const zip = zipFunctionPackage(packageDir());
    expect(zip.subarray(0, 4).toString('hex')).toBe('504b0304');
    expect(zip.length).toBeLessThan(5 * 1024 * 1024);
    expect(zip.includes(Buffer.from('local.settings.json'))).toBe(false);
    expect(zip.includes(Buffer.from('dist/app.js'))).toBe(true);
  });
});

describe('npm run deploy -- <app>', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(path.join(tmpdir(), 'deploy-test-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('stages the bundle and runs `func azure functionapp publish <app>` from the staging folder', async () => {
    const bin = path.join(work, 'bin');
    const record = path.join(work, 'func-call.json');
    const staging = path.join(work, 'staging');
    // A stand-in for Core Tools that records what it was asked to publish, from where, and what was there.
    const fake = [
      `#!${process.execPath}`,
      "const fs = require('node:fs');",
      "const path = require('node:path');",
      'const list = (d, p = "") => fs.readdirSync(path.join(d, p), { withFileTypes: true }).flatMap((e) =>',
      '  e.isDirectory() ? list(d, path.join(p, e.name)) : [path.join(p, e.name)]);',
      'fs.writeFileSync(process.env.FAKE_FUNC_RECORD, JSON.stringify({',
      '  args: process.argv.slice(2), cwd: process.cwd(), files: list(process.cwd()).sort(),',
      '  runtime: process.env.FUNCTIONS_WORKER_RUNTIME,',
      "  localSettings: JSON.parse(fs.readFileSync('local.settings.json', 'utf8')),",
      "  main: JSON.parse(fs.readFileSync('package.json', 'utf8')).main,",
      '}));',
      "console.log('fake func: published');",
      'process.exit(3);',
    ].join('\n');
    mkdirSync(bin);
    writeFileSync(path.join(bin, 'func'), fake);
    chmodSync(path.join(bin, 'func'), 0o755);

    const result = await runDeploy(['func-mail-gateway', '--slot', 'staging'], {
      ...process.env,
      PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}`,
      FAKE_FUNC_RECORD: record,
      DEPLOY_STAGING_DIR: staging,
      // A wrong runtime in the caller's environment must not reach Core Tools, which reads it before the file.
      FUNCTIONS_WORKER_RUNTIME: 'python',
    });
    // func's exit code is the deploy's.
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('fake func: published');
    const call = JSON.parse(readFileSync(record, 'utf8')) as {
      args: string[];
      cwd: string;
      files: string[];
      runtime: string;
      localSettings: unknown;
      main: string;
    };
    expect(call.args).toEqual(['azure', 'functionapp', 'publish', 'func-mail-gateway', '--slot', 'staging']);
    expect(call.cwd).toBe(staging);
    expect(call.runtime).toBe('node');
    expect(call.localSettings).toEqual({ IsEncrypted: false, Values: { FUNCTIONS_WORKER_RUNTIME: 'node' } });
    expect(call.main).toBe('dist/main.js');
    expect(call.files).toEqual(listFiles(packageDir()));
    expect(call.files.some((f) => f.startsWith('node_modules'))).toBe(false);
  });

  it('says Core Tools is missing and how to install it when `func` is not on PATH', async () => {
    const emptyBin = mkdtempSync(path.join(work, 'nofunc-'));
    const staging = path.join(work, 'not-staged');
    const result = await runDeploy(['func-mail-gateway'], {
      ...process.env,
      PATH: emptyBin,
      DEPLOY_STAGING_DIR: staging,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Azure Functions Core Tools (the `func` command) is not installed or not on PATH');
    expect(result.stderr).toContain('npm i -g azure-functions-core-tools@4');
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(staging)).toBe(false);
  });

  /**
   * Runs `npm run deploy -- ...args` as a user would, with a PATH holding only node, npm, sh and (when given) a
   * fake `func` that prints `funcVersion` for `func --version`.
   */
  async function npmRunDeploy(
    args: string[],
    funcVersion: string | undefined,
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const bin = mkdtempSync(path.join(work, 'bin-'));
    const npm = findExecutable('npm');
    if (!npm) throw new Error('npm is not on PATH');
    symlinkSync(process.execPath, path.join(bin, 'node'));
    symlinkSync(npm, path.join(bin, 'npm'));
    symlinkSync('/bin/sh', path.join(bin, 'sh'));
    if (funcVersion !== undefined) {
      writeFileSync(
        path.join(bin, 'func'),
        `#!${process.execPath}\nconsole.log(${JSON.stringify(funcVersion)});\nprocess.exit(0);\n`,
      );
      chmodSync(path.join(bin, 'func'), 0o755);
    }
    return new Promise((resolve) => {
      const child = spawn(path.join(bin, 'npm'), ['run', 'deploy', '--', ...args], {
        cwd: ROOT,
        env: { HOME: process.env.HOME, PATH: bin, DEPLOY_STAGING_DIR: path.join(work, 'never-staged') },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('exit', (code) => resolve({ code, stdout, stderr }));
    });
  }

  // npm echoes each script it runs ("> tsc -p tsconfig.build.json"): its absence proves nothing was built.
  const BUILD_ECHO = /^> tsc\b/m;

  it('`npm run deploy` without `func` on PATH stops before building, naming the minimum Core Tools version', async () => {
    const result = await npmRunDeploy(['func-mail-gateway'], undefined);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Azure Functions Core Tools (the `func` command) is not installed or not on PATH');
    expect(result.stderr).toContain('version 4.0.5611 or later');
    expect(result.stdout).not.toMatch(BUILD_ECHO);
    expect(existsSync(path.join(work, 'never-staged'))).toBe(false);
  });

  it('`npm run deploy` with a Core Tools too old for Flex Consumption stops before building and says so', async () => {
    const result = await npmRunDeploy(['func-mail-gateway'], '4.0.5455');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Azure Functions Core Tools 4.0.5455');
    expect(result.stderr).toContain('too old to publish to a Flex Consumption app');
    expect(result.stderr).toContain('version 4.0.5611 or later');
    expect(result.stdout).not.toMatch(BUILD_ECHO);
  });

  it('`npm run deploy` without an app name stops before building, with the usage', async () => {
    const result = await npmRunDeploy([], '4.0.7030');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Usage: npm run deploy -- <function-app-name>');
    expect(result.stdout).not.toMatch(BUILD_ECHO);
  });

  it('the READMEs name the Core Tools version the deploy requires wherever they ask to install Core Tools', () => {
    const required = /MIN_CORE_TOOLS_VERSION = '([\d.]+)'/.exec(
      readFileSync(path.join(ROOT, 'tools', 'runDeploy.mjs'), 'utf8'),
    )?.[1];
    expect(required).toBe('4.0.5611');
    for (const doc of ['README.md', 'infra/README.md']) {
      const paragraphs = readFileSync(path.join(ROOT, doc), 'utf8').split(/\n\s*\n/);
      const asking = paragraphs.filter((p) => /azure-functions-core-tools@4|Core Tools \*\*|Core Tools 4/.test(p));
      expect([doc, asking.length > 0]).toEqual([doc, true]);
      for (const paragraph of asking) expect(paragraph).toContain(`${required!} or later`);
    }
  });

  it('names the missing app argument', async () => {
    const result = await runDeploy([], process.env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Usage: npm run deploy -- <function-app-name>');
  });
});

describe('the functions host on the staged bundle', () => {
  let env: TestCloud;
  let host: FunctionsHostProcess;

  beforeAll(async () => {
    env = await startTestCloud({ privateStorage: true, graph: { latencyMs: { min: 0, max: 0 } } });
    host = await startFunctionsHost(env.settings);
  });
  afterAll(async () => {
    await host?.stop();
    await env?.close();
  });

  it('loads the bundle, not the repository build', () => {
    expect(host.output()).toContain(`Local Functions host for ${packageDir()} is listening`);
  });

  it('sends a mail end to end', async () => {
    const subject = `bundle-${Date.now()}`;
    const res = await fetch(`${host.url}/api/mail/send`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', prefer: 'wait=30', 'x-functions-key': host.functionKey },
      body: JSON.stringify({ from: 'alerts@contoso.com', to: ['someone@contoso.com'], subject, text: 'bundled' }),
    });
    expect(res.status).toBe(200);
    expect(env.cloud.graph.inbox('someone@contoso.com').filter((m) => m.subject === subject)).toHaveLength(1);
  });

  it('registers every function the repository build registers, with the same triggers, routes and auth', async () => {
    const summary = (fns: RegisteredFunction[]): string[] =>
      fns.map((f) => JSON.stringify(f)).sort((a, b) => a.localeCompare(b));
    const unbundled = await registrations(ROOT);
    const bundled = await registrations(packageDir());
    expect(unbundled.map((f) => f.name)).toEqual(expect.arrayContaining(['sendMail', 'health', 'renewSubscriptions']));
    expect(summary(bundled)).toEqual(summary(unbundled));
  });
});

/** The functions a project folder registers, loaded in this process by the local host (nothing served). */
async function registrations(projectRoot: string): Promise<RegisteredFunction[]> {
  const settings = (
    JSON.parse(readFileSync(path.join(ROOT, 'local.settings.sample.json'), 'utf8')) as {
      Values: Record<string, string>;
    }
  ).Values;
  // The host exports app settings into Node's own process.env; restore it so nothing leaks into later tests.
  const realEnv = (nodeModuleLoader().createRequire(__filename)('node:process') as NodeJS.Process).env;
  const savedEnv = { ...realEnv };
  const host = await LocalFunctionsHost.start({
    projectRoot,
    port: 0,
    functionKey: 'registrations-function-key',
    masterKey: 'registrations-master-key',
    enableTimers: false,
    enableQueues: false,
    appSettings: settings,
    logger: () => undefined,
  });
  try {
    return host.functions;
  } finally {
    await host.stop();
    for (const name of Object.keys(realEnv)) if (!(name in savedEnv)) delete realEnv[name];
    Object.assign(realEnv, savedEnv);
  }
}
