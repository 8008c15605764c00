/**
 * Poll-mode benchmark through the gateway's real functions in the local host, its timers on their schedules:
 * mailboxes watched with `delivery: poll` at the run's POLL_INTERVAL_SECONDS (the in-process host reads its config
 * once, so each interval is its own `npm run bench` run), mail delivered at random moments, and the time from
 * delivery to the event on `mail-events` (p50/p99); Graph requests per mailbox per hour, against a mailbox watched by
 * push that receives mail at the same rate, in the same window.
 */
import { QueueClient } from '@azure/storage-queue';
import { freePort } from '../emulators/azurite';
import type { LocalFunctionsHost } from '../sandbox/host';
import type { BenchContext } from './benchContext';
import { BENCH_FUNCTION_KEY, percentiles, startBenchHost, type Percentiles } from './benchHost';

/** Poll-mode figures. */
export interface PollBenchResult {
  intervalSeconds: number;
  mailboxes: number;
  mails: number;
  /** Mails that reached an event before the run ended. */
  delivered: number;
  latency: Percentiles;
  windowSeconds: number;
  /** Graph requests per polled mailbox per hour (delta reads and what they page through). */
  pollRequestsPerMailboxHour: number;
  /** Graph requests per pushed mailbox per hour with the same mail rate (each notification's metadata read). */
  pushRequestsPerMailboxHour: number;
}

const KEY = BENCH_FUNCTION_KEY;
const MAILBOXES = 20;

async function watch(host: LocalFunctionsHost, mailbox: string, delivery: 'poll' | 'push'): Promise<void> {
  const res = await fetch(`${host.url}/api/mailboxes/${mailbox}`, {
    method: 'PUT',
    headers: { 'x-functions-key': KEY, 'content-type': 'application/json' },
    body: JSON.stringify({ delivery }),
  });
  const body = (await res.json()) as { mode?: string; detail?: string };
  if (body.mode !== delivery)
    throw new Error(`watching ${mailbox} by ${delivery} failed: ${res.status} ${body.detail ?? ''}`);
}

/** Runs the poll benchmark for `windowSeconds` at the run's POLL_INTERVAL_SECONDS (default 60). */
export async function runPollBench(ctx: BenchContext, windowSeconds: number): Promise<PollBenchResult> {
  const intervalSeconds = ctx.config.watch.pollIntervalMs / 1000;
  const httpsPort =
    Number(new URL(ctx.config.watch.webhookBaseUrl ?? 'https://127.0.0.1:0').port) || (await freePort());
  const host = await startBenchHost(ctx, { httpsPort, timers: true, warnings: false });
  const storage = ctx.config.storage;
  if (storage.kind !== 'connectionString') throw new Error('the poll benchmark needs Azurite');
  const events = new QueueClient(storage.connectionString, 'mail-events');
  const graph = ctx.cloud.graph;
  const domain = ctx.cloud.tenant.domain;
  try {
    const polled = Array.from({ length: MAILBOXES }, (_, i) => `poll${intervalSeconds}-${i}@${domain}`);
    const pushed = `push${intervalSeconds}@${domain}`;
    for (const mailbox of [...polled, pushed]) ctx.cloud.tenant.addUser(mailbox);
    for (const mailbox of polled) await watch(host, mailbox, 'poll');
    await watch(host, pushed, 'push');
    await events.createIfNotExists();
    await events.clearMessages();
    // Let every mailbox's first round pass, so the window sees steady polling.
    await new Promise((r) => setTimeout(r, (intervalSeconds + 6) * 1000));

    const userIds = new Map([...polled, pushed].map((m) => [ctx.cloud.tenant.findUser(m)!.id, m] as const));
    const mark = graph.requests.length;
    const deliveredAt = new Map<string, number>();
    const latencies: number[] = [];
    let stop = false;
    const reader = (async () => {
      while (!stop) {
        const { receivedMessageItems } = await events.receiveMessages({ numberOfMessages: 32 });
        const now = Date.now();
        for (const m of receivedMessageItems) {
          const event = JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')) as {
            data: { messageId: string; mailbox: string };
          };
          const at = deliveredAt.get(event.data.messageId);
          if (at !== undefined && event.data.mailbox !== pushed) latencies.push(now - at);
          await events.deleteMessage(m.messageId, m.popReceipt);
        }
        if (receivedMessageItems.length === 0) await new Promise((r) => setTimeout(r, 50));
      }
    })();
    // About two mails per polled mailbox per interval, at random moments; the pushed mailbox gets a polled one's rate.
    const mails = Math.round((windowSeconds / intervalSeconds) * MAILBOXES * 2);
    const started = Date.now();
    const pushEvery = MAILBOXES;
    for (let i = 0; i < mails; i++) {
      const due = started + ((i + Math.random()) / mails) * windowSeconds * 1000;
      await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
      const mailbox = polled[Math.floor(Math.random() * polled.length)];
      deliveredAt.set(graph.mailbox(mailbox).addMessage('inbox', { subject: `poll ${i}` }).id, Date.now());
      if (i % pushEvery === 0) graph.mailbox(pushed).addMessage('inbox', { subject: `push ${i}` });
    }
    const windowMs = Date.now() - started;
    const window = graph.requests.slice(mark);
    // The last mails get one more interval (and the timer's 5 s) to be read.
    const deadline = Date.now() + (intervalSeconds + 10) * 1000;
    while (latencies.length < mails && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    stop = true;
    await reader;
    const perHour = (count: number, mailboxes: number) => count / mailboxes / (windowMs / 3_600_000);
    const requestsOf = (mailboxes: Set<string>) =>
      window.filter((r) => r.mailbox !== undefined && mailboxes.has(userIds.get(r.mailbox) ?? '')).length;
    return {
      intervalSeconds,
      mailboxes: MAILBOXES,
      mails,
      delivered: latencies.length,
      latency: percentiles(latencies),
      windowSeconds: windowMs / 1000,
      pollRequestsPerMailboxHour: perHour(requestsOf(new Set(polled)), MAILBOXES),
      pushRequestsPerMailboxHour: perHour(requestsOf(new Set([pushed])), 1),
    };
  } finally {
    await host.stop();
  }
}
