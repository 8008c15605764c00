/**
 * Push that does not rely on Graph alone: `auto` falling back to polling while Graph cannot validate the webhook and
 * returning to push at the renewal run once it can; the periodic delta reconciliation publishing a mail whose
 * notification Graph silently dropped (no `missed` event), and not publishing twice a mail push announced. Real SDKs,
 * the emulators and this file's own Azurite; the functions host runs in its own process, its timers run at once
 * through the admin endpoint.
 */
import type { CloudEvent, MailReceivedData } from '../../shared/events/cloudEvent';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient, type GatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';
import {
  deliverMail,
  eventForMessage,
  eventsForMessage,
  makeFoldersDue,
  runFunctionNow,
} from '../support/mailboxReads';
import { eventually, QueueReader } from '../support/watchSupport';

const DOMAIN = 'contoso.com';
const MAILBOXES = ['a1', 'a2', 'a3', 'r1'];

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
    ALLOWED_WATCH_MAILBOXES: MAILBOXES.map((u) => `${u}@${DOMAIN}`).join(','),
    RENEWAL_WINDOW_HOURS: '168',
  });
  gateway = gatewayClient(host);
  events = new QueueReader(env.settings.AzureWebJobsStorage, 'mail-events');
});
afterAll(async () => {
  await host?.stop();
  await env?.close();
});
afterEach(() => {
  env.cloud.graph.setWebhookUnreachable(host.httpsUrl, false);
});

const deliver = (mailbox: string) => deliverMail(env, mailbox);
const eventsFor = (messageId: string) => eventsForMessage(events, messageId);
const eventFor = (messageId: string) => eventForMessage(events, messageId);
const makeDue = (mailbox: string) => makeFoldersDue(env, mailbox);

/** The emulator's live subscriptions on the mailbox. */
function subscriptionsOf(mailbox: string): Array<Record<string, string>> {
  const user = env.cloud.tenant.findUser(mailbox)!;
  return (env.cloud.graph.activeSubscriptions() as Array<Record<string, string>>).filter(
    (s) => String(s.resource).toLowerCase().includes(mailbox) || String(s.resource).includes(user.id),
  );
}

async function runTimer(name: string): Promise<void> {
  expect(await runFunctionNow(host, name)).toBe(202);
}

/** Makes the mailbox due, runs the poll timer, and waits until the host logged one more read of `kind`. */
async function readRound(kind: 'poll' | 'reconcile', mailbox: string): Promise<void> {
  const count = () => host.output().split(`${kind} ${mailbox}: `).length - 1;
  const before = count();
  await makeDue(mailbox);
  await runTimer('pollMailboxes');
  await eventually(() => count() > before, `a ${kind} round of ${mailbox}`, 60_000);
}

async function runRenewal(): Promise<string> {
  const before = host.output().split('renewal:').length;
  await runTimer('renewSubscriptions');
  await eventually(() => host.output().split('renewal:').length > before, 'the renewal run to finish', 40_000);
  return host.output().split('renewal:').at(-1)!.split('\n')[0];
}

describe('auto', () => {
  it('falls back to polling when Graph cannot validate the webhook, says so, and returns to push at the renewal run once it can', async () => {
    env.cloud.graph.setWebhookUnreachable(host.httpsUrl, true);
    // push alone is refused as before: Graph's refusal, named.
    const pushed = await gateway.watch('a2@contoso.com', { delivery: 'push' });
    expect(pushed.status).toBe(502);
    expect(pushed.body).toMatchObject({ type: expect.stringContaining('webhook-validation-failed') as unknown });

    const answer = await gateway.watch<Record<string, unknown>>('a1@contoso.com');
    expect(answer.status).toBe(201);
    expect(answer.body).toMatchObject({
      delivery: 'auto',
      mode: 'poll',
      modeReason: 'webhook-validation-failed',
      subscriptionId: null,
    });
    expect(host.output()).toContain('watch a1@contoso.com: inbox falls back to polling (webhook-validation-failed)');
    expect(subscriptionsOf('a1@contoso.com')).toEqual([]);
    const polled = deliver('a1@contoso.com');
    await readRound('poll', 'a1@contoso.com');
    await eventFor(polled.id);

    // Still unreachable at a renewal run: it stays polled.
    await runRenewal();
    expect((await gateway.mailbox('a1@contoso.com')).body).toMatchObject({ mode: 'poll' });

    env.cloud.graph.setWebhookUnreachable(host.httpsUrl, false);
    await runRenewal();
    const shown = await gateway.mailbox<Record<string, unknown>>('a1@contoso.com');
    expect(shown.body).toMatchObject({ delivery: 'auto', mode: 'push', subscriptionId: expect.any(String) as unknown });
    expect(subscriptionsOf('a1@contoso.com').map((s) => s.id)).toEqual([shown.body.subscriptionId]);
    // Mail now comes by notification: Graph posts it to the webhook.
    const logBefore = env.cloud.graph.notificationDeliveries.length;
    const pushedMail = deliver('a1@contoso.com');
    await eventFor(pushedMail.id);
    expect(
      env.cloud.graph.notificationDeliveries
        .slice(logBefore)
        .some((d) => d.kind === 'change' && d.subscriptionIds.includes(String(shown.body.subscriptionId))),
    ).toBe(true);
    expect(await eventsFor(polled.id)).toHaveLength(1);
  });
});

describe('auto after repeated removals', () => {
  it('falls back to polling when Graph removes the subscription again and again, and pushes again at the renewal run', async () => {
    const answer = await gateway.watch<{ subscriptionId: string; mode: string }>('a3@contoso.com');
    expect(answer.body.mode).toBe('push');
    let current = answer.body.subscriptionId;
    for (let removal = 1; removal <= 2; removal++) {
      await env.cloud.graph.sendLifecycleEvent(current, 'subscriptionRemoved');
      const previous = current;
      current = await eventually<string>(async () => {
        const shown = await gateway.mailbox<{ subscriptionId: string | null }>('a3@contoso.com');
        return (shown.body.subscriptionId !== previous && shown.body.subscriptionId) || undefined;
      }, `the subscription recreated after removal ${removal}`);
    }
    await env.cloud.graph.sendLifecycleEvent(current, 'subscriptionRemoved');
    const polled = await eventually(async () => {
      const shown = await gateway.mailbox<Record<string, unknown>>('a3@contoso.com');
      return shown.body.mode === 'poll' && shown.body;
    }, 'the fall back to polling');
    expect(polled).toMatchObject({ modeReason: 'subscription-removed-repeatedly', subscriptionId: null });
    expect(subscriptionsOf('a3@contoso.com')).toEqual([]);
    // The processor logs its line when its invocation ends, which may be just after the record shows the fall back.
    await eventually(
      () => host.output().includes('subscriptionRemoved for a3@contoso.com: fell back to polling'),
      'the fall back logged',
    );
    const mail = deliver('a3@contoso.com');
    await readRound('poll', 'a3@contoso.com');
    await eventFor(mail.id);

    await runRenewal();
    const shown = await gateway.mailbox<Record<string, unknown>>('a3@contoso.com');
    expect(shown.body).toMatchObject({ mode: 'push', subscriptionId: expect.any(String) as unknown });
    expect(await eventsFor(mail.id)).toHaveLength(1);
  });
});

describe('reconciliation under push', () => {
  it('publishes a mail whose notification Graph silently dropped, counts it, and publishes a pushed mail once', async () => {
    const answer = await gateway.watch<{ subscriptionId: string; mode: string }>('r1@contoso.com');
    expect(answer.status).toBe(201);
    expect(answer.body.mode).toBe('push');
    env.cloud.graph.dropNotifications(answer.body.subscriptionId, true);
    const dropped = deliver('r1@contoso.com');
    await env.cloud.graph.idle();
    // No lifecycle event: only the reconciliation can find it.
    await readRound('reconcile', 'r1@contoso.com');
    await eventFor(dropped.id);
    expect((await gateway.mailbox('r1@contoso.com')).body).toMatchObject({ reconciled: 1 });
    expect(host.output()).toContain(
      'reconcile r1@contoso.com: 1 mail(s) arrived without a notification and were published',
    );

    env.cloud.graph.dropNotifications(answer.body.subscriptionId, false);
    const announced = deliver('r1@contoso.com');
    await eventFor(announced.id);
    await readRound('reconcile', 'r1@contoso.com');
    expect(await eventsFor(announced.id)).toHaveLength(1);
    expect(await eventsFor(dropped.id)).toHaveLength(1);
    expect((await gateway.mailbox('r1@contoso.com')).body).toMatchObject({ reconciled: 1, eventsPublished: 2 });
  });
});
