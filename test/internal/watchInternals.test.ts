/** Internals of watching and events: event ids, expiry parsing, secret comparison, event shape, webhook retries. */
import { InvocationContext } from '@azure/functions';
import { GraphError } from '@microsoft/microsoft-graph-client';
import { Webhook } from 'standardwebhooks';
import { mailboxEvent, stableEventId } from '../../shared/events/cloudEvent';
import { WebhookDeliveryError, WebhookSender } from '../../shared/events/webhookSender';
import { tableKey } from '../../shared/platform/storage/tables';
import { parseMaxMinutes } from '../../shared/watch/subscriptions/graphSubscriptions';
import { mailReceivedEvent } from '../../shared/watch/content/mailReceived';
import {
  isPermanentRefusal,
  processNotification,
  type ProcessorDependencies,
} from '../../shared/watch/notifications/notificationProcessor';
import { sameSecret } from '../../shared/watch/notifications/notificationReceiver';
import {
  KNOWN_SUBSCRIPTION_TTL_MS,
  LOOKUP_CONCURRENCY,
  MAX_UNKNOWN_PER_POST,
  SubscriptionLookup,
} from '../../shared/watch/notifications/subscriptionLookup';
import type { SubscriptionIndexEntry } from '../../shared/watch/watchStore';
import { WebhookReceiver } from '../support/watchSupport';

describe('event ids', () => {
  it('are the same for the same fact and differ otherwise, in UUID form', () => {
    const a = stableEventId('mail.received', 'support@contoso.com', 'AAMk1=');
    expect(a).toBe(stableEventId('mail.received', 'support@contoso.com', 'AAMk1='));
    expect(a).not.toBe(stableEventId('mail.received', 'support@contoso.com', 'AAMk2='));
    expect(a).not.toBe(stableEventId('mail.sent', 'support@contoso.com', 'AAMk1='));
    // The separator keeps ("ab", "c") and ("a", "bc") apart.
    expect(stableEventId('ab', 'c')).not.toBe(stableEventId('a', 'bc'));
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('ignore the case of the mailbox', () => {
    const upper = mailboxEvent('mail.received', 'Support@Contoso.com', 'x', {}, new Date(0));
    const lower = mailboxEvent('mail.received', 'support@contoso.com', 'x', {}, new Date(0));
    expect(upper.id).toBe(lower.id);
    expect(upper.source).toBe('/mailboxes/support@contoso.com');
  });
});

describe("Graph's maximum expiry", () => {
  it.each([
    ['Subscription expiration can only be 10070 minutes in the future.', 10070],
    ['subscription expiration can only be 4230 minutes in the future', 4230],
    ['The request is malformed.', undefined],
    [undefined, undefined],
  ])('%s → %s', (message, minutes) => expect(parseMaxMinutes(message)).toBe(minutes));
});

describe('clientState comparison', () => {
  it('accepts only the exact secret', () => {
    expect(sameSecret('s3cret', 's3cret')).toBe(true);
    expect(sameSecret('s3cre', 's3cret')).toBe(false);
    expect(sameSecret('s3cret ', 's3cret')).toBe(false);
    expect(sameSecret('', 's3cret')).toBe(false);
    expect(sameSecret(undefined, 's3cret')).toBe(false);
    expect(sameSecret(null, 's3cret')).toBe(false);
  });
});

/** An in-memory subscription index that counts reads and the most it had under way at once. */
class CountingIndex {
  readonly rows = new Map<string, SubscriptionIndexEntry>();
  reads: string[] = [];
  inFlight = 0;
  peak = 0;

  async lookupSubscription(id: string): Promise<SubscriptionIndexEntry | undefined> {
    this.reads.push(id);
    this.peak = Math.max(this.peak, ++this.inFlight);
    await new Promise((r) => setImmediate(r));
    this.inFlight--;
    return this.rows.get(id);
  }
}

describe("the webhook's subscription lookup", () => {
  const entry = { mailbox: 'a@contoso.com', clientState: 's' };
  let index: CountingIndex;
  let clock: number;
  let lookup: SubscriptionLookup;
  beforeEach(() => {
    index = new CountingIndex();
    index.rows.set('real', entry);
    clock = 1_000_000;
    lookup = new SubscriptionLookup(index, () => clock);
  });

  it('reads at most MAX_UNKNOWN_PER_POST unknown ids of one POST, a few at a time, and drops the rest unread', async () => {
    const ids = ['real', ...Array.from({ length: 999 }, (_, i) => `forged-${i}`)];
    const resolved = await lookup.resolve(ids);
    expect(index.reads).toHaveLength(1 + MAX_UNKNOWN_PER_POST);
    expect(index.peak).toBeLessThanOrEqual(LOOKUP_CONCURRENCY);
    expect(resolved.known.get('real')).toEqual(entry);
    expect(resolved.unknown.size).toBe(MAX_UNKNOWN_PER_POST);
    expect(resolved.notLookedUp.size).toBe(999 - MAX_UNKNOWN_PER_POST);
  });

  it('reads every id of a genuine POST for many subscriptions', async () => {
    for (let i = 0; i < 50; i++) index.rows.set(`sub-${i}`, entry);
    const resolved = await lookup.resolve(Array.from({ length: 50 }, (_, i) => `sub-${i}`));
    expect(resolved.known.size).toBe(50);
    expect(resolved.notLookedUp.size).toBe(0);
  });

  it('remembers a known id for the TTL only, and an unknown one not at all', async () => {
    await lookup.resolve(['real', 'gone']);
    await lookup.resolve(['real', 'gone']);
    expect(index.reads).toEqual(['real', 'gone', 'gone']);
    // Unwatched meanwhile: accepted from memory until the TTL runs out, then unknown.
    index.rows.delete('real');
    clock += KNOWN_SUBSCRIPTION_TTL_MS - 1;
    expect((await lookup.resolve(['real'])).known.has('real')).toBe(true);
    clock += 1;
    expect((await lookup.resolve(['real'])).unknown.has('real')).toBe(true);
  });

  it('shares one read among concurrent POSTs for the same subscription', async () => {
    await Promise.all([lookup.resolve(['real']), lookup.resolve(['real']), lookup.resolve(['real'])]);
    expect(index.reads).toEqual(['real']);
  });

  it('rejects when the index cannot be read, and remembers nothing', async () => {
    const failing = { lookupSubscription: () => Promise.reject(new Error('storage down')) };
    const broken = new SubscriptionLookup(failing);
    await expect(broken.resolve(['real'])).rejects.toThrow('storage down');
    await expect(broken.resolve(['real'])).rejects.toThrow('storage down');
  });
});

describe('Graph refusals the notification processor does not retry', () => {
  const graphError = (status: number, code: string, message = 'x') => {
    const err = new GraphError(status, message);
    err.code = code;
    return err;
  };

  it.each([
    [400, 'ErrorInvalidIdMalformed', true],
    [403, 'ErrorAccessDenied', true],
    [403, 'ApplicationThrottled', false],
    [410, 'Gone', true],
    [401, 'InvalidAuthenticationToken', false],
    [404, 'ErrorItemNotFound', false],
    [409, 'Conflict', false],
    [429, 'TooManyRequests', false],
    [500, 'InternalServerError', false],
    [503, 'ServiceUnavailable', false],
  ])('%d %s → permanent: %s', (status, code, permanent) => {
    expect(isPermanentRefusal(graphError(status, code))).toBe(permanent);
  });

  it("poisons at once with a one-line reason, Graph's message escaped even when it quotes the caller's id", async () => {
    const refusal = graphError(
      400,
      'ErrorInvalidIdMalformed',
      "Id 'x\n00:00:00.000 [sendOutbox] forged' is malformed.",
    );
    const poisoned: string[] = [];
    const lines: string[] = [];
    const deps = {
      graph: { api: () => ({ select: () => ({ get: () => Promise.reject(refusal) }) }) },
      store: { get: () => Promise.resolve({ mailbox: 'a@contoso.com' }) },
      publisher: { wasPublished: () => Promise.resolve(false) },
      poisonQueue: {
        name: 'graph-notifications-poison',
        createIfNotExists: () => Promise.resolve(),
        sendMessage: (text: string) => {
          poisoned.push(Buffer.from(text, 'base64').toString('utf8'));
          return Promise.resolve();
        },
      },
    } as unknown as ProcessorDependencies;
    const context = new InvocationContext({
      triggerMetadata: { dequeueCount: 1 },
      logHandler: (_level, ...args) => lines.push(args.join(' ')),
    });
    const work = {
      kind: 'change',
      subscriptionId: 's',
      mailbox: 'a@contoso.com',
      messageId: 'x',
      changeType: 'created',
    };

    await processNotification(work, context, deps);

    expect(poisoned).toHaveLength(1);
    const { reason } = JSON.parse(poisoned[0]) as { reason: string };
    expect(reason).toBe(
      "Graph refuses it for good (try 1): Graph 400 ErrorInvalidIdMalformed: Id 'x\\n00:00:00.000 [sendOutbox] forged' is malformed.",
    );
    expect(lines.join('\n').split('\n')).toHaveLength(lines.length);
  });

  it('takes no other error for a permanent refusal', () => {
    expect(isPermanentRefusal(new Error('400 Bad Request'))).toBe(false);
  });
});

describe('table keys', () => {
  it('never contain the characters Table storage forbids, and stay distinct', () => {
    const keys = ['a/b', 'a\\b', 'a#b', 'a?b', "o'brien@contoso.com", 'A/B'].map(tableKey);
    // eslint-disable-next-line no-control-regex -- control characters are exactly what must be absent
    for (const key of keys) expect(key).not.toMatch(/[/\\#?\u0000-\u001f\u007f]/);
    expect(new Set(keys).size).toBe(keys.length);
  });
});

describe('the mail.received event', () => {
  it('lists at most 100 recipients and says how many there were (a queue message holds 64 KiB)', () => {
    const to = Array.from({ length: 500 }, (_, i) => ({
      emailAddress: { address: `r${i}@example.org`, name: 'A rather long display name '.repeat(3) },
    }));
    const event = mailReceivedEvent('support@contoso.com', {
      id: 'AAMk1=',
      subject: 'Many',
      toRecipients: to,
      receivedDateTime: '2026-11-22T01:00:00Z',
    });
    expect(event.data.to).toHaveLength(100);
    expect(event.data.toCount).toBe(500);
    expect(Buffer.from(JSON.stringify(event)).toString('base64').length).toBeLessThan(64 * 1024);
    expect(event.time).toBe('2026-11-22T01:00:00.000Z');
  });
});

describe('the events webhook sender', () => {
  let receiver: WebhookReceiver;
  const secret = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
  const event = mailboxEvent('mail.received', 'support@contoso.com', 'AAMk1=', { n: 1 }, new Date());
  const fast = { attempts: 3, baseDelayMs: 10, maxDelayMs: 2_000, timeoutMs: 2_000 };

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
  });
  afterAll(() => receiver.close());
  beforeEach(() => {
    receiver.received.length = 0;
    receiver.failNext.length = 0;
  });

  it('signs per Standard Webhooks', async () => {
    await new WebhookSender(receiver.url, secret, fast).deliver(event);
    expect(receiver.received).toHaveLength(1);
    const [hook] = receiver.received;
    expect(new Webhook(secret).verify(hook.body, hook.headers as Record<string, string>)).toEqual(event);
    expect(hook.headers['webhook-id']).toBe(event.id);
  });

  it('retries 5xx and 429 with backoff, then succeeds', async () => {
    receiver.failNext.push(503, 429);
    await new WebhookSender(receiver.url, secret, fast).deliver(event);
    expect(receiver.received).toHaveLength(1);
  });

  it('gives up after its tries with an error the queue retry can act on', async () => {
    receiver.failNext.push(500, 500, 500);
    const error = await new WebhookSender(receiver.url, secret, fast).deliver(event).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WebhookDeliveryError);
    expect((error as WebhookDeliveryError).permanent).toBe(false);
    expect(receiver.received).toHaveLength(0);
  });

  it('does not retry a 4xx refusal', async () => {
    receiver.failNext.push(401, 401);
    const error = await new WebhookSender(receiver.url, secret, fast).deliver(event).catch((e: unknown) => e);
    expect((error as WebhookDeliveryError).permanent).toBe(true);
    // The second 401 was never asked for.
    expect(receiver.failNext).toEqual([401]);
  });
});
