/**
 * The message API's costs, measured in the functions host's own process (`hostMemory.ts`) against the Graph
 * emulator, each beside its baseline in the same run:
 * - (a) a 25 MB attachment downloaded through the gateway: the host's peak memory growth (each download between two
 *   settled states of the host), and in rounds of their own on a second host never settled, its throughput as a
 *   ratio to reading the same `$value` straight from the emulator with the gateway's own Graph client;
 * - (b) `GET` of one message: the gateway's own time per request beyond Graph's, i.e. the caller's latency minus
 *   the time the emulator spent on the Graph requests the gateway made (the union of their logged intervals: the two
 *   run at once), p50 and p99, after warm-up requests;
 * - (c) a reply with a 10 MB attachment through the outbox: accept until sent, and the host's peak memory growth as
 *   a ratio to the request body.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Agent } from 'undici';
import { createGraphClient } from '../../shared/graph/graphClient';
import { attachmentValue } from '../../shared/messages/messageGraph';
import { AppCredential } from '../../shared/identity/appCredential';
import { appRoot } from '../../shared/platform/packageInfo';
import { startAzurite } from '../emulators/azurite';
import type { BenchContext } from './benchContext';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { cpuMs, startProbedHost, type MemorySample } from './hostMemory';

const MB = 1024 * 1024;
const ATTACHMENT_BYTES = 25 * MB;
const DOWNLOADS = 5;
const THROUGHPUT_DOWNLOADS = 10;
const GETS = 300;
/** Requests before (b)'s and the floor's measured ones: the first `GET` of a host costs it 10 to 35 ms (compiling). */
const WARM_UP_REQUESTS = 20;
const REPLY_ATTACHMENT_BYTES = 10 * MB;
const PROCESSING_TIMEOUT_MS = 120_000;

/** One download's figures. */
export interface DownloadRound {
  /** Seconds to read the whole `$value` straight from the emulator (the baseline). */
  directSeconds: number;
  /** CPU ms of this process (the emulator serving it and the caller reading it) during the direct read. */
  directCpuMs: number;
  /** The same bytes through the gateway, with the host's memory. */
  gateway: MemorySample;
  /** True when both gave the attachment's bytes exactly (by SHA-256). */
  intact: boolean;
}

/** One download in the throughput rounds: the host is not settled first (no forced collection). */
export interface ThroughputRound {
  directSeconds: number;
  gatewaySeconds: number;
  /** CPU ms of the host during the gateway's download. */
  hostCpuMs: number;
  intact: boolean;
}

/** Figures of the message benchmark. */
export interface MessagesBenchResult {
  attachmentBytes: number;
  peakSource: 'VmHWM' | 'samples';
  /** The memory rounds: each gateway download between two settled states of the host (forced collections). */
  downloads: DownloadRound[];
  /** The throughput rounds: the same downloads back to back, the host left alone. */
  throughput: ThroughputRound[];
  /**
   * Milliseconds per `GET` of a message: the caller's latency, Graph's part, and the gateway's own (the rest); and
   * the invocation's duration as the host logs it (whole milliseconds, from the invocation's start until the worker
   * has written the whole response), less Graph's part: the function's own time without the local host's two HTTP
   * hops, which stand in for the Functions host's.
   */
  get: {
    requests: number;
    callerMs: number[];
    graphMs: number[];
    ownMs: number[];
    invocationMs: number[];
    invocationOwnMs: number[];
    hostCpuMsPerRequest: number;
  };
  /**
   * Milliseconds per `GET /api/problems/{slug}` on the same host: no Graph, no storage, a static answer. What any
   * function costs here (the local host's hop to the worker, the runtime), the floor under (b)'s own time.
   */
  floorMs: number[];
  /** The host's CPU ms per floor request. */
  floorCpuMsPerRequest: number;
  /** The reply: request body bytes, accept until sent with the host's memory, and the outcome. */
  reply: { bodyBytes: number; sample: MemorySample; outcome: string };
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** Reads a body to the end: its SHA-256 and length, never holding it whole. */
async function drain(body: AsyncIterable<Uint8Array>): Promise<{ bytes: number; hash: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of body) {
    bytes += chunk.length;
    hash.update(chunk);
  }
  return { bytes, hash: hash.digest('hex') };
}

/**
 * Milliseconds covered by at least one of `requests` (the union of their intervals): a message `GET` makes its two
 * Graph requests at once, so their durations overlap and a sum would count the overlap twice.
 */
export function coveredMs(requests: readonly { startedAtMs: number; durationMs: number }[]): number {
  const spans = requests.map((r) => [r.startedAtMs, r.startedAtMs + r.durationMs]).sort((a, b) => a[0] - b[0]);
  let covered = 0;
  let end = -Infinity;
  for (const [from, to] of spans) {
    if (to <= end) continue;
    covered += to - Math.max(from, end);
    end = to;
  }
  return covered;
}

/**
 * The durations of the next `count` successful invocations of `functionName` the host logged after `mark` (an offset
 * into its output), in order. The lines reach the output through a pipe and can trail the last response a little.
 */
async function invocationDurations(
  host: FunctionsHostProcess,
  mark: number,
  functionName: string,
  count: number,
): Promise<number[]> {
  const line = new RegExp(`Executed 'Functions\\.${functionName}' \\(Succeeded, Id=[^,]+, Duration=(\\d+)ms\\)`, 'g');
  const deadline = Date.now() + 5_000;
  for (;;) {
    const durations = [...host.output().slice(mark).matchAll(line)].map((m) => Number(m[1]));
    if (durations.length >= count) return durations.slice(0, count);
    if (Date.now() > deadline) {
      throw new Error(`the host logged ${durations.length} of ${count} invocations of ${functionName}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The p-th percentile (0..100) of `values`, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/**
 * Runs the three parts on two hosts of the same package: the memory figures, with the memory probe ((a)'s
 * downloads between two settled states, then (c)) on one, as before; the throughput rounds and (b) on a fresh one,
 * never settled. Settling (forced full collections) left the downloads after it up to three times slower, the
 * collector's threads busy, which no deployed worker sees; and downloads before the memory rounds would leave the
 * host's memory grown already, so that the memory rounds would show no growth.
 */
export async function runMessagesBench(ctx: BenchContext, caDir: string): Promise<MessagesBenchResult> {
  process.env.TEST_CA_DIR ??= caDir;
  const domain = ctx.cloud.tenant.domain;
  const mailbox = `support@${domain}`;
  const customer = `customer-bench@${domain}`;
  if (!ctx.cloud.tenant.findUser(customer)) ctx.cloud.tenant.addUser('customer-bench');
  const azurite = await startAzurite({ projectRoot: appRoot() });
  const profileDir = process.env.BENCH_MESSAGES_CPU_PROF;
  const settings = {
    ...ctx.cloud.settings(),
    AzureWebJobsStorage: azurite.connectionString,
    ALLOWED_READ_MAILBOXES: mailbox,
  };
  const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const probed = await startProbedHost(settings, { nodeArgs });
  let fresh: FunctionsHostProcess | undefined;
  const callerAgent = new Agent();
  try {
    const content = randomBytes(ATTACHMENT_BYTES);
    const expected = sha256(content);
    const seeded = ctx.cloud.graph.mailbox(mailbox).addMessage('inbox', {
      subject: 'messages benchmark',
      from: { emailAddress: { address: customer } },
      toRecipients: [{ emailAddress: { address: mailbox } }],
      body: { contentType: 'html', content: '<p>benchmark</p>' },
      attachments: [
        { name: 'big.bin', contentType: 'application/octet-stream', contentBytes: content.toString('base64') },
      ],
    });
    const attachmentId = ctx.cloud.graph.mailbox(mailbox).getMessage(seeded.id)!.attachments[0].id;
    const messagePath = `/api/mailboxes/${encodeURIComponent(mailbox)}/messages/${encodeURIComponent(seeded.id)}`;
    const graph = createGraphClient(ctx.config, new AppCredential(ctx.config), { maxTotalWaitSeconds: 30 });
    // Both reads take the bytes the same way: the direct one with the gateway's own `$value` read (its Graph client,
    // the body as a Node stream), the caller with undici's `request` (a Node stream too), so
    // that neither side's reading costs more than the other's.
    const attachmentPath = `${messagePath}/attachments/${encodeURIComponent(attachmentId)}`;
    const viaGateway = (host: FunctionsHostProcess) => async () => {
      const answer = await callerAgent.request({
        origin: host.url,
        path: attachmentPath,
        method: 'GET',
        headers: { 'x-functions-key': host.functionKey },
      });
      return { status: answer.statusCode, value: await drain(answer.body) };
    };
    const directly = async () => drain((await attachmentValue(graph, mailbox, seeded.id, attachmentId)).body);

    // (a) memory, on the first host: one warm-up download (code, token and connections are not the download's
    // cost), then each download between two settled states of the host.
    const { host, measure } = probed;
    const key = { 'x-functions-key': host.functionKey };
    const messageUrl = `${host.url}${messagePath}`;
    await viaGateway(host)();
    await directly();
    const downloads: DownloadRound[] = [];
    for (let i = 0; i < DOWNLOADS; i++) {
      const cpuBefore = process.cpuUsage();
      const started = process.hrtime.bigint();
      const direct = await directly();
      const directSeconds = Number(process.hrtime.bigint() - started) / 1e9;
      const cpu = process.cpuUsage(cpuBefore);
      const directCpuMs = (cpu.user + cpu.system) / 1000;
      const [gateway, through] = await measure(viaGateway(host));
      downloads.push({
        directSeconds,
        directCpuMs,
        gateway,
        intact: direct.hash === expected && through.hash === expected,
      });
    }

    // (c) a reply with a 10 MB attachment, accept until sent.
    const replyBody = JSON.stringify({
      text: 'Thanks, the file is attached.',
      attachments: [
        {
          name: 'answer.bin',
          contentType: 'application/octet-stream',
          contentBase64: randomBytes(REPLY_ATTACHMENT_BYTES).toString('base64'),
        },
      ],
    });
    const [sample, outcome] = await measure(async () => {
      const res = await fetch(`${messageUrl}/reply`, {
        method: 'POST',
        headers: { ...key, 'content-type': 'application/json' },
        body: replyBody,
      });
      const { id } = (await res.json().catch(() => ({}))) as { id?: string };
      if (res.status !== 202 || !id) return { status: res.status, value: `accept answered ${res.status}` };
      const deadline = Date.now() + PROCESSING_TIMEOUT_MS;
      for (;;) {
        const status = await fetch(`${host.url}/api/mail/${id}`, { headers: key });
        const { status: mailStatus } = (await status.json()) as { status: string };
        if (mailStatus === 'sent' || mailStatus === 'failed') return { status: status.status, value: mailStatus };
        if (Date.now() > deadline) return { status: status.status, value: `still ${mailStatus}` };
        await new Promise((r) => setTimeout(r, 50));
      }
    });
    // The throughput rounds and (b), on a fresh host never settled. Warm-up: the first three downloads through a host
    // cost it about twice the CPU of later ones while its streaming code is compiled.
    await probed.host.stop();
    // No memory probe: nothing is measured here but time and CPU.
    fresh = await startFunctionsHost(settings, { nodeArgs });
    const speedHost = fresh;
    const speedKey = { 'x-functions-key': speedHost.functionKey };
    for (let i = 0; i < 3; i++) {
      await viaGateway(speedHost)();
      await directly();
    }

    const throughput: ThroughputRound[] = [];
    for (let i = 0; i < THROUGHPUT_DOWNLOADS; i++) {
      let started = process.hrtime.bigint();
      const direct = await directly();
      const directSeconds = Number(process.hrtime.bigint() - started) / 1e9;
      const cpuBefore = cpuMs(fresh.pid);
      started = process.hrtime.bigint();
      const through = await viaGateway(speedHost)();
      const gatewaySeconds = Number(process.hrtime.bigint() - started) / 1e9;
      throughput.push({
        directSeconds,
        gatewaySeconds,
        hostCpuMs: cpuMs(fresh.pid) - cpuBefore,
        intact: through.status === 200 && direct.hash === expected && through.value.hash === expected,
      });
    }

    // (b) the gateway's own time per GET of a message: the caller's latency minus Graph's logged time.
    const getMessage = async () => {
      const res = await fetch(`${speedHost.url}${messagePath}?body=text`, { headers: speedKey });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`GET of the message answered ${res.status}:\n${speedHost.output()}`);
    };
    const getFloor = async () => {
      const res = await fetch(`${speedHost.url}/api/problems/message-not-found`);
      await res.arrayBuffer();
    };
    const warmUpMark = speedHost.output().length;
    for (let i = 0; i < WARM_UP_REQUESTS; i++) {
      await getMessage();
      await getFloor();
    }
    // Every warm-up's line in the output first, so that none is taken for a measured request's.
    await invocationDurations(speedHost, warmUpMark, 'message', WARM_UP_REQUESTS);
    const outputMark = speedHost.output().length;
    const getsCpu = cpuMs(fresh.pid);
    const callerMs: number[] = [];
    const graphMs: number[] = [];
    for (let i = 0; i < GETS; i++) {
      const mark = ctx.cloud.graph.requests.length;
      const started = process.hrtime.bigint();
      await getMessage();
      callerMs.push(Number(process.hrtime.bigint() - started) / 1e6);
      graphMs.push(coveredMs(ctx.cloud.graph.requests.slice(mark)));
    }
    const hostCpuMsPerRequest = (cpuMs(fresh.pid) - getsCpu) / GETS;
    const ownMs = callerMs.map((ms, i) => ms - graphMs[i]);
    const invocationMs = await invocationDurations(speedHost, outputMark, 'message', GETS);
    const invocationOwnMs = invocationMs.map((ms, i) => ms - graphMs[i]);
    const floorCpu = cpuMs(fresh.pid);
    const floorMs: number[] = [];
    for (let i = 0; i < GETS; i++) {
      const started = process.hrtime.bigint();
      await getFloor();
      floorMs.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
    const floorCpuMsPerRequest = (cpuMs(fresh.pid) - floorCpu) / GETS;

    return {
      attachmentBytes: ATTACHMENT_BYTES,
      peakSource: probed.peakSource(),
      downloads,
      throughput,
      get: { requests: GETS, callerMs, graphMs, ownMs, invocationMs, invocationOwnMs, hostCpuMsPerRequest },
      floorMs,
      floorCpuMsPerRequest,
      reply: { bodyBytes: Buffer.byteLength(replyBody), sample, outcome },
    };
  } finally {
    await callerAgent.close();
    await probed.host.stop();
    await fresh?.stop();
    await azurite.stop();
  }
}
