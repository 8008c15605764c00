/**
 * `npm run bench`: starts the local cloud in a child process that trusts a fresh test CA (NODE_EXTRA_CA_CERTS is
 * read only at start), runs each benchmark and prints its figures next to the baseline measured in the same run.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../shared/config';
import { runTokenBench } from '../bench/tokenBench';
import { LocalCloud } from '../emulators/localCloud';
import { createTestCa, readTestCa, writeTestCa } from '../emulators/testCa';

async function benchmarks(caDir: string): Promise<void> {
  const cloud = await LocalCloud.start({ ca: readTestCa(caDir), credential: 'certificate-pem' });
  Object.assign(process.env, cloud.settings());
  const config = loadConfig({ ...process.env, AzureWebJobsStorage: 'UseDevelopmentStorage=true' });
  try {
    console.log('Token benchmark: Entra token requests and Key Vault reads per 1,000 Graph calls');
    console.log('client'.padEnd(52), 'token requests', 'Key Vault reads', 'ms/token');
    for (const r of await runTokenBench({ cloud, config })) {
      console.log(
        r.name.padEnd(52),
        String(r.tokenRequests).padStart(14),
        String(r.keyVaultReads).padStart(15),
        r.msPerToken.toFixed(3).padStart(8),
      );
    }
  } finally {
    await cloud.close();
  }
}

if (process.env.BENCH_CA_DIR) {
  benchmarks(process.env.BENCH_CA_DIR).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
} else {
  const dir = mkdtempSync(join(tmpdir(), 'mail-gateway-bench-'));
  const caPath = writeTestCa(createTestCa(), dir);
  const child = spawnSync(process.execPath, [__filename], {
    stdio: 'inherit',
    env: { ...process.env, NODE_EXTRA_CA_CERTS: caPath, BENCH_CA_DIR: dir },
  });
  rmSync(dir, { recursive: true, force: true });
  process.exit(child.status ?? 1);
}
