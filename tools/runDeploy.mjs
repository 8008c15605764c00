/**
 * `npm run deploy -- <app> [func options]`: checks first, then builds, then publishes. It refuses at once (exit 2:
 * no app name; exit 1: Core Tools missing or too old to publish to Flex Consumption), before anything is built, so
 * a missing tool costs no type-check and says so first; then runs `npm run build` and `node dist/tools/deploy.js`
 * with the same arguments (its exit code is the deploy's). Plain JavaScript because it runs before `tsc`;
 * tools/deploy.ts repeats the `func` lookup for itself.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import console from 'node:console';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

/** Oldest Core Tools release that publishes to a Flex Consumption app (the README names the same version). */
export const MIN_CORE_TOOLS_VERSION = '4.0.5611';

const INSTALL =
  `Install version ${MIN_CORE_TOOLS_VERSION} or later: \`npm i -g azure-functions-core-tools@4 --unsafe-perm true\`, ` +
  'or the OS packages at ' +
  'https://learn.microsoft.com/azure/azure-functions/functions-run-local#install-the-azure-functions-core-tools';

const USAGE = 'Usage: npm run deploy -- <function-app-name> [more `func azure functionapp publish` options]';

/**
 * The full path of `command` on PATH (with PATHEXT on Windows, where `func` is `func.cmd`), as a shell finds it.
 * @param {string} command
 * @returns {string | undefined}
 */
function findOnPath(command) {
  const windows = process.platform === 'win32';
  const extensions = windows ? ['', ...(process.env.PATHEXT ?? '.EXE;.CMD;.BAT;.COM').split(';')] : [''];
  for (const dir of (process.env.PATH ?? process.env.Path ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    for (const ext of extensions) {
      const candidate = path.join(dir, command + ext.toLowerCase());
      try {
        if (!statSync(candidate).isFile()) continue;
        if (!windows) accessSync(candidate, constants.X_OK);
        return candidate;
      } catch {
        // not here, or not executable: keep looking
      }
    }
  }
  return undefined;
}

/**
 * Compares dotted numeric versions (`4.0.5611`); a negative result means `a` is older.
 * @param {string} a
 * @param {string} b
 */
function compareVersions(a, b) {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}

/**
 * @param {string[]} args the deploy's arguments: the app name, then options for func
 * @returns {number} the exit code: 0 when the deploy may go on.
 */
function preflight(args) {
  const app = args[0];
  if (!app || app.startsWith('-')) {
    console.error(USAGE);
    return 2;
  }
  const func = findOnPath('func');
  if (!func) {
    console.error(
      'Azure Functions Core Tools (the `func` command) is not installed or not on PATH; `npm run deploy` needs it ' +
        `to publish. ${INSTALL}`,
    );
    return 1;
  }
  // func is func.cmd on Windows, which only a shell runs.
  const result = spawnSync(func, ['--version'], { encoding: 'utf8', shell: process.platform === 'win32' });
  const version = /\d+\.\d+\.\d+/.exec(result.stdout ?? '')?.[0];
  if (!version) {
    console.error(`\`${func} --version\` printed no version (${result.error?.message ?? 'no output'}). ${INSTALL}`);
    return 1;
  }
  if (compareVersions(version, MIN_CORE_TOOLS_VERSION) < 0) {
    console.error(
      `Azure Functions Core Tools ${version} (${func}) is too old to publish to a Flex Consumption app. ${INSTALL}`,
    );
    return 1;
  }
  return 0;
}

/**
 * Runs one step with the terminal attached; its exit code (1 when it could not start or was killed).
 * @param {string} command
 * @param {string[]} args
 */
function step(command, args) {
  const result = spawnSync(command, args, {
    stdio: 'inherit',
    shell: process.platform === 'win32' && command === 'npm',
  });
  if (result.error) console.error(`Could not run ${command}: ${result.error.message}`);
  return result.status ?? 1;
}

function main() {
  const args = process.argv.slice(2);
  const refused = preflight(args);
  if (refused !== 0) return refused;
  // npm sets npm_execpath for scripts: run the same npm through this node, with no shell in between.
  const npm = process.env.npm_execpath;
  const built = npm ? step(process.execPath, [npm, 'run', 'build']) : step('npm', ['run', 'build']);
  if (built !== 0) return built;
  const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
  return step(process.execPath, [path.join(root, 'dist', 'tools', 'deploy.js'), ...args]);
}

process.exitCode = main();
