/**
 * Entry point: `node dist/test/sandbox/host/main.js` runs the built app on the local Functions host.
 *
 * Environment: `PORT` (default 7071), `SANDBOX_FUNCTION_KEY` and `SANDBOX_MASTER_KEY` (required; never printed
 * here, the launcher shows them), `SANDBOX_HOST_LOG_LEVEL` (`debug`, `information` (default), `warning`, `error`),
 * `HTTPS_PORT` with `SANDBOX_CA_DIR` (serve HTTPS too, with a certificate issued by that test CA, so Graph's
 * https-only webhooks can reach the functions).
 * `SANDBOX_PROJECT_ROOT`: the function app folder to load (its package.json `main`, host.json), e.g. the staged
 * deployment package; default the repository (dist/functions/*.js).
 * `SANDBOX_MAX_REQUEST_BODY_BYTES`: the host's request size limit (default 100 MB, Azure's).
 * App settings (`%NAME%` expressions, `AzureWebJobsStorage`, ...) are read from the environment as well.
 */
import { describeError, type HostLogLevel } from './invoker';
import { consoleLogger, LocalFunctionsHost } from './localHost';
import { findProjectRoot } from './projectConfig';
import { issueServerCertificate, readTestCa } from '../../emulators/testCa';

async function main(): Promise<void> {
  const port = parsePort(process.env.PORT);
  const functionKey = requiredEnv('SANDBOX_FUNCTION_KEY');
  const masterKey = requiredEnv('SANDBOX_MASTER_KEY');
  const logger = consoleLogger(parseLevel(process.env.SANDBOX_HOST_LOG_LEVEL));
  // Walk up rather than hard-coding "../../..": the compiled file's depth under dist/ is a build detail.
  const projectRoot = process.env.SANDBOX_PROJECT_ROOT || findProjectRoot(__dirname);

  const https = httpsOptions();
  const maxRequestBodyBytes = parseOptionalCount('SANDBOX_MAX_REQUEST_BODY_BYTES');
  const host = await LocalFunctionsHost.start({
    projectRoot,
    port,
    functionKey,
    masterKey,
    logger,
    https,
    ...(maxRequestBodyBytes !== undefined ? { maxRequestBodyBytes } : {}),
  });
  console.log(`Local Functions host for ${projectRoot} is listening on ${host.url}`);
  if (host.httpsUrl) console.log(`Local Functions host is also listening on ${host.httpsUrl}`);
  for (const line of host.describeFunctions()) console.log(`  ${line}`);

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) {
      // A second Ctrl+C means "now", even if an invocation is still running.
      process.exit(130);
    }
    stopping = true;
    logger('information', `${signal} received; stopping (waiting for running invocations)`);
    host.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(`Stopping the local Functions host failed: ${describeError(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

function parsePort(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return 7071;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`PORT must be a port number, got "${value}"`);
  return port;
}

function parseOptionalCount(name: string): number | undefined {
  const value = process.env[name];
  if (value === undefined || value.trim() === '') return undefined;
  const count = Number(value);
  if (!Number.isSafeInteger(count) || count <= 0) throw new Error(`${name} must be a positive whole number`);
  return count;
}

function httpsOptions(): { port: number; certPem: string; keyPem: string } | undefined {
  const caDir = process.env.SANDBOX_CA_DIR;
  if (process.env.HTTPS_PORT === undefined || process.env.HTTPS_PORT === '') return undefined;
  if (!caDir) throw new Error('HTTPS_PORT needs SANDBOX_CA_DIR (the test CA that issues the server certificate)');
  return { port: parsePort(process.env.HTTPS_PORT), ...issueServerCertificate(readTestCa(caDir)) };
}

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`${name} must be set`);
  return value;
}

function parseLevel(value: string | undefined): HostLogLevel {
  const levels: readonly HostLogLevel[] = ['trace', 'debug', 'information', 'warning', 'error', 'critical'];
  const level = (value ?? '').toLowerCase();
  return levels.find((l) => l === level) ?? 'information';
}

main().catch((err: unknown) => {
  // Startup failures are configuration problems; the message names the culprit and a stack would bury it.
  const message = err instanceof Error ? err.message : describeError(err);
  console.error(`Local Functions host failed to start: ${message}`);
  process.exitCode = 1;
});
