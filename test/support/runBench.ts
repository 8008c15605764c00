/**
 * `npm run bench`: starts the local cloud in a child process that trusts a fresh test CA (NODE_EXTRA_CA_CERTS is
 * read only at start), runs each benchmark and prints its figures next to the baseline measured in the same run.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../shared/platform/config';
import { runPacerBench } from '../bench/pacerBench';
import { runSendBench } from '../bench/sendBench';
import { runTokenBench } from '../bench/tokenBench';
import { LocalCloud } from '../emulators/localCloud';
import { createTestCa, readTestCa, writeTestCa } from '../emulators/testCa';

async function benchmarks(caDir: string): Promise<void> {
  // One object the Graph emulator reads its latency from, so each benchmark sets the latency it needs.
  const latency = { min: 0, max: 0 };
  const cloud = await LocalCloud.start({
    ca: readTestCa(caDir),
    credential: 'certificate-pem',
    graph: { latencyMs: latency },
  });
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

    console.log(
      '\nSend benchmark (a, b): 1,000 sends to one mailbox, Graph latency 50-150 ms, limit 4 concurrent per app+mailbox',
    );
    const sends = await runSendBench({ cloud, config }, latency);
    console.log(
      [
        'client'.padEnd(58),
        'seconds',
        'sends/s',
        'ratio of limit',
        '429s',
        'failures',
        'tokens',
        'Key Vault reads',
      ].join('  '),
    );
    for (const t of sends.throughput) {
      console.log(
        [
          t.client.padEnd(58),
          t.seconds.toFixed(1).padStart(7),
          t.ratePerSecond.toFixed(1).padStart(7),
          t.ratioOfLimit.toFixed(2).padStart(14),
          String(t.throttled429).padStart(4),
          String(t.failures).padStart(8),
          String(t.tokenRequests).padStart(6),
          String(t.keyVaultReads).padStart(15),
        ].join('  '),
      );
    }
    console.log(
      `\nSend benchmark (c): gateway's own time per send, Graph time excluded (${sends.overheadMs.samples} sequential sends): p50 ${sends.overheadMs.p50.toFixed(2)} ms, p99 ${sends.overheadMs.p99.toFixed(2)} ms`,
    );
    const large = sends.largeAttachment;
    console.log(
      `Send benchmark (d): one ${large.megabytes} MB attachment (draft + upload session): HTTP ${large.status} in ${large.seconds.toFixed(2)} s, peak RSS +${large.peakRssDeltaMb.toFixed(0)} MB (gateway, host and emulator share the process)`,
    );
    await runPacerBench();
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
