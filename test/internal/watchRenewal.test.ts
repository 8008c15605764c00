/**
 * Subscription lifetimes and renewal: the gateway's own GraphSubscriptions, WatchService and WatchStore (Azurite)
 * against the Graph emulator over HTTPS, with one simulated clock for the gateway and the emulator, so that "an hour
 * later" is an hour later for both. What the gateway asked for is read at the emulator: its request log and the
 * expiry it granted (the emulator grants exactly what was asked, when it is within its limit).
 */
import { createServices } from '../../shared/app/services';
import { createGraphClient } from '../../shared/graph/graphClient';
import { AppCredential } from '../../shared/identity/appCredential';
import { createTableClient } from '../../shared/platform/storage/storage';
import type { GraphSubscriptions } from '../../shared/watch/subscriptions/graphSubscriptions';
import { renewalThresholdMs, type WatchService } from '../../shared/watch/watchService';
import { watchKey, WatchStore } from '../../shared/watch/watchStore';
import { DEFAULT_MAX_EXPIRATION_MINUTES } from '../emulators/graph/subscriptionRoutes';
import { startHttpsServer, type RunningServer } from '../emulators/httpServer';
import { startTestCloud, type TestCloud } from '../support/testEnv';

const HOUR_MS = 3_600_000;
/** RENEWAL_WINDOW_HOURS' default. */
const WINDOW_MS = 48 * HOUR_MS;

let env: TestCloud;
let echo: RunningServer;
let service: WatchService;
let store: WatchStore;
let subscriptions: GraphSubscriptions;
let offsetMs = 0;
const now = () => Date.now() + offsetMs;

/** Moves the gateway's clock and Graph's together. */
function advance(ms: number): void {
  offsetMs += ms;
  env.cloud.graph.clock.advance(ms);
}

beforeAll(async () => {
  env = await startTestCloud({ graph: { latencyMs: { min: 0, max: 0 } } });
  // Graph validates each new subscription's URLs: a trivial echo endpoint answers the handshake.
  echo = await startHttpsServer(env.cloud.ca, (req, res) => {
    const token = new URL(req.url ?? '/', 'https://x').searchParams.get('validationToken') ?? '';
    res.writeHead(token ? 200 : 202, { 'content-type': 'text/plain' }).end(token);
  });
  for (const user of ['clamped', 'after', 'hourly', 'many', 'kept', 'unwatched', 'creating']) {
    env.cloud.tenant.addUser(user);
  }
  store = new WatchStore(createTableClient(env.config, `subscriptionsRenewal${Date.now()}`));
  const services = createServices(
    { ...env.config, watch: { ...env.config.watch, webhookBaseUrl: echo.url } },
    {
      graph: createGraphClient(env.config, new AppCredential(env.config), { maxTotalWaitSeconds: 0 }),
      watchStore: store,
      now,
    },
  );
  subscriptions = services.subscriptions;
  service = services.watchService!;
});
afterAll(async () => {
  await echo?.close();
  await env?.close();
});
afterEach(() => env.cloud.graph.setMaxExpirationMinutes(DEFAULT_MAX_EXPIRATION_MINUTES));

/** Statuses of the requests since `mark` with this method whose path ends with `pathEnd`. */
function statuses(mark: number, method: string, pathEnd: string): number[] {
  return env.cloud.graph.requests
    .slice(mark)
    .filter((r) => r.method === method && r.path.endsWith(pathEnd))
    .map((r) => r.status);
}

/** Minutes from the emulator's now to the expiry it holds for the subscription. */
function minutesLeft(id: string): number {
  const sub = env.cloud.graph.activeSubscriptions().find((s) => s.id === id);
  if (!sub) throw new Error(`Graph has no subscription ${id}`);
  return (Date.parse(String(sub.expirationDateTime)) - env.cloud.graph.clock.now().getTime()) / 60_000;
}

describe("Graph's maximum expiry", () => {
  it('is asked for again on every create and renewal after Graph clamped one to 1,440 minutes', async () => {
    env.cloud.graph.setMaxExpirationMinutes(1440);
    let mark = env.cloud.graph.requests.length;
    const clamped = await service.watch('clamped@contoso.com');
    // Asked for the maximum, was told 1,440, asked for that (a minute short).
    expect(statuses(mark, 'POST', '/v1.0/subscriptions')).toEqual([400, 201]);
    expect(minutesLeft(clamped.record.subscriptionId)).toBeGreaterThan(1435);
    expect(minutesLeft(clamped.record.subscriptionId)).toBeLessThanOrEqual(1440);
    expect(clamped.record.grantedMinutes).toBe(1439);

    // Graph allows the longest again: the next create asks for it (10,070 a minute short) and gets it at once.
    env.cloud.graph.setMaxExpirationMinutes(10_080);
    mark = env.cloud.graph.requests.length;
    const after = await service.watch('after@contoso.com');
    expect(statuses(mark, 'POST', '/v1.0/subscriptions')).toEqual([201]);
    expect(minutesLeft(after.record.subscriptionId)).toBeGreaterThan(10_065);
    expect(after.record.grantedMinutes).toBe(10_069);

    // So does the next renewal of the clamped one.
    mark = env.cloud.graph.requests.length;
    const renewed = await service.watch('clamped@contoso.com');
    expect(renewed.outcome).toBe('renewed');
    expect(statuses(mark, 'PATCH', `/subscriptions/${clamped.record.subscriptionId}`)).toEqual([200]);
    expect(minutesLeft(clamped.record.subscriptionId)).toBeGreaterThan(10_065);
    expect(renewed.record.grantedMinutes).toBe(10_069);
  });
});

describe('renewing many through $batch', () => {
  it('asks for the maximum in a first batch alone; when Graph names less, the rest of the run asks for that, and the next run asks for the maximum again', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 45; i++) {
      const clientState = `state-${i}-${'x'.repeat(32)}`;
      const url = `${echo.url}/many`;
      const sub = await subscriptions.create({
        mailbox: 'many@contoso.com',
        clientState,
        notificationUrl: url,
        lifecycleNotificationUrl: url,
      });
      ids.push(sub.id);
    }
    const patchStatuses = (mark: number) =>
      env.cloud.graph.requests
        .slice(mark)
        .filter((r) => r.method === 'PATCH' && ids.some((id) => r.path.endsWith(`/subscriptions/${id}`)))
        .map((r) => r.status);
    const run = async () => {
      const mark = env.cloud.graph.requests.length;
      const stats = { graphRequests: 0 };
      const results = await subscriptions.renewMany(ids, stats);
      expect([...results.values()].every((r) => r.kind === 'renewed')).toBe(true);
      return { requests: stats.graphRequests, statuses: patchStatuses(mark) };
    };

    env.cloud.graph.setMaxExpirationMinutes(1440);
    // The first 20 ask for the longest (10,069 minutes: 400), the other 25 for what Graph named (two batches), then the 20 again.
    const clampedRun = { requests: 4, statuses: [...Array<number>(20).fill(400), ...Array<number>(45).fill(200)] };
    expect(await run()).toEqual(clampedRun);
    for (const id of ids) expect(minutesLeft(id)).toBeGreaterThan(1435);
    // Nothing was kept from that run: the next one asks for the maximum first again.
    expect(await run()).toEqual(clampedRun);
    env.cloud.graph.setMaxExpirationMinutes(10_080);
    expect(await run()).toEqual({ requests: 3, statuses: Array<number>(45).fill(200) });
    for (const id of ids) expect(minutesLeft(id)).toBeGreaterThan(10_065);
    // A live tenant's own maximum (10,070 minutes, below the documented 10,080) costs no refused call either.
    env.cloud.graph.setMaxExpirationMinutes(10_070);
    expect(await run()).toEqual({ requests: 3, statuses: Array<number>(45).fill(200) });
  });
});

describe('renewal', () => {
  it('renews a subscription granted 1,440 minutes once half of it is left, not on every hourly run', async () => {
    env.cloud.graph.setMaxExpirationMinutes(1440);
    const { record } = await service.watch('hourly@contoso.com');
    expect(record.grantedMinutes).toBe(1439);
    const patches = (mark: number) => statuses(mark, 'PATCH', `/subscriptions/${record.subscriptionId}`);
    const mine = (reports: Array<{ mailbox: string }>) => reports.filter((r) => r.mailbox === 'hourly@contoso.com');

    // Right after the create, and an hour later: 24 hours are left, inside the 48-hour window, yet not due.
    let mark = env.cloud.graph.requests.length;
    expect(mine(await service.renewDue(WINDOW_MS))).toEqual([]);
    advance(HOUR_MS);
    expect(mine(await service.renewDue(WINDOW_MS))).toEqual([]);
    expect(patches(mark)).toEqual([]);

    // Twelve hours after the create, less than half of the lifetime is left: renewed once (asking for the maximum
    // first, then what Graph named).
    advance(11 * HOUR_MS + 60_000);
    mark = env.cloud.graph.requests.length;
    expect(mine(await service.renewDue(WINDOW_MS))).toEqual([{ mailbox: 'hourly@contoso.com', outcome: 'renewed' }]);
    expect(patches(mark)).toEqual([400, 200]);
    expect(minutesLeft(record.subscriptionId)).toBeGreaterThan(1435);

    // And not again on the next hourly run.
    advance(HOUR_MS);
    mark = env.cloud.graph.requests.length;
    expect(mine(await service.renewDue(WINDOW_MS))).toEqual([]);
    expect(patches(mark)).toEqual([]);
  });

  it.each([
    ['a lifetime of 1,440 minutes: half of it', 1440, 12 * HOUR_MS],
    ['a lifetime of 10,080 minutes: the window', 10_080, WINDOW_MS],
    ['a lifetime of 60 minutes: half of it', 60, 30 * 60_000],
    ['no lifetime on record (an older record): the window', undefined, WINDOW_MS],
  ])('the renewal threshold for %s', (_what, granted, expected) => {
    expect(renewalThresholdMs(WINDOW_MS, granted)).toBe(expected);
  });
});

describe('orphan subscriptions (the renewal timer sweeps them)', () => {
  /** A subscription request as a creator of this deployment (or, with `base`, another deployment) makes it. */
  const request = (mailbox: string, base = echo.url) => ({
    mailbox,
    clientState: 'orphan-test-client-state-0123456789',
    notificationUrl: `${base}/api/graph/notifications`,
    lifecycleNotificationUrl: `${base}/api/graph/lifecycle`,
  });
  const live = () => env.cloud.graph.activeSubscriptions().map((s) => s.id);

  it("deletes the subscriptions no watch holds, and leaves a watch's own, one being created and another deployment's", async () => {
    const { record } = await service.watch('kept@contoso.com');
    // A creator that died between Graph's answer and its table write: a second subscription on a watched Inbox.
    const died = await subscriptions.create(request('kept@contoso.com'));
    // A DELETE whose Graph call failed: a subscription on a mailbox nobody watches.
    const unwatched = await subscriptions.create(request('unwatched@contoso.com'));
    // Another deployment of the same app registration notifies its own URL.
    const other = await subscriptions.create(request('unwatched@contoso.com', `${echo.url}/staging`));
    // A creator at work right now holds the folder's lease until its record is written.
    const lease = await store.tryLease(watchKey('creating@contoso.com'), 'another-instance', 60_000);
    expect(lease).toBeDefined();
    const creating = await subscriptions.create(request('creating@contoso.com'));

    const deleted = await service.sweepOrphans();
    expect(deleted).toEqual(expect.arrayContaining([died.id, unwatched.id]));
    expect(deleted).not.toEqual(expect.arrayContaining([record.subscriptionId]));
    expect(live()).toEqual(expect.arrayContaining([record.subscriptionId, other.id, creating.id]));
    expect(live()).not.toContain(died.id);
    expect(live()).not.toContain(unwatched.id);
    // The watch still works through its own subscription.
    expect((await store.get('kept@contoso.com'))?.subscriptionId).toBe(record.subscriptionId);

    // The creator died without writing its record: once its lease is gone, the next run deletes what it created.
    await store.releaseLease(lease!);
    expect(await service.sweepOrphans()).toEqual([creating.id]);
    expect(live()).not.toContain(creating.id);
    expect(await service.sweepOrphans()).toEqual([]);
    expect(live()).toContain(other.id);
  });
});
