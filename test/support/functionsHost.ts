/**
 * Runs the app's functions in the local host as a child process, as Azure runs them in a worker process: app
 * settings arrive as environment variables, and nothing the app caches (configuration, tokens, Graph client)
 * leaks between test files. Tests reach it over HTTP and read its log lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { appRoot } from '../../shared/platform/packageInfo';
import { freePort } from '../emulators/azurite';

/** A running functions host. */
export interface FunctionsHostProcess {
  /** e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** The same functions over HTTPS (test CA), e.g. `https://127.0.0.1:41235`: what Graph's webhooks call. */
  httpsUrl: string;
  functionKey: string;
  masterKey: string;
  /** The host's process id (benchmarks read its memory from `/proc/<pid>/status`, or kill it). */
  pid: number;
  /** Everything the host printed so far. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts `dist/test/sandbox/host/main.js` on the deployment package `npm test` staged (TEST_PACKAGE_DIR: the bundle
 * `npm run deploy` ships) with `settings` as its environment; resolves once it listens. It serves HTTPS too, and
 * `WEBHOOK_BASE_URL` defaults to that HTTPS origin, as in Azure. The ports are free when picked but may be taken
 * before the host binds them (by the library's own HTTP streaming proxy in the host, which asks the system for any
 * port, or by another process), so a start that finds its port taken is tried again on new ports. `nodeArgs` go to
 * Node before the script (e.g. a benchmark's `--cpu-prof`, which NODE_OPTIONS does not accept).
 */
export async function startFunctionsHost(
  settings: Record<string, string>,
  options: { nodeArgs?: string[] } = {},
): Promise<FunctionsHostProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(settings, await freePort(), await freePort(), options.nodeArgs ?? []);
    } catch (err) {
      if (attempt >= 3 || !(err instanceof Error) || !err.message.includes('is already in use')) throw err;
    }
  }
}

async function startOnce(
  settings: Record<string, string>,
  port: number,
  httpsPort: number,
  nodeArgs: string[],
): Promise<FunctionsHostProcess> {
  const caDir = process.env.TEST_CA_DIR;
  if (!caDir) throw new Error('TEST_CA_DIR is not set: run the tests with `npm test`.');
  const packageDir = process.env.TEST_PACKAGE_DIR;
  if (!packageDir) throw new Error('TEST_PACKAGE_DIR is not set: run the tests with `npm test`.');
  const functionKey = 'test-function-key';
  const masterKey = 'test-master-key';
  const child: ChildProcess = spawn(
    process.execPath,
    [...nodeArgs, join(appRoot(), 'dist', 'test', 'sandbox', 'host', 'main.js')],
    {
      cwd: appRoot(),
      env: {
        ...process.env,
        WEBHOOK_BASE_URL: `https://127.0.0.1:${httpsPort}`,
        SANDBOX_HOST_LOG_LEVEL: 'debug',
        ...settings,
        PORT: String(port),
        HTTPS_PORT: String(httpsPort),
        SANDBOX_CA_DIR: caDir,
        SANDBOX_PROJECT_ROOT: packageDir,
        SANDBOX_FUNCTION_KEY: functionKey,
        SANDBOX_MASTER_KEY: masterKey,
      },
    },
  );
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`functions host did not start:\n${output}`)), 30_000);
    const check = () => {
      if (output.includes(`http://127.0.0.1:${port}`)) {
        clearTimeout(deadline);
        // Once started, no more scans of the whole (growing) output on each line the host prints.
        child.stdout?.off('data', check);
        resolve();
      }
    };
    child.stdout?.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(deadline);
      reject(new Error(`functions host exited with ${code}:\n${output}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    httpsUrl: `https://127.0.0.1:${httpsPort}`,
    functionKey,
    masterKey,
    pid: child.pid ?? -1,
    output: () => output,
    stop: () =>
      new Promise<void>((resolve) => {
        // A killed process has a signalCode and no exitCode; either way it has already exited.
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
