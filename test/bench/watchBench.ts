/**
 * Watch benchmarks against the local cloud and Azurite, through the gateway's real functions in the local host:
 * (a) webhook acknowledgement latency for bursts of 1 and 100 notifications per POST (checks + queue write), against
 *     Graph's 3 s budget (answers over 2.9 s count as slow);
 * (b) renewing 5,000 subscriptions: Graph requests and wall time through `$batch`, against one PATCH per subscription
 *     (4 in flight) in the same run;
 * (c) end to end, mail delivered into a watched Inbox → its event on the `mail-events` queue: p50/p99.
 */
import { QueueClient } from '@azure/storage-queue';
import { AppCredential } from '../../shared/identity/appCredential';
import { createGraphClient } from '../../shared/graph/graphClient';
import { createServices } from '../../shared/app/services';
import type { GatewayConfig } from '../../shared/platform/config';
import { createTableClient } from '../../shared/platform/storage/storage';
import { newClientState } from '../../shared/watch/watchService';
import { SUBSCRIPTIONS_TABLE, WatchStore } from '../../shared/watch/watchStore';
import { startHttpsServer } from '../emulators/httpServer';
import type { LocalFunctionsHost } from '../sandbox/host';
import type { BenchContext } from './benchContext';
import { BENCH_FUNCTION_KEY, percentiles, startBenchHost, type Percentiles } from './benchHost';

/** All watch figures. */
export interface WatchBenchResult {
  ack: { itemsPerPost: number; latency: Percentiles }[];
  renewal: {
    client: string;
    subscriptions: number;
    /** HTTP requests the client sent to Graph. */
    httpRequests: number;
    /** Operations Graph executed (each $batch item counts against Graph's limits). */
    graphOperations: number;
    seconds: number;
    renewed: number;
  }[];
  endToEnd: Percentiles;
}

const KEY = BENCH_FUNCTION_KEY;
const RENEWALS = 5_000;

async function pool(count: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

/** Runs the watch benchmarks; `latency` is the object the Graph emulator reads its latency from. */
export async function runWatchBench(
  ctx: BenchContext,
  latency: { min: number; max: number },
  /** The HTTPS port WEBHOOK_BASE_URL names (the run's settings are in process.env). */
  httpsPort: number,
): Promise<WatchBenchResult> {
  const host = await startBenchHost(ctx, { httpsPort, timers: false, warnings: true });
  const storage = ctx.config.storage;
  if (storage.kind !== 'connectionString') throw new Error('the watch benchmark needs Azurite');
  const events = new QueueClient(storage.connectionString, 'mail-events');
  try {
    latency.min = 5;
    latency.max = 15;
    const ack = await ackLatency(ctx, host, httpsPort);
    const endToEnd = await endToEndLatency(ctx, host, events);
    latency.min = 10;
    latency.max = 30;
    const renewal = await renewalCost(ctx, ctx.config);
    return { ack, renewal, endToEnd };
  } finally {
    await host.stop();
  }
}

async function watch(host: LocalFunctionsHost, mailbox: string): Promise<string> {
  const res = await fetch(`${host.url}/api/mailboxes/${mailbox}`, {
    method: 'PUT',
    headers: { 'x-functions-key': KEY },
  });
  const body = (await res.json()) as { subscriptionId?: string; detail?: string };
  if (!body.subscriptionId) throw new Error(`watching ${mailbox} failed: ${res.status} ${body.detail ?? ''}`);
  return body.subscriptionId;
}

async function ackLatency(ctx: BenchContext, host: LocalFunctionsHost, httpsPort: number) {
  const graph = ctx.cloud.graph;
  const mailbox = `ack@${ctx.cloud.tenant.domain}`;
  ctx.cloud.tenant.addUser(mailbox);
  const subscriptionId = await watch(host, mailbox);
  const sub = graph.activeSubscriptions().find((s) => s.id === subscriptionId)!;
  graph.dropNotifications(subscriptionId, true);
  const ids = Array.from(
    { length: 100 },
    (_, i) => graph.mailbox(mailbox).addMessage('inbox', { subject: `ack ${i}` }).id,
  );
  const item = (id: string) => ({
    subscriptionId,
    subscriptionExpirationDateTime: sub.expirationDateTime,
    changeType: 'created',
    resource: `Users/x/Messages/${id}`,
    resourceData: { '@odata.type': '#Microsoft.Graph.Message', id },
    clientState: sub.clientState,
    tenantId: ctx.cloud.tenant.tenantId,
  });
  const results = [];
  for (const [itemsPerPost, posts] of [
    [1, 200],
    [100, 20],
  ] as const) {
    const times: number[] = [];
    for (let p = 0; p < posts; p++) {
      const body = JSON.stringify({
        value: Array.from({ length: itemsPerPost }, (_, i) => item(ids[(p + i) % ids.length])),
      });
      const started = performance.now();
      const res = await fetch(`https://127.0.0.1:${httpsPort}/api/graph/notifications`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      await res.arrayBuffer();
      if (res.status !== 202) throw new Error(`the webhook answered ${res.status}`);
      times.push(performance.now() - started);
    }
    results.push({ itemsPerPost, latency: percentiles(times) });
  }
  graph.dropNotifications(subscriptionId, false);
  // Let processNotifications work off the backlog, so the end-to-end figure measures a quiet system.
  const storage = ctx.config.storage;
  if (storage.kind === 'connectionString') {
    const queue = new QueueClient(storage.connectionString, 'graph-notifications');
    for (;;) {
      const { approximateMessagesCount } = await queue.getProperties();
      if (!approximateMessagesCount) break;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  return results;
}

async function endToEndLatency(ctx: BenchContext, host: LocalFunctionsHost, events: QueueClient): Promise<Percentiles> {
  const graph = ctx.cloud.graph;
  const mailbox = `e2e@${ctx.cloud.tenant.domain}`;
  ctx.cloud.tenant.addUser(mailbox);
  await watch(host, mailbox);
  await events.createIfNotExists();
  await events.clearMessages();
  const deliveredAt = new Map<string, number>();
  const latencies: number[] = [];
  const total = 200;
  let stop = false;
  const reader = (async () => {
    while (!stop) {
      const { receivedMessageItems } = await events.receiveMessages({ numberOfMessages: 32 });
      const now = performance.now();
      for (const m of receivedMessageItems) {
        const event = JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')) as {
          data: { messageId: string };
        };
        const at = deliveredAt.get(event.data.messageId);
        if (at !== undefined) latencies.push(now - at);
        await events.deleteMessage(m.messageId, m.popReceipt);
      }
      if (receivedMessageItems.length === 0) await new Promise((r) => setTimeout(r, 10));
    }
  })();
  for (let i = 0; i < total; i++) {
    const message = graph.mailbox(mailbox).addMessage('inbox', { subject: `e2e ${i}` });
    deliveredAt.set(message.id, performance.now());
    await new Promise((r) => setTimeout(r, 50));
  }
  const deadline = Date.now() + 60_000;
  while (latencies.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  stop = true;
  await reader;
  if (latencies.length < total) {
    const deliveries = graph.notificationDeliveries.filter((d) => d.kind === 'change');
    const statuses = deliveries.map((d) => d.status ?? d.error ?? (d.dropped ? 'dropped' : '?'));
    throw new Error(
      `only ${latencies.length} of ${total} events arrived; Graph's change deliveries: ${[...new Set(statuses)].join(', ')} (${deliveries.length})`,
    );
  }
  return percentiles(latencies);
}

async function renewalCost(ctx: BenchContext, config: GatewayConfig) {
  const graphEmulator = ctx.cloud.graph;
  // Graph calls the notification URL to validate each new subscription: a trivial echo endpoint keeps set-up quick.
  const echo = await startHttpsServer(ctx.cloud.ca, (req, res) => {
    const token = new URL(req.url ?? '/', 'https://x').searchParams.get('validationToken') ?? '';
    res.writeHead(token ? 200 : 202, { 'content-type': 'text/plain' }).end(token);
  });
  const services = createServices(
    { ...config, watch: { ...config.watch, webhookBaseUrl: echo.url } },
    {
      graph: createGraphClient(config, new AppCredential(config), { maxTotalWaitSeconds: 30 }),
      watchStore: new WatchStore(createTableClient(config, `${SUBSCRIPTIONS_TABLE}Bench${Date.now()}`)),
    },
  );
  const store = services.watchStore;
  const subscriptions = services.subscriptions;
  const results = [];
  try {
    const created: string[] = [];
    await pool(RENEWALS, 16, async (i) => {
      const mailbox = `renew${i}@${ctx.cloud.tenant.domain}`;
      ctx.cloud.tenant.addUser(mailbox);
      const clientState = newClientState();
      const sub = await subscriptions.create({
        mailbox,
        clientState,
        notificationUrl: `${echo.url}/n`,
        lifecycleNotificationUrl: `${echo.url}/l`,
      });
      created.push(sub.id);
      await store.save({
        mailbox,
        subscriptionId: sub.id,
        clientState,
        expirationDateTime: sub.expirationDateTime,
        createdAt: new Date().toISOString(),
        eventsPublished: 0,
      });
    });
    const patches = () => graphEmulator.requests.filter((r) => r.method === 'PATCH').length;

    // Baseline: what a hand-rolled renewal loop does, one PATCH per subscription, 4 in flight.
    let mark = patches();
    let started = performance.now();
    let renewed = 0;
    await pool(created.length, 4, async (i) => {
      if (await subscriptions.renew(created[i])) renewed++;
    });
    results.push({
      client: 'one PATCH per subscription (4 in flight)',
      subscriptions: created.length,
      httpRequests: patches() - mark,
      graphOperations: patches() - mark,
      seconds: (performance.now() - started) / 1000,
      renewed,
    });

    // The gateway's renewal timer logic: $batch of 20.
    const service = services.watchService;
    mark = patches();
    started = performance.now();
    const stats = { graphRequests: 0 };
    const reports = await service.renewDue(200 * 3_600_000, stats);
    results.push({
      client: 'gateway: $batch of 20 (renewSubscriptions)',
      subscriptions: created.length,
      httpRequests: stats.graphRequests,
      graphOperations: patches() - mark,
      seconds: (performance.now() - started) / 1000,
      renewed: reports.filter((r) => r.outcome === 'renewed').length,
    });
  } finally {
    await echo.close();
  }
  return results;
}
