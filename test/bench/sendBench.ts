/**
 * Sending benchmarks against the local cloud, through the gateway's real HTTP function in the local host:
 * (a) 1,000 sends to one mailbox with 50-150 ms Graph latency: achieved rate as a ratio of what the emulator's
 *     limit (4 concurrent per app+mailbox) allows, 429s, failures; beside it a naive client written the way the
 *     usual samples are (a new credential and token per send, no concurrency limit, no Retry-After handling);
 * (b) Entra token requests and Key Vault reads per 1,000 gateway sends;
 * (c) the gateway's own time per send (client round trip minus the emulator's time for the Graph call), p50/p99;
 * (d) one send with a 25 MB attachment: time and peak resident memory of the process.
 */
import { randomBytes } from 'node:crypto';
import { freePort } from '../emulators/azurite';
import { LocalFunctionsHost } from '../sandbox/host';
import { KeyVaultCredentialSource } from '../../shared/identity/keyVaultCredentialSource';
import { appRoot } from '../../shared/platform/packageInfo';
import { naiveToken, type BenchContext } from './benchContext';

/** Figures of the throughput run for one client. */
export interface ThroughputResult {
  client: string;
  sends: number;
  seconds: number;
  ratePerSecond: number;
  /** Achieved rate / (4 concurrent / mean Graph latency). */
  ratioOfLimit: number;
  throttled429: number;
  failures: number;
  tokenRequests: number;
  keyVaultReads: number;
}

/** All send figures. */
export interface SendBenchResult {
  throughput: ThroughputResult[];
  overheadMs: { p50: number; p99: number; samples: number };
  largeAttachment: { megabytes: number; seconds: number; peakRssDeltaMb: number; status: number };
}

const KEY = 'bench-function-key';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function pool<T>(count: number, concurrency: number, work: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        results[i] = await work(i);
      }
    }),
  );
  return results;
}

/** Runs the sending benchmarks; `latency` is the object the Graph emulator reads its latency from. */
export async function runSendBench(ctx: BenchContext, latency: { min: number; max: number }): Promise<SendBenchResult> {
  const graph = ctx.cloud.graph;
  const mailbox = `alerts@${ctx.cloud.tenant.domain}`;
  const recipient = `someone@${ctx.cloud.tenant.domain}`;
  const host = await LocalFunctionsHost.start({
    projectRoot: appRoot(),
    port: await freePort(),
    functionKey: KEY,
    masterKey: 'bench-master-key',
    enableTimers: false,
    enableQueues: false,
    appSettings: { ...process.env },
    logger: () => undefined,
  });
  const send = async (subject: string, attachment?: string): Promise<number> => {
    const res = await fetch(`${host.url}/api/mail/send`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-functions-key': KEY },
      body: JSON.stringify({
        from: mailbox,
        to: [recipient],
        subject,
        text: 'benchmark',
        ...(attachment
          ? { attachments: [{ name: 'big.bin', contentType: 'application/octet-stream', contentBase64: attachment }] }
          : {}),
      }),
    });
    await res.arrayBuffer();
    return res.status;
  };

  try {
    const throughput: ThroughputResult[] = [];
    const sends = 1000;
    const measure = async (client: string, run: () => Promise<{ failures: number }>) => {
      graph.reset();
      const tokens = ctx.cloud.entra.tokenRequests.length;
      const vault = ctx.cloud.keyVault.requests.filter((r) => r.status === 200).length;
      const started = process.hrtime.bigint();
      const { failures } = await run();
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const ok = graph.requests.filter((r) => r.status === 202);
      const meanLatency = ok.reduce((s, r) => s + r.durationMs, 0) / Math.max(1, ok.length) / 1000;
      const limit = 4 / meanLatency;
      throughput.push({
        client,
        sends,
        seconds,
        ratePerSecond: (sends - failures) / seconds,
        ratioOfLimit: (sends - failures) / seconds / limit,
        throttled429: graph.requests.filter((r) => r.status === 429).length,
        failures,
        tokenRequests: ctx.cloud.entra.tokenRequests.length - tokens,
        keyVaultReads: ctx.cloud.keyVault.requests.filter((r) => r.status === 200).length - vault,
      });
    };

    latency.min = 50;
    latency.max = 150;
    // No warm-up: the first send's token request and Key Vault read belong in the per-1,000 figures.
    await measure('gateway (POST /api/mail/send, 64 callers)', async () => {
      const statuses = await pool(sends, 64, (i) => send(`gateway-${i}`));
      return { failures: statuses.filter((s) => s !== 202).length };
    });

    const source = new KeyVaultCredentialSource(ctx.config);
    await measure('naive sample (token per send, no limit, no Retry-After)', async () => {
      const results = await pool(sends, 64, async (i) => {
        const token = await naiveToken(ctx, source);
        const res = await fetch(`${graph.url}/v1.0/users/${encodeURIComponent(mailbox)}/sendMail`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            message: {
              subject: `naive-${i}`,
              body: { contentType: 'text', content: 'benchmark' },
              toRecipients: [{ emailAddress: { address: recipient } }],
            },
          }),
        });
        await res.arrayBuffer();
        return res.status;
      });
      return { failures: results.filter((s) => s !== 202).length };
    });

    // (c) Sequential sends: the client's round trip minus what the emulator spent on the same Graph call.
    graph.reset();
    const overheads: number[] = [];
    for (let i = 0; i < 300; i++) {
      const before = graph.requests.length;
      const started = process.hrtime.bigint();
      const status = await send(`overhead-${i}`);
      const roundTrip = Number(process.hrtime.bigint() - started) / 1e6;
      const graphMs = graph.requests.slice(before).reduce((s, r) => s + r.durationMs, 0);
      if (status === 202) overheads.push(roundTrip - graphMs);
    }
    overheads.sort((a, b) => a - b);

    // (d) One 25 MB attachment through the draft path.
    latency.min = 0;
    latency.max = 0;
    const attachment = randomBytes(25 * 1024 * 1024).toString('base64');
    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
    const started = process.hrtime.bigint();
    const status = await send('large', attachment);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);

    return {
      throughput,
      overheadMs: { p50: percentile(overheads, 50), p99: percentile(overheads, 99), samples: overheads.length },
      largeAttachment: { megabytes: 25, seconds, peakRssDeltaMb: (peak - baseline) / 1024 / 1024, status },
    };
  } finally {
    await host.stop();
  }
}
