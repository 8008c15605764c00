/**
 * Watching mailboxes end to end: the mailbox API, Graph's webhooks (the emulator calls the functions host over
 * HTTPS), the notification processor, the events it publishes (queue and signed webhook), lifecycle events and
 * catch-up. Real SDKs, the emulators and this file's own Azurite; the functions host runs in its own process.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import { Webhook } from 'standardwebhooks';
import type { CloudEvent, MailReceivedData } from '../../shared/events/cloudEvent';
import { appToken } from '../support/appToken';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient, type GatewayAnswer, type GatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';
import { eventually, QueueReader, WebhookReceiver } from '../support/watchSupport';

const DOMAIN = 'contoso.com';
const SIGNING_SECRET = `whsec_${randomBytes(32).toString('base64')}`;

let env: TestCloud;
let host: FunctionsHostProcess;
let gateway: GatewayClient;
let downstream: WebhookReceiver;
let events: QueueReader<CloudEvent<MailReceivedData>>;

beforeAll(async () => {
  env = await startTestCloud({
    privateStorage: true,
    users: [
      'alerts',
      'support',
      'billing',
      'someone',
      'it',
      'race',
      'stale',
      'w1',
      'w2',
      'w3',
      'w4',
      'w5',
      'w6',
      'w7',
      'w8',
      'w9',
      'folders',
    ],
    graph: { latencyMs: { min: 2, max: 8 }, subscriptions: { retryDelaysMs: [1500, 1500, 1500, 1500] } },
  });
  downstream = await WebhookReceiver.start();
  host = await startFunctionsHost({
    ...env.settings,
    // billing@ stays outside the policy.
    // *@fabrikam.com lets a malformed address past the policy, so only the address rules can stop it.
    ALLOWED_WATCH_MAILBOXES: [
      ...['support', 'it', 'race', 'stale', 'w1', 'w2', 'w3', 'w4', 'w5', 'w6', 'w7', 'w8', 'w9', 'folders'].map(
        (u) => `${u}@${DOMAIN}`,
      ),
      '*@fabrikam.com',
    ].join(','),
    EVENTS_WEBHOOK_URL: downstream.url,
    EVENTS_SIGNING_SECRET: SIGNING_SECRET,
    RENEWAL_WINDOW_HOURS: '168',
  });
  gateway = gatewayClient(host);
  events = new QueueReader(env.settings.AzureWebJobsStorage, 'mail-events');
});
afterAll(async () => {
  await host?.stop();
  await downstream?.close();
  await env?.close();
});
afterEach(() => {
  env.cloud.graph.clearFaults();
});

/** POSTs to a webhook endpoint as Graph does (no key). */
function postAsGraph(path: string, body: unknown, query = ''): Promise<Response> {
  return fetch(`${host.httpsUrl}${path}${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** The emulator's live subscription of `mailbox` (as Graph sees it, clientState included). */
function graphSubscriptionOf(mailbox: string): Record<string, string> | undefined {
  const user = env.cloud.tenant.findUser(mailbox)!;
  return env.cloud.graph
    .activeSubscriptions()
    .find(
      (s) => String(s.resource).toLowerCase().includes(user.mail.toLowerCase()) || String(s.resource).includes(user.id),
    ) as Record<string, string> | undefined;
}

function changeItem(sub: Record<string, string>, messageId: string, clientState = sub.clientState) {
  return {
    subscriptionId: sub.id,
    subscriptionExpirationDateTime: sub.expirationDateTime,
    changeType: 'created',
    resource: `Users/x/Messages/${messageId}`,
    resourceData: {
      '@odata.type': '#Microsoft.Graph.Message',
      '@odata.id': `Users/x/Messages/${messageId}`,
      id: messageId,
    },
    clientState,
    tenantId: env.cloud.tenant.tenantId,
  };
}

/** Watches `mailbox` through the API, expecting it watched (201, or 200 when it already was). */
async function watch(mailbox: string): Promise<GatewayAnswer> {
  const answer = await gateway.watch(mailbox);
  expect([200, 201]).toContain(answer.status);
  return answer;
}

/** Puts a message straight into the mailbox's Inbox (as an external sender's mail arrives). */
function deliver(mailbox: string, subject = `m-${randomUUID()}`) {
  return env.cloud.graph.mailbox(mailbox).addMessage('inbox', {
    subject,
    from: { emailAddress: { address: 'sender@example.org', name: 'Sender' } },
    toRecipients: [{ emailAddress: { address: mailbox } }],
    body: { contentType: 'text', content: 'secret body text' },
  });
}

async function eventsFor(messageId: string): Promise<CloudEvent<MailReceivedData>[]> {
  await events.drain();
  return events.seen.filter((e) => e.data.messageId === messageId);
}

async function eventFor(messageId: string): Promise<CloudEvent<MailReceivedData>> {
  const [event] = await eventually(async () => {
    const found = await eventsFor(messageId);
    return found.length > 0 && found;
  }, `an event for message ${messageId}`);
  return event;
}

/** Waits until processing has settled: the emulator has nothing to deliver and the queue is empty for a moment. */
async function settle(): Promise<void> {
  await env.cloud.graph.idle();
  const queue = new QueueClient(env.settings.AzureWebJobsStorage, 'graph-notifications');
  await eventually(async () => {
    const props = await queue.getProperties().catch(() => undefined);
    return props?.approximateMessagesCount === 0;
  }, 'the notifications queue to empty');
  await new Promise((r) => setTimeout(r, 1500));
  await events.drain();
}

/**
 * Makes every watched mailbox due for renewal as the gateway judges it (its record says the subscription expires in
 * 30 minutes), as if days had passed for the gateway: the functions host's clock cannot move, and a subscription is
 * renewed only once less than half of the lifetime Graph granted it is left. Graph keeps its own expiry.
 */
async function makeDue(): Promise<void> {
  const table = TableClient.fromConnectionString(env.settings.AzureWebJobsStorage, 'subscriptions', {
    allowInsecureConnection: true,
  });
  const soon = new Date(Date.now() + 30 * 60_000).toISOString();
  for await (const row of table.listEntities({ queryOptions: { filter: `PartitionKey eq 'mailbox'` } })) {
    await table.updateEntity(
      { partitionKey: row.partitionKey!, rowKey: row.rowKey!, expirationDateTime: soon },
      'Merge',
    );
  }
}

async function runRenewal(): Promise<string> {
  const before = host.output().split('renewal:').length;
  const res = await fetch(`${host.url}/admin/functions/renewSubscriptions`, {
    method: 'POST',
    headers: { 'x-functions-key': host.masterKey, 'content-type': 'application/json' },
    body: '{}',
  });
  expect(res.status).toBe(202);
  await eventually(() => host.output().split('renewal:').length > before, 'the renewal run to finish', 40_000);
  return host.output().split('renewal:').at(-1)!.split('\n')[0];
}

describe('the full loop', () => {
  it('watches a mailbox, and mail sent to it through the gateway becomes a mail.received event on the queue and the signed webhook', async () => {
    const put = await watch('support@contoso.com');
    expect(put.status).toBe(201);
    expect(put.body).toMatchObject({ mailbox: 'support@contoso.com', subscriptionId: expect.any(String) as unknown });
    expect(put.text).not.toMatch(/clientState|deltaLink/i);

    const sub = graphSubscriptionOf('support@contoso.com')!;
    expect(sub.id).toBe(put.body.subscriptionId);
    expect(sub.notificationUrl).toBe(`${host.httpsUrl}/api/graph/notifications`);
    expect(sub.lifecycleNotificationUrl).toBe(`${host.httpsUrl}/api/graph/lifecycle`);
    expect(sub.changeType).toBe('created');
    expect(sub.clientState.length).toBeGreaterThanOrEqual(32);
    expect(sub.clientState.length).toBeLessThanOrEqual(128);
    // Graph's maximum is below the documented 10,080 minutes here: the gateway retried with what Graph named.
    const minutesAhead = (Date.parse(sub.expirationDateTime) - Date.now()) / 60_000;
    expect(minutesAhead).toBeGreaterThan(10_060);
    expect(minutesAhead).toBeLessThanOrEqual(10_070);

    const subject = `watched-${randomUUID()}`;
    const sent = await gateway.send(
      {
        from: 'alerts@contoso.com',
        to: [{ address: 'support@contoso.com', name: 'Support' }],
        subject,
        text: 'the body never leaves Graph',
      },
      { wait: 30 },
    );
    expect(sent.status).toBe(200);
    const [stored] = env.cloud.graph.inbox('support@contoso.com').filter((m) => m.subject === subject);
    const event = await eventFor(stored.id);
    expect(event).toMatchObject({
      specversion: '1.0',
      type: 'mail.received',
      source: '/mailboxes/support@contoso.com',
      subject: stored.id,
      datacontenttype: 'application/json',
      data: {
        mailbox: 'support@contoso.com',
        messageId: stored.id,
        internetMessageId: stored.internetMessageId,
        subject,
        from: { address: 'alerts@contoso.com' },
        to: [{ address: 'support@contoso.com', name: 'Support' }],
        receivedDateTime: stored.receivedDateTime,
        hasAttachments: false,
      },
    });
    expect(JSON.stringify(event)).not.toContain('the body never leaves Graph');

    const hook = await eventually(
      () => downstream.received.find((r) => (JSON.parse(r.body) as CloudEvent).id === event.id),
      'the downstream webhook to receive the event',
    );
    expect(JSON.parse(hook.body)).toEqual(event);
    expect(hook.headers['webhook-id']).toBe(event.id);
    const verified = new Webhook(SIGNING_SECRET).verify(hook.body, hook.headers as Record<string, string>);
    expect(verified).toEqual(event);
    expect(() =>
      new Webhook(`whsec_${randomBytes(32).toString('base64')}`).verify(
        hook.body,
        hook.headers as Record<string, string>,
      ),
    ).toThrow();

    const shown = await gateway.mailbox('support@contoso.com');
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ eventsPublished: 1, lastEventAt: expect.any(String) as unknown });
    const listed = await gateway.mailboxes();
    expect((listed.body.value as Array<{ mailbox: string }>).map((m) => m.mailbox)).toContain('support@contoso.com');
    // The secret and the body never reach a log.
    expect(host.output()).not.toContain(sub.clientState);
    expect(host.output()).not.toContain('the body never leaves Graph');
  });

  it('PUT again is idempotent: the same subscription, renewed, and still one in Graph', async () => {
    const first = await watch('w1@contoso.com');
    const second = await watch('w1@contoso.com');
    expect(second.status).toBe(200);
    expect(second.body.subscriptionId).toBe(first.body.subscriptionId);
    expect(second.body.outcome).toBe('renewed');
    const user = env.cloud.tenant.findUser('w1@contoso.com')!;
    const mine = env.cloud.graph.activeSubscriptions().filter((s) => String(s.resource).includes(user.mail));
    expect(mine).toHaveLength(1);
  });

  it('refuses a mailbox outside ALLOWED_WATCH_MAILBOXES with 403 before Graph is called', async () => {
    const before = env.cloud.graph.requests.length;
    const answer = await gateway.watch('billing@contoso.com');
    expect(answer.status).toBe(403);
    expect(answer.headers.get('content-type')).toBe('application/problem+json');
    expect(answer.body.detail).toContain('ALLOWED_WATCH_MAILBOXES');
    expect(env.cloud.graph.requests.slice(before)).toEqual([]);
  });

  it('answers bad mailbox names with 400 and unknown ones with 404', async () => {
    const bad = await gateway.watch(encodeURIComponent('not an address'));
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toBe('application/problem+json');
    const unknown = await gateway.mailbox('w9@contoso.com');
    expect(unknown.status).toBe(404);
    const gone = await gateway.unwatch('w9@contoso.com');
    expect(gone.status).toBe(404);
  });

  it.each([
    ['a control character', '%01@fabrikam.com', /control characters/],
    ['a NUL', 'it%00@fabrikam.com', /control characters/],
    ['a line break inside', 'it%0D%0Abcc@fabrikam.com', /control characters/],
    ['a DEL', 'it%7F@fabrikam.com', /control characters/],
    ['a line separator', 'it%E2%80%A8x@fabrikam.com', /control characters/],
    ['no domain dot', 'it@fabrikam', /not a valid email address/],
    ['a local part over 64 characters', `${'a'.repeat(65)}@fabrikam.com`, /before @ must be at most 64/],
    ['a slash in the domain', 'it@fabrikam.com%2Fx.com', /domain of letters, digits and hyphens/],
  ])(
    'refuses a mailbox path with %s on GET, PUT and DELETE with 400 naming it, before storage or Graph',
    async (_what, path, named) => {
      const before = env.cloud.graph.requests.length;
      for (const method of ['PUT', 'GET', 'DELETE']) {
        const answer = await gateway.request(method, `/api/mailboxes/${path}`);
        expect({ method, status: answer.status }).toEqual({ method, status: 400 });
        expect(answer.headers.get('content-type')).toBe('application/problem+json');
        expect(answer.body).toMatchObject({ status: 400, title: 'Not a mailbox address' });
        expect(String(answer.body.detail)).toMatch(named);
        expect((answer.body.errors as Array<{ field: string; message: string }>)[0]).toMatchObject({
          field: 'mailbox',
          message: expect.stringMatching(named) as unknown,
        });
      }
      expect(env.cloud.graph.requests.slice(before)).toEqual([]);
    },
  );

  it('DELETE removes the subscription in Graph and in storage', async () => {
    await watch('w2@contoso.com');
    const id = graphSubscriptionOf('w2@contoso.com')!.id;
    const answer = await gateway.unwatch('w2@contoso.com');
    expect(answer.status).toBe(204);
    expect(env.cloud.graph.activeSubscriptions().some((s) => s.id === id)).toBe(false);
    expect((await gateway.mailbox('w2@contoso.com')).status).toBe(404);
  });
});

describe('concurrent requests on one mailbox', () => {
  /** The emulator's live subscriptions on the mailbox, of every app. */
  function liveFor(mailbox: string): Array<Record<string, string>> {
    const user = env.cloud.tenant.findUser(mailbox)!;
    return env.cloud.graph
      .activeSubscriptions()
      .filter((s) => String(s.resource).toLowerCase().includes(user.mail.toLowerCase())) as Array<
      Record<string, string>
    >;
  }

  /** The gateway's index rows (subscription id → mailbox) for the mailbox. */
  async function indexRowsFor(mailbox: string): Promise<string[]> {
    const table = TableClient.fromConnectionString(env.settings.AzureWebJobsStorage, 'subscriptions', {
      allowInsecureConnection: true,
    });
    const ids: string[] = [];
    for await (const row of table.listEntities<{ mailbox: string }>({
      queryOptions: { filter: `PartitionKey eq 'subscription'` },
    })) {
      if (row.mailbox === mailbox) ids.push(decodeURIComponent(row.rowKey!));
    }
    return ids;
  }

  it('ten concurrent PUTs create one subscription that all ten answer, one mail makes one event, and a DELETE after them leaves none in Graph', async () => {
    const mailbox = 'it@contoso.com';
    const mark = env.cloud.graph.requests.length;
    const answers = await Promise.all(Array.from({ length: 10 }, () => gateway.watch(mailbox)));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    const ids = [...new Set(answers.map((a) => a.body.subscriptionId))];
    expect(ids).toHaveLength(1);
    expect(liveFor(mailbox).map((s) => s.id)).toEqual(ids);
    const created = env.cloud.graph.requests
      .slice(mark)
      .filter((r) => r.method === 'POST' && r.path === '/v1.0/subscriptions' && r.status === 201);
    expect(created).toHaveLength(1);
    expect(await indexRowsFor(mailbox)).toEqual(ids);

    const mail = deliver(mailbox);
    await eventFor(mail.id);
    await settle();
    expect(await eventsFor(mail.id)).toHaveLength(1);
    const posts = env.cloud.graph.notificationDeliveries.filter(
      (d) => d.kind === 'change' && d.subscriptionIds.some((id) => ids.includes(id)),
    );
    expect(posts).toHaveLength(1);

    const deleted = await gateway.unwatch(mailbox);
    expect(deleted.status).toBe(204);
    expect(liveFor(mailbox)).toEqual([]);
    expect(await indexRowsFor(mailbox)).toEqual([]);
    expect((await gateway.mailbox(mailbox)).status).toBe(404);
  });

  it('PUTs racing a DELETE end with one subscription that the record names, or with none and no record', async () => {
    const mailbox = 'race@contoso.com';
    for (let round = 0; round < 3; round++) {
      await watch(mailbox);
      const put = () => gateway.watch(mailbox);
      const answers = await Promise.all([put(), put(), gateway.unwatch(mailbox), put(), put()]);
      const [put1, put2, deleted, put3, put4] = answers.map((a) => a.status);
      for (const status of [put1, put2, put3, put4]) expect([200, 201]).toContain(status);
      expect([204, 404]).toContain(deleted);
      const shown = await gateway.mailbox(mailbox);
      if (shown.status === 200) {
        expect(liveFor(mailbox).map((s) => s.id)).toEqual([shown.body.subscriptionId]);
        expect(await indexRowsFor(mailbox)).toEqual([shown.body.subscriptionId]);
      } else {
        expect(shown.status).toBe(404);
        expect(liveFor(mailbox)).toEqual([]);
      }
      if (shown.status === 200) expect((await gateway.unwatch(mailbox)).status).toBe(204);
      expect(liveFor(mailbox)).toEqual([]);
      expect(await indexRowsFor(mailbox)).toEqual([]);
    }
  });

  it("takes over the lease of a creator that died, once it has run out, and creates the mailbox's one subscription", async () => {
    const mailbox = 'stale@contoso.com';
    const table = TableClient.fromConnectionString(env.settings.AzureWebJobsStorage, 'subscriptions', {
      allowInsecureConnection: true,
    });
    // What a creator that died mid-create leaves behind: its lease row, run out a second ago.
    await table.upsertEntity({
      partitionKey: 'lease',
      rowKey: encodeURIComponent(mailbox),
      holder: 'a-dead-instance',
      leaseUntil: Date.now() - 1000,
    });
    const answer = await gateway.watch(mailbox);
    expect(answer.status).toBe(201);
    expect(liveFor(mailbox).map((s) => s.id)).toEqual([answer.body.subscriptionId]);
    await expect(table.getEntity('lease', encodeURIComponent(mailbox))).rejects.toMatchObject({ statusCode: 404 });
    expect((await gateway.unwatch(mailbox)).status).toBe(204);
    expect(liveFor(mailbox)).toEqual([]);
  });
});

describe("Graph's webhooks", () => {
  const token = 'Validation: a+b/c=d e ü 日本 :;?&#%';

  it.each(['/api/graph/notifications', '/api/graph/lifecycle'])(
    '%s answers the validation handshake with the decoded token as text/plain',
    async (path) => {
      const res = await fetch(`${host.httpsUrl}${path}?validationToken=${encodeURIComponent(token)}`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(await res.text()).toBe(token);
    },
  );

  it.each([
    ['not JSON', 'hello'],
    ['no value', {}],
    ['an empty value', { value: [] }],
    ['an item without subscriptionId', { value: [{ changeType: 'created', resourceData: { id: 'x' } }] }],
    ['an item that is neither a change nor a lifecycle event', { value: [{ subscriptionId: 'x', clientState: 'y' }] }],
    ['value not an array', { value: 'x' }],
  ])('answers a body that is %s with 400, never 500', async (_what, body) => {
    const res = await postAsGraph('/api/graph/notifications', body);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(await res.text()).not.toMatch(/\bat .+\.(js|ts):\d+/);
  });

  it('drops items with a wrong clientState or an unknown subscription, keeps the good ones of a mixed batch, and never logs the secret', async () => {
    await watch('w3@contoso.com');
    const sub = graphSubscriptionOf('w3@contoso.com')!;
    env.cloud.graph.dropNotifications(sub.id, true);
    const [good1, wrong, unknown, good2] = [
      deliver('w3@contoso.com'),
      deliver('w3@contoso.com'),
      deliver('w3@contoso.com'),
      deliver('w3@contoso.com'),
    ];
    const res = await postAsGraph('/api/graph/notifications', {
      value: [
        changeItem(sub, good1.id),
        changeItem(sub, wrong.id, `${sub.clientState.slice(0, -1)}x`),
        { ...changeItem(sub, unknown.id), subscriptionId: randomUUID() },
        changeItem(sub, good2.id),
      ],
    });
    expect(res.status).toBe(202);
    await eventFor(good1.id);
    await eventFor(good2.id);
    await settle();
    expect(await eventsFor(wrong.id)).toEqual([]);
    expect(await eventsFor(unknown.id)).toEqual([]);
    expect(host.output()).toMatch(/dropped 2 of 4 notification\(s\)/);
    expect(host.output()).not.toContain(sub.clientState);
    env.cloud.graph.dropNotifications(sub.id, false);
  });

  it('a duplicate delivery produces one event', async () => {
    await watch('w4@contoso.com');
    const sub = graphSubscriptionOf('w4@contoso.com')!;
    env.cloud.graph.dropNotifications(sub.id, true);
    const message = deliver('w4@contoso.com');
    const body = { value: [changeItem(sub, message.id)] };
    const answers = await Promise.all([
      postAsGraph('/api/graph/notifications', body),
      postAsGraph('/api/graph/notifications', body),
    ]);
    expect(answers.map((a) => a.status)).toEqual([202, 202]);
    await eventFor(message.id);
    expect((await postAsGraph('/api/graph/notifications', body)).status).toBe(202);
    await settle();
    expect(await eventsFor(message.id)).toHaveLength(1);
    const id = (await eventsFor(message.id))[0].id;
    expect(downstream.received.filter((r) => (JSON.parse(r.body) as CloudEvent).id === id)).toHaveLength(1);
    env.cloud.graph.dropNotifications(sub.id, false);
  });

  it("answers 5xx while the queue can't be written, and Graph's retry then delivers the mail exactly once", async () => {
    await watch('w5@contoso.com');
    const queue = new QueueClient(env.settings.AzureWebJobsStorage, 'graph-notifications');
    await queue.delete();
    const message = deliver('w5@contoso.com');
    const sub = graphSubscriptionOf('w5@contoso.com')!;
    await eventually(
      () =>
        env.cloud.graph.notificationDeliveries.find(
          (d) => d.kind === 'change' && d.subscriptionIds.includes(sub.id) && d.status !== undefined,
        ),
      "Graph's first delivery",
    );
    const first = env.cloud.graph.notificationDeliveries.filter(
      (d) => d.kind === 'change' && d.subscriptionIds.includes(sub.id),
    );
    expect(first[0].status).toBeGreaterThanOrEqual(500);
    await queue.create();
    const event = await eventFor(message.id);
    await settle();
    expect(await eventsFor(message.id)).toHaveLength(1);
    expect(downstream.received.filter((r) => (JSON.parse(r.body) as CloudEvent).id === event.id)).toHaveLength(1);
    const deliveries = env.cloud.graph.notificationDeliveries.filter(
      (d) => d.kind === 'change' && d.subscriptionIds.includes(sub.id),
    );
    expect(deliveries.map((d) => d.status)).toEqual([...deliveries.slice(0, -1).map(() => 503), 202]);
  });

  it('moves a queue message that can never be processed to the poison queue with its reason', async () => {
    const queue = new QueueClient(env.settings.AzureWebJobsStorage, 'graph-notifications');
    await queue.createIfNotExists();
    await queue.sendMessage(
      Buffer.from(JSON.stringify({ kind: 'bogus', mailbox: 'x@contoso.com' })).toString('base64'),
    );
    const poison = new QueueReader<{ reason: string; message: unknown }>(
      env.settings.AzureWebJobsStorage,
      'graph-notifications-poison',
    );
    const entry = await eventually(
      async () => (await poison.drain()).find((p) => JSON.stringify(p.message).includes('bogus')),
      'the poison message',
    );
    expect(entry.reason).toMatch(/not a queued notification/);
  });
});

describe('lifecycle events', () => {
  it('reauthorizationRequired: the gateway reauthorizes, and the held notifications flow again', async () => {
    await watch('w6@contoso.com');
    const sub = graphSubscriptionOf('w6@contoso.com')!;
    const before = env.cloud.graph.requests.length;
    await env.cloud.graph.sendLifecycleEvent(sub.id, 'reauthorizationRequired');
    const held = deliver('w6@contoso.com');
    await eventually(
      () =>
        env.cloud.graph.requests
          .slice(before)
          .find((r) => r.method === 'POST' && r.path.endsWith(`/subscriptions/${sub.id}/reauthorize`)),
      'the reauthorize call',
    );
    await eventFor(held.id);
    const shown = await eventually(async () => {
      const answer = await gateway.mailbox('w6@contoso.com');
      return (answer.body.lastRenewal as { outcome?: string } | null)?.outcome === 'reauthorized' && answer;
    }, 'the stored outcome');
    expect(shown.body.subscriptionId).toBe(sub.id);
  });

  it('missed: the gateway catches up with delta, publishing what arrived in the gap and nothing twice', async () => {
    await watch('w7@contoso.com');
    const sub = graphSubscriptionOf('w7@contoso.com')!;
    const before = deliver('w7@contoso.com');
    await eventFor(before.id);
    env.cloud.graph.dropNotifications(sub.id, true);
    const gap = [deliver('w7@contoso.com'), deliver('w7@contoso.com')];
    await env.cloud.graph.idle();
    expect(await eventsFor(gap[0].id)).toEqual([]);
    env.cloud.graph.dropNotifications(sub.id, false);
    await env.cloud.graph.sendLifecycleEvent(sub.id, 'missed');
    for (const m of gap) await eventFor(m.id);
    await settle();
    for (const m of [before, ...gap]) expect(await eventsFor(m.id)).toHaveLength(1);
  });

  it('subscriptionRemoved: the gateway recreates the subscription and catches up the gap', async () => {
    await watch('w8@contoso.com');
    const old = graphSubscriptionOf('w8@contoso.com')!;
    env.cloud.graph.dropNotifications(old.id, true);
    const gap = deliver('w8@contoso.com');
    await env.cloud.graph.idle();
    await env.cloud.graph.sendLifecycleEvent(old.id, 'subscriptionRemoved');
    await eventFor(gap.id);
    const replaced = await eventually(() => {
      const sub = graphSubscriptionOf('w8@contoso.com');
      return sub && sub.id !== old.id && sub;
    }, 'a new subscription');
    expect(replaced.clientState).not.toBe(old.clientState);
    const shown = await gateway.mailbox('w8@contoso.com');
    expect(shown.body.subscriptionId).toBe(replaced.id);
    const after = deliver('w8@contoso.com');
    await eventFor(after.id);
    await settle();
    expect(await eventsFor(gap.id)).toHaveLength(1);
  });
});

describe('any folder', () => {
  /** The emulator's live subscriptions of `mailbox`, by the folder their resource names. */
  function subscriptionsByFolder(mailbox: string): Map<string, Record<string, string>> {
    const user = env.cloud.tenant.findUser(mailbox)!;
    const found = new Map<string, Record<string, string>>();
    for (const sub of env.cloud.graph.activeSubscriptions() as Array<Record<string, string>>) {
      const resource = String(sub.resource);
      if (!resource.toLowerCase().includes(user.mail.toLowerCase()) && !resource.includes(user.id)) continue;
      found.set(/mailFolders\('([^']+)'\)/i.exec(resource)?.[1] ?? '', sub);
    }
    return found;
  }

  it('refuses a folder that is neither a well-known name nor a folder id, and a folder named twice, with 400 before Graph', async () => {
    const before = env.cloud.graph.requests.length;
    for (const folders of [['in/box'], ['inbox', 'Inbox'], [], ['x'.repeat(600)]]) {
      const answer = await gateway.watch('folders@contoso.com', { folders });
      expect({ folders, status: answer.status }).toEqual({ folders, status: 400 });
      expect(answer.body).toMatchObject({
        errors: [expect.objectContaining({ field: expect.stringMatching(/^folders/) as unknown })],
      });
    }
    expect(env.cloud.graph.requests.slice(before)).toEqual([]);
  });

  it('two folders: one subscription each, events for both naming their folder, and renewal and recreation per folder', async () => {
    const mailbox = 'folders@contoso.com';
    const answer = await gateway.watch<{ folders: Array<{ folder: string; subscriptionId: string }> }>(mailbox, {
      folders: ['inbox', 'SentItems'],
    });
    expect(answer.status).toBe(201);
    expect(answer.body.folders.map((f) => f.folder)).toEqual(['inbox', 'sentitems']);
    const subs = subscriptionsByFolder(mailbox);
    expect([...subs.keys()].sort()).toEqual(['inbox', 'sentitems']);
    expect(answer.body.folders.map((f) => f.subscriptionId).sort()).toEqual(
      [subs.get('inbox')!.id, subs.get('sentitems')!.id].sort(),
    );

    const received = deliver(mailbox);
    const sent = env.cloud.graph.mailbox(mailbox).addMessage('sentitems', {
      subject: `sent-${randomUUID()}`,
      from: { emailAddress: { address: mailbox } },
      toRecipients: [{ emailAddress: { address: 'someone@example.org' } }],
      body: { contentType: 'text', content: 'an answer' },
    });
    expect((await eventFor(received.id)).data.folder).toBe('inbox');
    expect((await eventFor(sent.id)).data.folder).toBe('sentitems');

    // Graph loses the Sent Items subscription: the renewal renews the Inbox's and recreates that one alone.
    const lost = subs.get('sentitems')!;
    const res = await env.cloud.graph.dispatch({
      method: 'DELETE',
      url: `/v1.0/subscriptions/${lost.id}`,
      headers: { authorization: `Bearer ${appTokenFor()}` },
      body: Buffer.alloc(0),
    });
    expect(res.status).toBe(204);
    const gap = env.cloud.graph.mailbox(mailbox).addMessage('sentitems', {
      subject: `gap-${randomUUID()}`,
      from: { emailAddress: { address: mailbox } },
      toRecipients: [{ emailAddress: { address: 'someone@example.org' } }],
      body: { contentType: 'text', content: 'another answer' },
    });
    await makeDue();
    await runRenewal();
    expect((await eventFor(gap.id)).data.folder).toBe('sentitems');
    const shown = await gateway.mailbox<{
      folders: Array<{ folder: string; subscriptionId: string; lastRenewal: { outcome: string } }>;
    }>(mailbox);
    const byFolder = new Map(shown.body.folders.map((f) => [f.folder, f]));
    expect(byFolder.get('inbox')).toMatchObject({
      subscriptionId: subs.get('inbox')!.id,
      lastRenewal: { outcome: 'renewed' },
    });
    expect(byFolder.get('sentitems')!.lastRenewal.outcome).toBe('recreated');
    expect(byFolder.get('sentitems')!.subscriptionId).not.toBe(lost.id);
    expect(subscriptionsByFolder(mailbox).get('sentitems')?.id).toBe(byFolder.get('sentitems')!.subscriptionId);

    // A PUT naming the Inbox alone stops watching Sent Items; DELETE stops the rest.
    const narrowed = await gateway.watch<{ folders: unknown[] }>(mailbox, { folders: ['inbox'] });
    expect(narrowed.status).toBe(200);
    expect(narrowed.body.folders).toHaveLength(1);
    expect([...subscriptionsByFolder(mailbox).keys()]).toEqual(['inbox']);
    await settle();
    expect(await eventsFor(gap.id)).toHaveLength(1);
    expect((await gateway.unwatch(mailbox)).status).toBe(204);
    expect(subscriptionsByFolder(mailbox).size).toBe(0);
  });
});

describe('catch-up when Graph has lost the sync state', () => {
  it('starts a new delta from before the last good sync: the gap is published, nothing twice', async () => {
    const mailbox = 'w2@contoso.com';
    await watch(mailbox);
    const sub = graphSubscriptionOf(mailbox)!;
    const published = deliver(mailbox);
    await eventFor(published.id);
    env.cloud.graph.dropNotifications(sub.id, true);
    const gap = deliver(mailbox);
    await env.cloud.graph.idle();
    env.cloud.graph.invalidateDeltaTokens(mailbox);
    env.cloud.graph.dropNotifications(sub.id, false);
    const mark = env.cloud.graph.requests.length;
    await env.cloud.graph.sendLifecycleEvent(sub.id, 'missed');
    await eventFor(gap.id);
    await settle();
    expect(await eventsFor(published.id)).toHaveLength(1);
    expect(await eventsFor(gap.id)).toHaveLength(1);
    const deltas = env.cloud.graph.requests.slice(mark).filter((r) => r.path.endsWith('/messages/delta'));
    expect(deltas.map((r) => r.status)).toEqual(expect.arrayContaining([410, 200]));
    expect(host.output()).toMatch(/missed for w2@contoso\.com: caught up: 1 published, 1 already published, resynced/);
  });
});

describe('renewal', () => {
  it('renews subscriptions near expiry through $batch, retrying a throttled item after its Retry-After', async () => {
    await watch('w9@contoso.com');
    const before = new Map(
      env.cloud.graph.activeSubscriptions().map((s) => [String(s.id), String(s.expirationDateTime)]),
    );
    const target = graphSubscriptionOf('w9@contoso.com')!;
    env.cloud.graph.injectFaults({
      status: 429,
      retryAfter: 1,
      method: 'PATCH',
      pathPattern: new RegExp(`/subscriptions/${target.id}$`),
      times: 1,
    });
    const mark = env.cloud.graph.requests.length;
    await makeDue();
    const summary = await runRenewal();
    expect(summary).toMatch(/ 0 failed/);
    const seen = env.cloud.graph.requests.slice(mark);
    expect(seen.filter((r) => r.method === 'POST' && r.path === '/v1.0/$batch').length).toBeGreaterThanOrEqual(2);
    const patches = seen.filter((r) => r.method === 'PATCH' && r.path.endsWith(`/subscriptions/${target.id}`));
    // Throttled, then renewed: the gateway asks for what live tenants grant (10,070 minutes), so no refusal between.
    expect(patches.map((r) => r.status)).toEqual([429, 200]);
    for (const sub of env.cloud.graph.activeSubscriptions()) {
      expect(Date.parse(String(sub.expirationDateTime))).toBeGreaterThan(Date.parse(before.get(String(sub.id)) ?? '0'));
    }
    const shown = await gateway.mailbox('w9@contoso.com');
    expect(shown.body.lastRenewal).toMatchObject({ outcome: 'renewed' });
  });

  it('one mailbox failing does not stop the others, and each outcome is stored', async () => {
    const failing = graphSubscriptionOf('w9@contoso.com')!;
    env.cloud.graph.injectFaults({
      status: 500,
      method: 'PATCH',
      pathPattern: new RegExp(`/subscriptions/${failing.id}$`),
      times: Infinity,
    });
    await makeDue();
    const summary = await runRenewal();
    expect(summary).toMatch(/ 1 failed/);
    const failed = await gateway.mailbox('w9@contoso.com');
    expect(failed.body.lastRenewal).toMatchObject({
      outcome: 'failed',
      error: expect.stringContaining('500') as unknown,
    });
    const other = await gateway.mailbox('w1@contoso.com');
    expect(other.body.lastRenewal).toMatchObject({ outcome: 'renewed' });
  });

  it('recreates a subscription Graph deleted and catches up the mail that arrived meanwhile', async () => {
    const old = graphSubscriptionOf('w1@contoso.com')!;
    const res = await env.cloud.graph.dispatch({
      method: 'DELETE',
      url: `/v1.0/subscriptions/${old.id}`,
      headers: { authorization: `Bearer ${appTokenFor()}` },
      body: Buffer.alloc(0),
    });
    expect(res.status).toBe(204);
    const gap = deliver('w1@contoso.com');
    await makeDue();
    await runRenewal();
    await eventFor(gap.id);
    const shown = await gateway.mailbox('w1@contoso.com');
    expect(shown.body.lastRenewal).toMatchObject({ outcome: 'recreated' });
    expect(shown.body.subscriptionId).not.toBe(old.id);
    expect(graphSubscriptionOf('w1@contoso.com')!.id).toBe(shown.body.subscriptionId);
  });

  it('purges expired event-ledger and idempotency records, and keeps the rest', async () => {
    const past = new Date(Date.now() - 60_000);
    const future = new Date(Date.now() + 3_600_000);
    const ledger = TableClient.fromConnectionString(env.settings.AzureWebJobsStorage, 'publishedEvents', {
      allowInsecureConnection: true,
    });
    const keys = TableClient.fromConnectionString(env.settings.AzureWebJobsStorage, 'idempotency', {
      allowInsecureConnection: true,
    });
    await keys.createTable();
    const row = (name: string, expiresAt: Date) => ({ partitionKey: `purge-${name}`, rowKey: 'r', expiresAt });
    await Promise.all([
      ledger.upsertEntity(row('old-event', past)),
      ledger.upsertEntity(row('new-event', future)),
      keys.upsertEntity(row('old-key', past)),
      keys.upsertEntity(row('new-key', future)),
    ]);
    const summary = await runRenewal();
    expect(summary).toMatch(/purged [1-9]\d* event and [1-9]\d* idempotency record/);
    const exists = (table: TableClient, name: string) =>
      table.getEntity(`purge-${name}`, 'r').then(
        () => true,
        () => false,
      );
    expect(await exists(ledger, 'old-event')).toBe(false);
    expect(await exists(ledger, 'new-event')).toBe(true);
    expect(await exists(keys, 'old-key')).toBe(false);
    expect(await exists(keys, 'new-key')).toBe(true);
  });

  it('a subscription nobody renews really expires in Graph, and the next renewal recreates it', async () => {
    const sub = graphSubscriptionOf('support@contoso.com')!;
    env.cloud.graph.clock.advance(10_080 * 60_000);
    expect(env.cloud.graph.activeSubscriptions().some((s) => s.id === sub.id)).toBe(false);
    // A week later for the gateway too: its own clock never moved, so Graph's goes back to agree with it.
    env.cloud.graph.clock.reset();
    const missed = deliver('support@contoso.com');
    await env.cloud.graph.idle();
    expect(await eventsFor(missed.id)).toEqual([]);
    await makeDue();
    await runRenewal();
    await eventFor(missed.id);
    expect(graphSubscriptionOf('support@contoso.com')).toBeDefined();
  });
});

function appTokenFor(): string {
  return appToken(env.cloud.issuer, env.cloud.tenant, env.cloud.app);
}
