/**
 * The notification dispatcher's bookkeeping that real HTTPS cannot show cheaply: the slow-response ratio Graph
 * throttles endpoints on (answers over 2,900 ms), and that close() stops pending retries. The webhook client is
 * replaced by a scripted one; the delivery itself is covered end to end in graphSubscriptionEmulator.test.ts.
 */
import { OffsetClock } from '../emulators/graph/clock';
import { NotificationDispatcher } from '../emulators/graph/notificationDelivery';
import { SubscriptionStore, type StoredSubscription } from '../emulators/graph/subscriptionStore';
import type { WebhookOutcome, WebhookPost } from '../emulators/graph/webhookClient';

/** Answers each POST with the next scripted outcome (the last one repeats) and records what was posted. */
class ScriptedClient {
  readonly posts: WebhookPost[] = [];
  closed = false;

  constructor(private readonly script: WebhookOutcome[]) {}

  post(post: WebhookPost): Promise<WebhookOutcome> {
    this.posts.push(post);
    return Promise.resolve(this.script[Math.min(this.posts.length - 1, this.script.length - 1)]);
  }

  close(): void {
    this.closed = true;
  }
}

function subscription(lifecycleNotificationUrl: string): StoredSubscription {
  return {
    id: `sub-${lifecycleNotificationUrl}`,
    resource: 'users/x/messages',
    applicationId: 'app',
    creatorId: 'creator',
    changeType: 'created',
    changeTypes: new Set(['created']),
    clientState: null,
    notificationUrl: 'https://127.0.0.1:1/notify',
    lifecycleNotificationUrl,
    expirationDateTime: new Date(Date.now() + 3600_000),
    mailboxId: 'x',
    awaitingReauthorization: false,
    held: [],
    dropping: false,
  };
}

function setUp(script: WebhookOutcome[], retryDelaysMs: number[] = []) {
  const clock = new OffsetClock();
  const client = new ScriptedClient(script);
  const dispatcher = new NotificationDispatcher(
    { validationTimeoutMs: 1000, deliveryTimeoutMs: 1000, retryDelaysMs },
    clock,
    client,
    new SubscriptionStore(clock),
    'tenant',
  );
  return { client, dispatcher };
}

describe('notification dispatcher', () => {
  it('counts answers over 2,900 ms as slow, per URL', async () => {
    const { dispatcher } = setUp([
      { status: 202, text: '', durationMs: 3000 },
      { status: 202, text: '', durationMs: 2900 },
      { status: 202, text: '', durationMs: 10 },
    ]);
    const a = subscription('https://127.0.0.1:1/a');
    const b = subscription('https://127.0.0.1:1/b');
    expect(dispatcher.slowRatio()).toBe(0);
    const first = await dispatcher.sendLifecycle(a, 'missed');
    expect(first.slow).toBe(true);
    expect((await dispatcher.sendLifecycle(a, 'missed')).slow).toBe(false);
    await dispatcher.sendLifecycle(a, 'missed');
    await dispatcher.sendLifecycle(b, 'missed');
    expect(dispatcher.slowRatio('https://127.0.0.1:1/a')).toBeCloseTo(1 / 3);
    expect(dispatcher.slowRatio('https://127.0.0.1:1/b')).toBe(0);
    expect(dispatcher.slowRatio()).toBeCloseTo(1 / 4);
  });

  it('stops pending retries on close and reports idle', async () => {
    const { client, dispatcher } = setUp([{ status: 500, text: '', durationMs: 1 }], [50]);
    const failed = await dispatcher.sendLifecycle(subscription('https://127.0.0.1:1/a'), 'missed');
    expect(failed).toMatchObject({ status: 500, attempt: 1 });
    expect(failed.dropped).toBeUndefined();
    dispatcher.close();
    await dispatcher.idle();
    await new Promise((r) => setTimeout(r, 150));
    expect(client.posts).toHaveLength(1);
    expect(client.closed).toBe(true);
  });

  it('retries a lifecycle event until the delays run out', async () => {
    const { client, dispatcher } = setUp([{ status: 503, text: '', durationMs: 1 }], [1, 1]);
    await dispatcher.sendLifecycle(subscription('https://127.0.0.1:1/a'), 'reauthorizationRequired');
    await dispatcher.idle();
    expect(client.posts).toHaveLength(3);
    expect(dispatcher.log.map((d) => [d.attempt, d.dropped ?? false])).toEqual([
      [1, false],
      [2, false],
      [3, true],
    ]);
  });
});
