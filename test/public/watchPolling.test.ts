/**
 * Watching by polling with WEBHOOK_BASE_URL unset: no subscription, the folders read by the messages delta query as
 * the `pollMailboxes` timer finds them due and `pollMailbox` reads them (one queue message per mailbox folder), one
 * event per mail, and Graph's throttling of one mailbox deferring that mailbox alone. Real SDKs, the emulators and
 * this file's own Azurite; the functions host runs in its own process, its timers on their schedules (the poll timer
 * every 5 s) and run at once through the admin endpoint.
 */
import type { CloudEvent, MailReceivedData } from '../../shared/events/cloudEvent';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient, type GatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';
import {
  deliverMail,
  eventForMessage,
  eventsForMessage,
  folderRows,
  makeFoldersDue,
  runFunctionNow,
} from '../support/mailboxReads';
import { eventually, QueueReader } from '../support/watchSupport';

const DOMAIN = 'contoso.com';
const MAILBOXES = ['p1', 'p2', 'slow', 'fast', 'ahead'];

let env: TestCloud;
let host: FunctionsHostProcess;
let gateway: GatewayClient;
let events: QueueReader<CloudEvent<MailReceivedData>>;

beforeAll(async () => {
  env = await startTestCloud({
    privateStorage: true,
    users: ['alerts', ...MAILBOXES],
    graph: { latencyMs: { min: 1, max: 4 } },
  });
  host = await startFunctionsHost({
    ...env.settings,
    WEBHOOK_BASE_URL: '',
    ALLOWED_WATCH_MAILBOXES: MAILBOXES.map((u) => `${u}@${DOMAIN}`).join(','),
    POLL_INTERVAL_SECONDS: '15',
  });
  gateway = gatewayClient(host);
  events = new QueueReader(env.settings.AzureWebJobsStorage, 'mail-events');
});
afterAll(async () => {
  await host?.stop();
  await env?.close();
});
afterEach(() => {
  env.cloud.graph.clearFaults();
});

const deliver = (mailbox: string) => deliverMail(env, mailbox);
const eventsFor = (messageId: string) => eventsForMessage(events, messageId);
const eventFor = (messageId: string) => eventForMessage(events, messageId);
const makeDue = (mailbox: string) => makeFoldersDue(env, mailbox);

/** Runs the poll timer now (it also runs every 5 s on its schedule). */
async function runPollTimer(): Promise<void> {
  expect(await runFunctionNow(host, 'pollMailboxes')).toBe(202);
}

/** Poll rounds the host logged for the mailbox's Inbox (done, or deferred by throttling). */
function roundsOf(mailbox: string): number {
  return host.output().split(`poll ${mailbox}: `).length - 1;
}

/** Makes the mailboxes due, runs the timer, and waits until each was read once more. */
async function pollRound(...mailboxes: string[]): Promise<void> {
  const before = mailboxes.map(roundsOf);
  for (const mailbox of mailboxes) await makeDue(mailbox);
  await runPollTimer();
  await eventually(
    () => mailboxes.every((m, i) => roundsOf(m) > before[i]),
    `a poll round of ${mailboxes.join(', ')}`,
    60_000,
  );
}

/** Delta requests Graph saw for the mailbox. */
function deltaReads(mailbox: string): number {
  const user = env.cloud.tenant.findUser(mailbox)!;
  return env.cloud.graph.requests.filter(
    (r) => /\/messages\/delta/.test(r.path) && (r.path.includes(user.id) || r.path.toLowerCase().includes(mailbox)),
  ).length;
}

describe('WEBHOOK_BASE_URL unset', () => {
  it('refuses delivery push with 503 watch-not-configured, before Graph is called', async () => {
    const before = env.cloud.graph.requests.length;
    const answer = await gateway.watch('p1@contoso.com', { delivery: 'push' });
    expect(answer.status).toBe(503);
    expect(answer.body).toMatchObject({ type: expect.stringContaining('watch-not-configured') as unknown });
    expect(env.cloud.graph.requests.slice(before)).toEqual([]);
  });

  it('watches by polling (auto and poll): no subscription, and each mail becomes exactly one event', async () => {
    const auto = await gateway.watch<Record<string, unknown>>('p1@contoso.com');
    expect(auto.status).toBe(201);
    expect(auto.body).toMatchObject({
      delivery: 'auto',
      mode: 'poll',
      modeReason: 'WEBHOOK_BASE_URL is not set',
      subscriptionId: null,
      expirationDateTime: null,
    });
    const poll = await gateway.watch<Record<string, unknown>>('p2@contoso.com', { delivery: 'poll' });
    expect(poll.status).toBe(201);
    expect(poll.body).toMatchObject({ delivery: 'poll', mode: 'poll', modeReason: 'delivery poll' });
    expect(env.cloud.graph.activeSubscriptions()).toEqual([]);

    const first = [deliver('p1@contoso.com'), deliver('p2@contoso.com')];
    await pollRound('p1@contoso.com', 'p2@contoso.com');
    for (const m of first) expect((await eventFor(m.id)).data.folder).toBe('inbox');

    // The next round reads from the stored delta link: the new mail once, the earlier mail not again.
    const second = [deliver('p1@contoso.com'), deliver('p1@contoso.com')];
    await pollRound('p1@contoso.com');
    for (const m of second) await eventFor(m.id);
    await pollRound('p1@contoso.com', 'p2@contoso.com');
    for (const m of [...first, ...second]) expect(await eventsFor(m.id)).toHaveLength(1);
    const shown = await gateway.mailbox<{ eventsPublished: number; folders: Array<{ nextReadAt: string }> }>(
      'p1@contoso.com',
    );
    expect(shown.body.eventsPublished).toBe(3);
    expect(Date.parse(shown.body.folders[0].nextReadAt)).toBeGreaterThan(Date.now());
  });

  it('a tick claims a read due within its lookahead (beyond its own 5 s period) and queues it once, read at its due time', async () => {
    await gateway.watch('ahead@contoso.com', { delivery: 'poll' });
    await pollRound('ahead@contoso.com');
    const reads = deltaReads('ahead@contoso.com');
    const user = env.cloud.tenant.findUser('ahead@contoso.com')!;
    // Due in 7.4 s: past one 5 s tick, within the lookahead (half of the 15 s interval). Three runs at once, as
    // overlapping ticks or instances would.
    const due = Date.now() + 7_400;
    await makeFoldersDue(env, 'ahead@contoso.com', due);
    const ranAt = Date.now();
    await Promise.all([runPollTimer(), runPollTimer(), runPollTimer()]);
    // Claimed by these runs (its next read moved one interval on from its due time), written before any tick that
    // only looked one period ahead could have claimed it (5 s before its due time at the earliest).
    let claim = { writtenAt: NaN, nextReadAt: NaN };
    await eventually(
      async () => {
        [claim] = await folderRows(env, 'ahead@contoso.com');
        return claim.nextReadAt === due + 15_000;
      },
      'the read claimed',
      30_000,
    );
    expect(claim.writtenAt).toBeLessThan(due - 5_000);
    await eventually(() => deltaReads('ahead@contoso.com') > reads, 'the read', 30_000);
    const read = env.cloud.graph.requests.find(
      (r) => r.mailbox === user.id && /\/messages\/delta/.test(r.path) && r.startedAt.getTime() >= ranAt,
    )!;
    // Invisible until its due time (the message's visibility is whole seconds), then read at once.
    expect(read.startedAt.getTime()).toBeGreaterThanOrEqual(due - 1_000);
    expect(read.startedAt.getTime()).toBeLessThan(due + 5_000);
    // Once: the next read is the next interval's (due + 15 s, claimed by a later tick at the earliest).
    await new Promise((r) => setTimeout(r, Math.max(0, due + 6_000 - Date.now())));
    expect(deltaReads('ahead@contoso.com')).toBe(reads + 1);
  });

  it('Graph throttling one polled mailbox defers that mailbox by its Retry-After and delays nobody else', async () => {
    await gateway.watch('slow@contoso.com', { delivery: 'poll' });
    await gateway.watch('fast@contoso.com', { delivery: 'poll' });
    // Let the first rounds (due at once) pass before the fault.
    await pollRound('slow@contoso.com', 'fast@contoso.com');
    env.cloud.graph.injectFaults({
      status: 429,
      retryAfter: 3600,
      times: Infinity,
      mailbox: 'slow@contoso.com',
      pathPattern: /\/messages\/delta$/,
    });
    const slowMail = deliver('slow@contoso.com');
    const fastMail = deliver('fast@contoso.com');
    const slowReads = deltaReads('slow@contoso.com');
    await pollRound('slow@contoso.com', 'fast@contoso.com');
    await eventFor(fastMail.id);
    expect(host.output()).toContain('poll slow@contoso.com: Graph answered 429; next read after 3600 s');
    // One read, not retried by the queue: the next waits for Retry-After.
    expect(deltaReads('slow@contoso.com')).toBe(slowReads + 1);
    const shown = await gateway.mailbox<{ folders: Array<{ nextReadAt: string }> }>('slow@contoso.com');
    expect(Date.parse(shown.body.folders[0].nextReadAt)).toBeGreaterThan(Date.now() + 3500_000);
    expect(await eventsFor(slowMail.id)).toEqual([]);
    // Another mail to the unthrottled mailbox still flows at its own pace.
    const again = deliver('fast@contoso.com');
    await pollRound('fast@contoso.com');
    await eventFor(again.id);
    expect(deltaReads('slow@contoso.com')).toBe(slowReads + 1);
  });
});
