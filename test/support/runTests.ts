/**
 * `npm test`: makes a fresh test CA (handed to every Node process through NODE_EXTRA_CA_CERTS, which Node reads
 * only at start-up — hence this launcher), stages the deployment package once (TEST_PACKAGE_DIR: the functions hosts
 * of the tests run the bundle that ships), starts Azurite, runs jest with any extra arguments, stops Azurite, and
 * ends with one summary line `jest: N passed, N failed`. Everything lives in a temporary folder of its own, never in
 * `.sandbox`, so a running `npm start` is left alone.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAzurite } from '../emulators/azurite';
import { createTestCa, writeTestCa } from '../emulators/testCa';
import { appRoot } from '../../shared/platform/packageInfo';
import { stageFunctionPackage } from '../../tools/functionPackage';

interface JestSummary {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTotalTests: number;
  numFailedTestSuites: number;
  numRuntimeErrorTestSuites: number;
}

async function main(): Promise<number> {
  const root = appRoot();
  const work = mkdtempSync(join(tmpdir(), 'mail-gateway-test-'));
  const caPath = writeTestCa(createTestCa(), join(work, 'ca'));
  const staged = await stageFunctionPackage(root, join(work, 'package'));
  const azurite = await startAzurite({ projectRoot: root });
  const resultsPath = join(work, 'jest-results.json');
  try {
    const code = await new Promise<number>((resolve) => {
      const child = spawn(
        process.execPath,
        [
          join(root, 'node_modules', 'jest', 'bin', 'jest.js'),
          '--json',
          `--outputFile=${resultsPath}`,
          ...process.argv.slice(2),
        ],
        {
          cwd: root,
          stdio: 'inherit',
          env: {
            ...process.env,
            NODE_EXTRA_CA_CERTS: caPath,
            TEST_CA_DIR: join(work, 'ca'),
            TEST_PACKAGE_DIR: staged.dir,
            TEST_AZURITE_CONNECTION_STRING: azurite.connectionString,
          },
        },
      );
      child.on('exit', (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0)));
    });
    try {
      const summary = JSON.parse(readFileSync(resultsPath, 'utf8')) as JestSummary;
      console.log(`jest: ${summary.numPassedTests} passed, ${summary.numFailedTests} failed`);
      if (summary.numTotalTests === 0) return 1;
    } catch {
      console.log('jest: 0 passed, 1 failed');
      return code || 1;
    }
    return code;
  } finally {
    await azurite.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
