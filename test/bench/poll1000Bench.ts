/**
 * Polling at scale, as issue 17 asks: 1,000 mailboxes watched with `delivery: poll` at POLL_INTERVAL_SECONDS=60 by
 * four functions host processes (the package that ships, each in its own process, every one running the
 * `pollMailboxes` timer and the `pollMailbox` queue trigger) sharing one Azurite and one Graph emulator. Mail arrives
 * at random mailboxes throughout the window, and a consumer drains `mail-events`.
 *
 * Measured from the emulator's request log over the window: Graph requests (and HTTP requests) per cycle and per
 * mailbox per cycle; for every mailbox the gaps between its consecutive delta reads (and from the window's edges), so
 * a mailbox that fell behind or was never read shows; the share of each cycle during which a poll request was in
 * flight; and the hosts' CPU time per cycle from `/proc/<pid>/stat`. Mails → events counts what polling delivered.
 *
 * Baseline in the same run, once the hosts are stopped: the same 1,000 folders read once each, sequentially, by one
 * process with the gateway's own poll reader (same Graph client, same catch-up, same storage) — one cycle's work
 * without the queue spreading it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { QueueClient } from '@azure/storage-queue';
import { createServices } from '../../shared/app/services';
import { sendBatches } from '../../shared/graph/batch';
import { forEachLimited } from '../../shared/platform/concurrency';
import { MAIL_EVENTS_QUEUE } from '../../shared/events/eventPublisher';
import { loadConfig } from '../../shared/platform/config';
import { appRoot } from '../../shared/platform/packageInfo';
import { startAzurite } from '../emulators/azurite';
import type { LocalCloud } from '../emulators/localCloud';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { percentiles, type Percentiles } from './benchHost';

/** Sizes of one run. */
export interface Poll1000Options {
  mailboxes: number;
  hosts: number;
  intervalSeconds: number;
  /** The measured window, after one interval of warm-up. */
  windowSeconds: number;
  /** Mails delivered per second during the window, to random mailboxes. */
  mailsPerSecond: number;
}

/** Defaults: the 1,000 mailboxes, 4 hosts, 60 s; BENCH_POLL1000_WINDOW_SECONDS / _MAILBOXES override. */
export function poll1000Options(env: NodeJS.ProcessEnv = process.env): Poll1000Options {
  return {
    mailboxes: Number(env.BENCH_POLL1000_MAILBOXES) || 1000,
    hosts: 4,
    intervalSeconds: 60,
    windowSeconds: Number(env.BENCH_POLL1000_WINDOW_SECONDS) || 240,
    mailsPerSecond: 1,
  };
}

/** Figures of one run. */
export interface Poll1000Result {
  options: Poll1000Options;
  windowSeconds: number;
  cycles: number;
  /** Graph requests the emulator answered (a $batch's items counted each), per cycle. */
  graphRequestsPerCycle: number;
  /** HTTP requests that reached the emulator (a $batch is one), per cycle. */
  httpRequestsPerCycle: number;
  /** Delta reads (first pages and follow-ups) per cycle. */
  deltaRequestsPerCycle: number;
  /** Graph throttling answers (429) in the window. */
  throttled: number;
  /** Per mailbox: its longest gap between delta reads, window edges included, s. */
  maxGap: { p50: number; p99: number; max: number };
  /** Every gap between two consecutive reads of a mailbox, s. */
  gaps: Percentiles;
  /** Mailboxes with a gap longer than the interval + slack, and those never read in the window. */
  behind: number;
  neverRead: number;
  /** Gaps of one and a half intervals or more: a cycle in which the mailbox was not read at all. */
  skipped: number;
  /** Gaps shorter than half the interval: a mailbox read twice in one interval. */
  extraReads: number;
  /** Host log lines at warning or above in the window (a failed invocation, a retry), and a few of them. */
  hostWarnings: number;
  hostWarningSamples: string[];
  slackSeconds: number;
  /** Per cycle: the share of its 60 s with at least one poll request in flight at the emulator. */
  busyShare: number[];
  /** Per cycle: first to last poll request, s. */
  spreadSeconds: number[];
  /** The four hosts' CPU seconds per cycle, together. */
  cpuSecondsPerCycle: number;
  /** Mails delivered in the window and those that reached a `mail.received` event, with delivery → event. */
  mails: number;
  evented: number;
  latency: Percentiles;
  /** Baseline: one process reading every folder once, sequentially. */
  sequential: { seconds: number; cpuSeconds: number; reads: number };
  /**
   * What JSON batching could save at most: every folder's delta GET alone (16 at a time) against the same GETs in
   * `$batch`es of 20 (4 at a time), with the gateway's Graph client; this process's CPU (the client and the in-process
   * emulator together) and HTTP requests.
   */
  batching: Record<'single' | 'batched', { seconds: number; cpuSeconds: number; httpRequests: number; ok: number }>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** utime + stime of a process, s (clock ticks of 100 Hz). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Length of the union of [start, end) intervals, ms. */
function unionMs(intervals: Array<[number, number]>): number {
  const sorted = [...intervals].sort((a, b) => a[0] - b[0]);
  let total = 0;
  let [from, to] = [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY];
  for (const [s, e] of sorted) {
    if (s > to) {
      if (to > from) total += to - from;
      [from, to] = [s, e];
    } else to = Math.max(to, e);
  }
  if (to > from) total += to - from;
  return total;
}

/** Runs the benchmark on `cloud` (its Graph latency set by the caller) with a fresh Azurite. */
export async function runPoll1000Bench(cloud: LocalCloud, options: Poll1000Options): Promise<Poll1000Result> {
  const domain = cloud.tenant.domain;
  const graph = cloud.graph;
  const azurite = await startAzurite({ projectRoot: appRoot() });
  const settings: Record<string, string> = {
    ...cloud.settings(),
    AzureWebJobsStorage: azurite.connectionString,
    ALLOWED_WATCH_MAILBOXES: `*@${domain}`,
    ALLOWED_READ_MAILBOXES: `*@${domain}`,
    POLL_INTERVAL_SECONDS: String(options.intervalSeconds),
    SANDBOX_HOST_LOG_LEVEL: process.env.BENCH_POLL1000_HOST_LOG ?? 'warning',
  };
  const hosts: FunctionsHostProcess[] = [];
  const mailboxes = Array.from({ length: options.mailboxes }, (_, i) => `poll1000-${i}@${domain}`);
  for (const mailbox of mailboxes) cloud.tenant.addUser(mailbox);
  const userIds = new Map(mailboxes.map((m) => [cloud.tenant.findUser(m)!.id, m] as const));
  const events = new QueueClient(azurite.connectionString, MAIL_EVENTS_QUEUE);
  try {
    for (let i = 0; i < options.hosts; i++) hosts.push(await startFunctionsHost(settings));
    // Watch every mailbox, 16 at a time, round robin over the hosts, as a script behind a load balancer would.
    let next = 0;
    const watchStarted = Date.now();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < mailboxes.length) {
          const i = next++;
          const host = hosts[i % hosts.length];
          let res: Response;
          // A 503 (storage slow to answer on a loaded machine) says to repeat the request: a script would.
          for (let attempt = 1; ; attempt++) {
            res = await fetch(`${host.url}/api/mailboxes/${mailboxes[i]}`, {
              method: 'PUT',
              headers: { 'x-functions-key': host.functionKey, 'content-type': 'application/json' },
              body: JSON.stringify({ delivery: 'poll' }),
            });
            if (res.status !== 503 || attempt >= 5) break;
            await res.arrayBuffer();
            await sleep(2000);
          }
          const body = (await res.json()) as { mode?: string; detail?: string };
          if (body.mode !== 'poll') throw new Error(`watching ${mailboxes[i]} failed: ${res.status} ${body.detail}`);
        }
      }),
    );
    console.error(
      `  poll1000: ${mailboxes.length} mailboxes watched in ${((Date.now() - watchStarted) / 1000).toFixed(0)} s`,
    );
    await events.createIfNotExists();

    const deliveredAt = new Map<string, number>();
    const latencies: number[] = [];
    let stop = false;
    const reader = (async () => {
      while (!stop) {
        const { receivedMessageItems } = await events.receiveMessages({ numberOfMessages: 32 });
        const now = Date.now();
        for (const m of receivedMessageItems) {
          const event = JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')) as {
            type: string;
            data: { messageId: string };
          };
          const at = deliveredAt.get(event.data.messageId);
          if (event.type === 'mail.received' && at !== undefined) latencies.push(now - at);
          await events.deleteMessage(m.messageId, m.popReceipt);
        }
        if (receivedMessageItems.length === 0) await sleep(200);
      }
    })();

    // One interval of warm-up, so every mailbox's first read is behind us and the window sees steady polling.
    await sleep((options.intervalSeconds + 10) * 1000);
    const mark = graph.requests.length;
    const cpuBefore = hosts.map((h) => cpuSeconds(h.pid));
    const outputStart = hosts.map((h) => h.output().length);
    const started = Date.now();
    const mails = Math.round(options.windowSeconds * options.mailsPerSecond);
    const progress = setInterval(
      () =>
        console.error(
          `  poll1000: ${((Date.now() - started) / 1000).toFixed(0)} s, ${graph.requests.length - mark} Graph requests, ${latencies.length} events`,
        ),
      30_000,
    );
    for (let i = 0; i < mails; i++) {
      const due = started + ((i + Math.random()) / mails) * options.windowSeconds * 1000;
      await sleep(Math.max(0, due - Date.now()));
      const mailbox = mailboxes[Math.floor(Math.random() * mailboxes.length)];
      deliveredAt.set(graph.mailbox(mailbox).addMessage('inbox', { subject: `poll1000 ${i}` }).id, Date.now());
    }
    await sleep(Math.max(0, started + options.windowSeconds * 1000 - Date.now()));
    const ended = Date.now();
    const outputMark = hosts.map((h) => h.output().length);
    const cpuAfter = hosts.map((h) => cpuSeconds(h.pid));
    const window = graph.requests.slice(mark).filter((r) => r.startedAt.getTime() < ended);
    // The last mails get one more interval (and the timer's 5 s) to be read.
    const deadline = Date.now() + (options.intervalSeconds + 10) * 1000;
    while (latencies.length < mails && Date.now() < deadline) await sleep(500);
    clearInterval(progress);
    stop = true;
    await reader;
    const warnings = hosts.flatMap((h, i) =>
      h
        .output()
        .slice(outputStart[i], outputMark[i])
        .split('\n')
        .filter((line) => /warn|error|fail|retr/i.test(line)),
    );
    for (const host of hosts.splice(0)) await host.stop();

    const windowMs = ended - started;
    const intervalMs = options.intervalSeconds * 1000;
    const cycles = windowMs / intervalMs;
    const isDelta = (path: string) => path.endsWith('/messages/delta');
    const deltas = window.filter((r) => isDelta(r.path));
    const slackSeconds = 5;
    // Each mailbox's delta reads: a first page is one without $skiptoken (a read's follow-up pages carry one).
    const readsOf = new Map<string, number[]>([...userIds.keys()].map((id) => [id, []]));
    for (const r of deltas) if (r.mailbox && !r.query.$skiptoken) readsOf.get(r.mailbox)?.push(r.startedAt.getTime());
    const gaps: number[] = [];
    const maxGaps: number[] = [];
    let behind = 0;
    let neverRead = 0;
    let extraReads = 0;
    let skipped = 0;
    for (const times of readsOf.values()) {
      if (times.length === 0) neverRead++;
      const edges = [started, ...times.sort((a, b) => a - b), ended];
      let max = 0;
      for (let i = 1; i < edges.length; i++) {
        const gap = edges[i] - edges[i - 1];
        if (i > 1 && i < edges.length - 1) gaps.push(gap / 1000);
        if (i > 1 && i < edges.length - 1 && gap < intervalMs / 2) extraReads++;
        if (gap >= intervalMs * 1.5) skipped++;
        max = Math.max(max, gap);
      }
      maxGaps.push(max / 1000);
      if (max > intervalMs + slackSeconds * 1000) behind++;
    }
    if (process.env.BENCH_POLL1000_DUMP) {
      // Diagnosis: every mailbox's read times (ms from the window's start) and the hosts' warnings.
      const reads: Record<string, number[]> = {};
      for (const [id, times] of readsOf) reads[userIds.get(id) ?? id] = times.map((t) => t - started);
      writeFileSync(process.env.BENCH_POLL1000_DUMP, JSON.stringify({ started, reads, warnings }, null, 1));
    }
    const sortedMax = [...maxGaps].sort((a, b) => a - b);
    const busyShare: number[] = [];
    const spreadSeconds: number[] = [];
    for (let c = 0; c + 1 <= cycles; c++) {
      const [from, to] = [started + c * intervalMs, started + (c + 1) * intervalMs];
      const inCycle = deltas.filter((r) => r.startedAt.getTime() >= from && r.startedAt.getTime() < to);
      const spans = inCycle.map((r): [number, number] => [
        r.startedAt.getTime(),
        Math.min(to, r.startedAt.getTime() + r.durationMs),
      ]);
      busyShare.push(unionMs(spans) / intervalMs);
      const starts = spans.map((s) => s[0]);
      spreadSeconds.push(starts.length ? (Math.max(...starts) - Math.min(...starts)) / 1000 : 0);
    }
    const perCycle = (n: number) => n / cycles;
    const graphRequests = window.filter((r) => r.path !== '/v1.0/$batch').length;

    // Baseline: one process, the gateway's poll reader, every folder once in a row.
    const services = createServices(loadConfig({ ...process.env, ...settings }));
    const records = await services.watchStore.list();
    const cpu0 = process.cpuUsage();
    const t0 = Date.now();
    for (const record of records) await services.pollReader.catchUp.run(record);
    const cpu = process.cpuUsage(cpu0);
    const sequentialSeconds = (Date.now() - t0) / 1000;

    // The batching question: the same delta GETs one by one and in $batches.
    const links = (await services.watchStore.list()).map((r) => r.deltaLink!.slice(graph.url.length + '/v1.0'.length));
    const measure = async (run: () => Promise<number>) => {
      const [c0, w0, h0] = [process.cpuUsage(), Date.now(), graph.requests.filter((r) => !r.batched).length];
      const ok = await run();
      const c = process.cpuUsage(c0);
      return {
        seconds: (Date.now() - w0) / 1000,
        cpuSeconds: (c.user + c.system) / 1e6,
        httpRequests: graph.requests.filter((r) => !r.batched).length - h0,
        ok,
      };
    };
    const single = await measure(async () => {
      let ok = 0;
      await forEachLimited(links, 16, async (link) => {
        await services.graph.api(link).header('Prefer', 'odata.maxpagesize=50').get();
        ok++;
      });
      return ok;
    });
    const batched = await measure(async () => {
      const answers = await sendBatches(
        services.graph,
        links.map((url, i) => ({ id: String(i), method: 'GET' as const, url })),
        { concurrency: 4 },
      );
      return [...answers.values()].filter((a) => a.status === 200).length;
    });

    return {
      options,
      windowSeconds: windowMs / 1000,
      cycles,
      graphRequestsPerCycle: perCycle(graphRequests),
      httpRequestsPerCycle: perCycle(window.filter((r) => !r.batched).length),
      deltaRequestsPerCycle: perCycle(deltas.length),
      throttled: window.filter((r) => r.status === 429).length,
      maxGap: {
        p50: sortedMax[Math.floor(sortedMax.length / 2)],
        p99: sortedMax[Math.min(sortedMax.length - 1, Math.floor(sortedMax.length * 0.99))],
        max: sortedMax[sortedMax.length - 1],
      },
      gaps: percentiles(gaps),
      behind,
      neverRead,
      extraReads,
      skipped,
      hostWarnings: warnings.length,
      hostWarningSamples: [...new Set(warnings.map((w) => w.slice(0, 300)))].slice(0, 5),
      slackSeconds,
      busyShare,
      spreadSeconds,
      cpuSecondsPerCycle: perCycle(cpuAfter.reduce((s, v, i) => s + v - cpuBefore[i], 0)),
      mails,
      evented: latencies.length,
      latency: percentiles(latencies),
      batching: { single, batched },
      sequential: {
        seconds: sequentialSeconds,
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        reads: records.length,
      },
    };
  } finally {
    for (const host of hosts) await host.stop();
    await azurite.stop();
  }
}
