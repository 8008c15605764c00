/**
 * `npm run deploy -- <app> [func options]` runs tools/runDeploy.mjs, which checks Core Tools, builds, then runs
 * this: it stages the bundled package (tools/functionPackage.ts) in dist/publish
 * and runs `func azure functionapp publish <app>` from there, so a clean checkout publishes without a
 * local.settings.json of its own and without devDependencies or sources in the upload.
 *
 * Environment: DEPLOY_STAGING_DIR overrides the staging folder.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { appRoot } from '../shared/platform/packageInfo';
import { findExecutable } from './findExecutable';
import { LOCAL_SETTINGS, stageFunctionPackage, zipFunctionPackage } from './functionPackage';

/** Printed when `func` is not on PATH: Core Tools is the user's to install (its installer downloads binaries). */
export const CORE_TOOLS_MISSING =
  'Azure Functions Core Tools (the `func` command) is not installed or not on PATH; `npm run deploy` needs it to ' +
  'publish. Install version 4.0.5611 or later: `npm i -g azure-functions-core-tools@4 --unsafe-perm true`, or the OS packages at ' +
  'https://learn.microsoft.com/azure/azure-functions/functions-run-local#install-the-azure-functions-core-tools';

const USAGE = 'Usage: npm run deploy -- <function-app-name> [more `func azure functionapp publish` options]';

async function main(args: string[]): Promise<number> {
  const [app, ...funcOptions] = args;
  if (!app || app.startsWith('-')) {
    console.error(USAGE);
    return 2;
  }
  // tools/runDeploy.mjs checked this before building; run directly, this still says so before staging.
  const func = findExecutable('func');
  if (!func) {
    console.error(CORE_TOOLS_MISSING);
    return 1;
  }
  const root = appRoot();
  const staging = path.resolve(process.env.DEPLOY_STAGING_DIR || path.join(root, 'dist', 'publish'));
  const staged = await stageFunctionPackage(root, staging);
  const zipMb = zipFunctionPackage(staged.dir).length / (1024 * 1024);
  console.log(
    `Staged ${staged.entryPoints.length} function files as one bundle in ${staged.dir} ` +
      `(${staged.files.length} files, ${zipMb.toFixed(2)} MB zipped)`,
  );
  console.log(`Running: func azure functionapp publish ${[app, ...funcOptions].join(' ')}`);
  return new Promise<number>((resolve) => {
    const child = spawn(func, ['azure', 'functionapp', 'publish', app, ...funcOptions], {
      cwd: staged.dir,
      stdio: 'inherit',
      // Core Tools reads the runtime from the environment before local.settings.json: make both say node.
      env: { ...process.env, FUNCTIONS_WORKER_RUNTIME: LOCAL_SETTINGS.Values.FUNCTIONS_WORKER_RUNTIME },
      // func is func.cmd on Windows, which only a shell runs.
      shell: process.platform === 'win32',
    });
    child.once('error', (err) => {
      console.error(`Could not run ${func}: ${err.message}`);
      resolve(1);
    });
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    // Build failures (a type or resolution error) are the message; a stack would bury it.
    console.error(`Deploy failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
