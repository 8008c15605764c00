/**
 * The outbox across instances, as issue 8 asks: four functions host processes (the package that ships, each in its
 * own process) share one Azurite and one Graph emulator; 256 concurrent callers post mail from ten mailboxes to
 * them, round robin, at Exchange's 30 messages per minute (5,000 mails take about 17 minutes a run);
 * `BENCH_OUTBOX_RATE` scales the rate (the same number for the hosts' `MAILBOX_MESSAGES_PER_MINUTE` and the
 * emulator's Exchange limit), and `BENCH_OUTBOX_MAILS` the mail count. A consumer drains `mail-events` as a
 * deployment's would, counting the `mail.sent` events.
 *
 * - (a) the gateway: every host paces through the shared pacer (one Table row per mailbox);
 * - (b) the baseline, in the same run: the same hosts, but each with its own storage account, so each paces alone
 *   as an in-memory per-instance limiter would (today's design before the outbox);
 * - (c) as (a), with one host killed (SIGKILL) once 40 % of the mail was sent; callers whose host is gone retry on
 *   the next with the same `Idempotency-Key`, as a client behind a load balancer would;
 * - (d) each host's peak resident memory (`VmHWM`) during (a) and (c).
 *
 * Counted at the emulator: Graph's 429s, mail it accepted twice (the same subject), NDRs, and how long Exchange held
 * mail in the Outbox because it arrived above the rate. Counted at the gateway: every accepted id's final status
 * (`GET /api/mail/{id}`); a lost mail is one accepted with 202 that neither reached Graph nor failed visibly.
 */
import { readFileSync } from 'node:fs';
import { QueueClient } from '@azure/storage-queue';
import { MAIL_EVENTS_QUEUE } from '../../shared/events/eventPublisher';
import { startAzurite, type RunningAzurite } from '../emulators/azurite';
import { LocalCloud } from '../emulators/localCloud';
import type { SubmissionRecord } from '../emulators/graph/submissionQueue';
import { readTestCa } from '../emulators/testCa';
import { appRoot } from '../../shared/platform/packageInfo';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';

/** Sizes of one run; the defaults are the issue's. */
export interface OutboxBenchOptions {
  mails: number;
  mailboxes: number;
  callers: number;
  hosts: number;
  /** Messages per minute per mailbox, for the hosts' pacer and for the emulator's Exchange alike. */
  messagesPerMinute: number;
}

/**
 * Default sizes: the 5,000 mails at Exchange's real 30 messages per minute (about 17 minutes a run);
 * `BENCH_OUTBOX_MAILS` and `BENCH_OUTBOX_RATE` override the mail count and the rate.
 */
export function outboxBenchOptions(env: NodeJS.ProcessEnv = process.env): OutboxBenchOptions {
  return {
    mails: Number(env.BENCH_OUTBOX_MAILS) || 5000,
    mailboxes: 10,
    callers: 256,
    hosts: 4,
    messagesPerMinute: Number(env.BENCH_OUTBOX_RATE) || 30,
  };
}

/** Figures of one run. */
export interface OutboxRunResult {
  name: string;
  /** Accept round trips (first try to 202, retries on another host included), ms. */
  accept: { p50: number; p99: number; refused: number };
  /** Seconds from the first post to the last mail Graph accepted. */
  seconds: number;
  /** Per mailbox: Graph-accepted sends in the busiest 60 s, and the sustained rate between first and last, per minute. */
  busiestMinute: { min: number; max: number };
  sustainedRatio: { min: number; mean: number };
  /** The same from the moment the last mail was accepted (the callers' load on the 2 shared cores over) to the end. */
  afterAcceptRatio: { min: number; mean: number };
  /** `mail.sent` events the consumer took off `mail-events`. */
  sentEvents: number;
  throttled429: number;
  duplicates: number;
  ndrs: number;
  /** Mails Exchange still held in an Outbox when Graph had accepted the last one, and the longest hold so far, s. */
  heldInOutbox: number;
  longestHoldSeconds: number;
  /** Final statuses by the gateway's status API. */
  statuses: Record<string, number>;
  lost: number;
  /** Entra token requests per 1,000 sends, all hosts together. */
  tokenRequestsPer1000: number;
  /** Peak resident memory of each host that ran to the end, and its resident memory once started, MB. */
  hostMemoryMb: { startedMb: number; peakMb: number }[];
  killed?: { afterSent: number };
}

const MB = 1024 * 1024;

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function residentMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? (Number(match[1]) * 1024) / MB : NaN;
}

/** Most timestamps (ms) within any half-open 60 s window. */
function busiest60s(times: number[]): number {
  let best = 0;
  let start = 0;
  for (let end = 0; end < times.length; end++) {
    while (times[end] - times[start] >= 60_000) start++;
    best = Math.max(best, end - start + 1);
  }
  return best;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Takes the `mail-events` messages off each account's queue as they come, as the services a deployment feeds would,
 * so that the queue does not grow by one message per mail (Azurite scans every message on each receive); `stop`
 * drains what is left and returns the number of `mail.sent` events.
 */
function drainEvents(connectionStrings: string[]): { stop: () => Promise<number> } {
  let sent = 0;
  let stopping = false;
  const drain = async (queue: QueueClient): Promise<void> => {
    await queue.createIfNotExists();
    for (;;) {
      const { receivedMessageItems: items } = await queue.receiveMessages({ numberOfMessages: 32 });
      for (const item of items) {
        const event = JSON.parse(Buffer.from(item.messageText, 'base64').toString()) as { type?: string };
        if (event.type === 'mail.sent') sent++;
        await queue.deleteMessage(item.messageId, item.popReceipt);
      }
      if (items.length === 0) {
        if (stopping) return;
        await sleep(500);
      }
    }
  };
  const running = Promise.all(connectionStrings.map((cs) => drain(new QueueClient(cs, MAIL_EVENTS_QUEUE))));
  return {
    stop: async () => {
      stopping = true;
      await running;
      return sent;
    },
  };
}

/** Runs (a), (b) and (c) and returns their figures, in that order. */
export async function runOutboxBench(caDir: string, options: OutboxBenchOptions): Promise<OutboxRunResult[]> {
  process.env.TEST_CA_DIR ??= caDir;
  const senders = Array.from({ length: options.mailboxes }, (_, i) => `sender${i}`);
  const cloud = await LocalCloud.start({
    ca: readTestCa(caDir),
    credential: 'certificate-pem',
    users: [...senders, 'someone'],
    graph: { latencyMs: { min: 20, max: 60 }, limits: { messagesPerMinute: options.messagesPerMinute } },
  });
  try {
    const results: OutboxRunResult[] = [];
    const runs = (process.env.BENCH_OUTBOX_RUNS ?? 'a,b,c').split(',');
    if (runs.includes('a')) results.push(await runOnce(cloud, options, 'a', 'gateway: one pacer shared by 4 hosts'));
    if (runs.includes('b')) {
      results.push(await runOnce(cloud, options, 'b', 'baseline: a pacer per host (own storage each)'));
    }
    if (runs.includes('c')) results.push(await runOnce(cloud, options, 'c', 'gateway, one host killed at 40 %'));
    return results;
  } finally {
    await cloud.close();
  }
}

async function runOnce(
  cloud: LocalCloud,
  options: OutboxBenchOptions,
  run: 'a' | 'b' | 'c',
  name: string,
): Promise<OutboxRunResult> {
  const graph = cloud.graph;
  const domain = cloud.tenant.domain;
  const mailboxes = Array.from({ length: options.mailboxes }, (_, i) => `sender${i}@${domain}`);
  // Mail an earlier run left in Exchange's Outbox (the baseline's excess) would hold this run's back: let it leave.
  while (mailboxes.some((m) => graph.submissions(m).queued > 0)) await sleep(1000);
  graph.reset();
  const accounts: RunningAzurite[] = [];
  const hosts: FunctionsHostProcess[] = [];
  const alive: boolean[] = [];
  try {
    const perHostStorage = run === 'b';
    for (let i = 0; i < (perHostStorage ? options.hosts : 1); i++) {
      accounts.push(await startAzurite({ projectRoot: appRoot() }));
    }
    const settings = (i: number): Record<string, string> => ({
      ...cloud.settings(),
      ALLOWED_SENDERS: `*@${domain}`,
      AzureWebJobsStorage: accounts[perHostStorage ? i : 0].connectionString,
      MAILBOX_MESSAGES_PER_MINUTE: String(options.messagesPerMinute),
      SANDBOX_HOST_LOG_LEVEL: process.env.BENCH_OUTBOX_HOST_LOG ?? 'warning',
      SANDBOX_QUEUE_PROCESSING_VISIBILITY_SECONDS: '30',
    });
    for (let i = 0; i < options.hosts; i++) {
      hosts.push(await startFunctionsHost(settings(i)));
      alive.push(true);
    }
    const startedMb = hosts.map((h) => residentMb(h.pid, 'VmRSS'));
    const tokensBefore = cloud.entra.tokenRequests.length;

    const subjectPrefix = `outbox-bench-${run}-${Date.now()}`;
    const consumer = drainEvents(accounts.map((a) => a.connectionString));
    const acceptedSends = () => mailboxes.reduce((n, m) => n + graph.sendsAccepted(m), 0);
    let killedAt: number | undefined;
    const killer =
      run === 'c'
        ? (async () => {
            while (acceptedSends() < options.mails * 0.4) await sleep(200);
            killedAt = acceptedSends();
            alive[options.hosts - 1] = false;
            process.kill(hosts[options.hosts - 1].pid, 'SIGKILL');
          })()
        : Promise.resolve();

    // 256 callers post every mail; a caller whose host is gone tries the next one with the same Idempotency-Key.
    const ids: string[] = new Array<string>(options.mails);
    const acceptedBy: number[] = new Array<number>(options.mails);
    const latencies: number[] = [];
    let refused = 0;
    let next = 0;
    const started = Date.now();
    const progress = setInterval(
      () =>
        console.error(
          `  (${run}) ${((Date.now() - started) / 1000).toFixed(0)} s: ${ids.filter(Boolean).length} accepted, ${acceptedSends()} sent to Graph`,
        ),
      10_000,
    );
    await Promise.all(
      Array.from({ length: options.callers }, async () => {
        while (next < options.mails) {
          const i = next++;
          const body = JSON.stringify({
            from: mailboxes[i % mailboxes.length],
            to: [`someone@${domain}`],
            subject: `${subjectPrefix}-${i}`,
            text: 'outbox benchmark',
          });
          const t0 = process.hrtime.bigint();
          for (let attempt = 0; attempt < options.hosts * 2; attempt++) {
            const h = (i + attempt) % options.hosts;
            if (!alive[h]) continue;
            try {
              const res = await fetch(`${hosts[h].url}/api/mail/send`, {
                method: 'POST',
                headers: {
                  'content-type': 'application/json',
                  'x-functions-key': hosts[h].functionKey,
                  'idempotency-key': `${subjectPrefix}-${i}`,
                },
                body,
              });
              const answer = (await res.json()) as { id?: string };
              if (res.status !== 202 || !answer.id) {
                refused++;
                break;
              }
              ids[i] = answer.id;
              acceptedBy[i] = h;
              latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
              break;
            } catch {
              // The host died under this request: whether it stored the mail or not, the key makes a retry safe.
            }
          }
        }
      }),
    );
    await killer;
    const acceptedAt = Date.now();

    // Wait until Graph accepted every mail, or nothing moved for a while (then count what is missing).
    const accepted = ids.filter(Boolean).length;
    let last = -1;
    let stillSince = Date.now();
    const intervalMs = 60_000 / options.messagesPerMinute;
    while (acceptedSends() < accepted) {
      const now = acceptedSends();
      if (now !== last) [last, stillSince] = [now, Date.now()];
      if (Date.now() - stillSince > Math.max(90_000, intervalMs * 20)) break;
      await sleep(500);
    }
    const seconds = (Date.now() - started) / 1000;
    clearInterval(progress);
    // A little longer, so that a late duplicate would still be counted.
    await sleep(Math.max(3000, intervalMs * 3));

    const sentEvents = await consumer.stop();
    const records: SubmissionRecord[] = mailboxes.flatMap((m) => graph.submissions(m).messages);
    const ours = records.filter((r) => r.subject.startsWith(subjectPrefix));
    const subjects = new Set(ours.map((r) => r.subject));
    // Each mailbox's Graph-accepted sends of this run, in time order.
    const sendTimes = mailboxes.map((m) =>
      graph
        .submissions(m)
        .messages.filter((r) => r.subject.startsWith(subjectPrefix))
        .map((r) => r.submittedAt.getTime())
        .sort((a, b) => a - b),
    );
    const busiest = sendTimes.map(busiest60s);
    const perMinuteRatio = (count: number, spanMs: number) =>
      ((count / Math.max(1, spanMs)) * 60_000) / options.messagesPerMinute;
    const sustained = sendTimes.map((t) => perMinuteRatio(t.length - 1, t[t.length - 1] - t[0]));
    const afterAccept = sendTimes
      .map((t) => t.filter((at) => at >= acceptedAt))
      .filter((t) => t.length >= 2)
      .map((t) => perMinuteRatio(t.length - 1, t[t.length - 1] - t[0]));
    const holdSeconds = ours.map((r) => ((r.deliveredAt ?? new Date()).getTime() - r.submittedAt.getTime()) / 1000);

    // Every accepted id's final status, asked of the host that accepted it (in (b) each host has its own storage),
    // or of a host still running.
    const statuses: Record<string, number> = {};
    const live = hosts.find((_, i) => alive[i]) as FunctionsHostProcess;
    const acceptedIndexes = ids.flatMap((id, i) => (id ? [i] : []));
    let cursor = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (cursor < acceptedIndexes.length) {
          const i = acceptedIndexes[cursor++];
          const host = alive[acceptedBy[i]] ? hosts[acceptedBy[i]] : live;
          const res = await fetch(`${host.url}/api/mail/${ids[i]}`, {
            headers: { 'x-functions-key': host.functionKey },
          });
          const status = res.ok ? ((await res.json()) as { status: string }).status : `HTTP ${res.status}`;
          statuses[status] = (statuses[status] ?? 0) + 1;
        }
      }),
    );
    if (process.env.BENCH_OUTBOX_HOST_LOG) {
      // Diagnosis: what the hosts' outbox invocations came to, from their logs.
      const counts: Record<string, number> = {};
      for (const host of hosts) {
        for (const m of host.output().matchAll(/outbox mail \S+ for \S+: (\w+)|(will be retried)|(PacerContention)/g)) {
          const key = m[1] ?? m[2] ?? m[3];
          counts[key] = (counts[key] ?? 0) + 1;
        }
      }
      console.error(`  (${run}) host log: ${JSON.stringify(counts)}`);
    }
    latencies.sort((x, y) => x - y);
    const sent = subjects.size;
    return {
      name: `(${run}) ${name}`,
      accept: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), refused },
      seconds,
      busiestMinute: { min: Math.min(...busiest), max: Math.max(...busiest) },
      sustainedRatio: {
        min: Math.min(...sustained),
        mean: sustained.reduce((s, x) => s + x, 0) / sustained.length,
      },
      afterAcceptRatio: {
        min: Math.min(...afterAccept),
        mean: afterAccept.reduce((sum, x) => sum + x, 0) / Math.max(1, afterAccept.length),
      },
      sentEvents,
      throttled429: graph.requests.filter((r) => r.status === 429).length,
      duplicates: ours.length - subjects.size,
      ndrs: graph.ndrs.length,
      heldInOutbox: ours.filter((r) => r.outcome === 'queued').length,
      longestHoldSeconds: Math.max(0, ...holdSeconds),
      statuses,
      // Accepted, but Graph never saw it and the gateway does not say it failed.
      lost: Math.max(0, accepted - sent - (statuses.failed ?? 0)),
      tokenRequestsPer1000: ((cloud.entra.tokenRequests.length - tokensBefore) / Math.max(1, sent)) * 1000,
      hostMemoryMb: hosts.flatMap((h, i) =>
        alive[i] ? [{ startedMb: startedMb[i], peakMb: residentMb(h.pid, 'VmHWM') }] : [],
      ),
      ...(killedAt !== undefined ? { killed: { afterSent: killedAt } } : {}),
    };
  } finally {
    await Promise.all(hosts.map((h) => h.stop()));
    await Promise.all(accounts.map((a) => a.stop()));
  }
}
