/**
 * Reconciliation benchmark through the gateway's real functions in the local host, its timers on their schedules:
 * mailboxes watched by push while the Graph emulator silently drops about 5 % of the change notifications (no
 * `missed` event follows), so only the periodic delta reconciliation can find those mails. Figures: the mails that
 * reached an event (goal 100 %), and the delay from delivery to event of the dropped ones, p50/p99 (goal p99 ≤
 * RECONCILE_INTERVAL_MINUTES). The in-process host reads its config once: the interval is the run's environment.
 */
import { QueueClient } from '@azure/storage-queue';
import { freePort } from '../emulators/azurite';
import type { BenchContext } from './benchContext';
import { BENCH_FUNCTION_KEY, percentiles, startBenchHost, type Percentiles } from './benchHost';

/** Reconciliation figures. */
export interface ReconcileBenchResult {
  intervalMinutes: number;
  mails: number;
  dropped: number;
  /** Mails (dropped or not) that reached an event before the run ended. */
  evented: number;
  /** Delivery → event of the mails whose notification was dropped. */
  reconciledDelay: Percentiles;
}

const KEY = BENCH_FUNCTION_KEY;
const MAILBOXES = 10;
const DROP_SHARE = 0.05;

/** Runs the benchmark: mail for `windowSeconds`, then waits up to one more interval for the last reconciliation. */
export async function runReconcileBench(ctx: BenchContext, windowSeconds: number): Promise<ReconcileBenchResult> {
  const intervalMs = ctx.config.watch.reconcileIntervalMs;
  const httpsPort =
    Number(new URL(ctx.config.watch.webhookBaseUrl ?? 'https://127.0.0.1:0').port) || (await freePort());
  const host = await startBenchHost(ctx, { httpsPort, timers: true, warnings: false });
  const storage = ctx.config.storage;
  if (storage.kind !== 'connectionString') throw new Error('the reconciliation benchmark needs Azurite');
  const events = new QueueClient(storage.connectionString, 'mail-events');
  const graph = ctx.cloud.graph;
  try {
    const mailboxes = Array.from({ length: MAILBOXES }, (_, i) => `recon${i}@${ctx.cloud.tenant.domain}`);
    const subscriptions = new Map<string, string>();
    for (const mailbox of mailboxes) {
      ctx.cloud.tenant.addUser(mailbox);
      const res = await fetch(`${host.url}/api/mailboxes/${mailbox}`, {
        method: 'PUT',
        headers: { 'x-functions-key': KEY, 'content-type': 'application/json' },
        body: JSON.stringify({ delivery: 'push' }),
      });
      const body = (await res.json()) as { subscriptionId?: string; detail?: string };
      if (!body.subscriptionId) throw new Error(`watching ${mailbox} failed: ${res.status} ${body.detail ?? ''}`);
      subscriptions.set(mailbox, body.subscriptionId);
    }
    await events.createIfNotExists();
    await events.clearMessages();
    const deliveredAt = new Map<string, number>();
    const droppedIds = new Set<string>();
    const eventAt = new Map<string, number>();
    let stop = false;
    const reader = (async () => {
      while (!stop) {
        const { receivedMessageItems } = await events.receiveMessages({ numberOfMessages: 32 });
        const now = Date.now();
        for (const m of receivedMessageItems) {
          const event = JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')) as {
            data: { messageId: string };
          };
          if (!eventAt.has(event.data.messageId)) eventAt.set(event.data.messageId, now);
          await events.deleteMessage(m.messageId, m.popReceipt);
        }
        if (receivedMessageItems.length === 0) await new Promise((r) => setTimeout(r, 50));
      }
    })();
    // Five mails a second across the mailboxes; each notification is dropped with probability DROP_SHARE (the
    // emulator checks `dropping` as the change happens, so it is switched on for that one mail only).
    const mails = windowSeconds * 5;
    const started = Date.now();
    for (let i = 0; i < mails; i++) {
      await new Promise((r) => setTimeout(r, Math.max(0, started + i * 200 - Date.now())));
      const mailbox = mailboxes[i % mailboxes.length];
      const drop = Math.random() < DROP_SHARE;
      const subscriptionId = subscriptions.get(mailbox)!;
      if (drop) graph.dropNotifications(subscriptionId, true);
      const id = graph.mailbox(mailbox).addMessage('inbox', { subject: `recon ${i}` }).id;
      if (drop) {
        graph.dropNotifications(subscriptionId, false);
        droppedIds.add(id);
      }
      deliveredAt.set(id, Date.now());
    }
    const deadline = Date.now() + intervalMs + 30_000;
    while (eventAt.size < mails && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    stop = true;
    await reader;
    const delays = [...droppedIds].filter((id) => eventAt.has(id)).map((id) => eventAt.get(id)! - deliveredAt.get(id)!);
    return {
      intervalMinutes: intervalMs / 60_000,
      mails,
      dropped: droppedIds.size,
      evented: [...deliveredAt.keys()].filter((id) => eventAt.has(id)).length,
      reconciledDelay: percentiles(delays),
    };
  } finally {
    await host.stop();
  }
}
