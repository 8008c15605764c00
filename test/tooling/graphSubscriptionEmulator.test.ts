/**
 * The Graph emulator's change notifications over real HTTPS: subscriptions and their validation handshake, delivery
 * to a webhook (batching, retries, drops), lifecycle events, expiry on the emulated clock, messages delta, JSON
 * `$batch` and the inspection controls. The webhook is a small HTTPS receiver issued by the test CA, so every POST
 * Graph would make is really made and checked here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GraphEmulator } from '../emulators/graph/graphEmulator';
import { readBody, startHttpsServer, type RunningServer } from '../emulators/httpServer';
import { EmulatedTenant } from '../emulators/tenant';
import { TokenIssuer } from '../emulators/tokenIssuer';
import { appToken } from '../support/appToken';
import { testCa } from '../support/testEnv';

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  body: Record<string, unknown>;
}

/** What the receiver answers for one request. */
interface Answer {
  status: number;
  contentType?: string;
  body?: string;
  delayMs?: number;
}

/** A request the receiver got. */
interface Received {
  path: string;
  /** Path and query exactly as sent. */
  rawUrl: string;
  query: URLSearchParams;
  contentType?: string;
  body: string;
  json?: { value: Array<Record<string, unknown>> };
}

type Behaviour = (request: Received) => Answer;

/** Answers validation correctly (token echoed as text/plain) and notifications with 202, unless told otherwise. */
const wellBehaved: Behaviour = (r) =>
  r.query.has('validationToken')
    ? { status: 200, contentType: 'text/plain', body: r.query.get('validationToken') ?? '' }
    : { status: 202 };

/** A webhook on loopback HTTPS with per-path behaviour, recording everything it receives. */
class Receiver {
  readonly received: Received[] = [];
  private readonly behaviours = new Map<string, Behaviour>();

  private constructor(readonly server: RunningServer) {}

  static async start(): Promise<Receiver> {
    const started: { receiver?: Receiver } = {};
    const server = await startHttpsServer(testCa(), (req, res) => started.receiver?.handle(req, res));
    started.receiver = new Receiver(server);
    return started.receiver;
  }

  url(path: string, query = ''): string {
    return `${this.server.url}${path}${query}`;
  }

  on(path: string, behaviour: Behaviour): void {
    this.behaviours.set(path, behaviour);
  }

  /** Notification POSTs (not validations) to `path`. */
  notifications(path: string): Received[] {
    return this.received.filter((r) => r.path === path && !r.query.has('validationToken'));
  }

  reset(): void {
    this.received.length = 0;
    this.behaviours.clear();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = (await readBody(req)).toString('utf8');
    const url = new URL(req.url ?? '/', this.server.url);
    const received: Received = {
      path: url.pathname,
      rawUrl: req.url ?? '',
      query: url.searchParams,
      contentType: req.headers['content-type'],
      body,
      json: body && /json/.test(req.headers['content-type'] ?? '') ? (JSON.parse(body) as Received['json']) : undefined,
    };
    this.received.push(received);
    const answer = (this.behaviours.get(url.pathname) ?? wellBehaved)(received);
    if (answer.delayMs) await new Promise((r) => setTimeout(r, answer.delayMs));
    if (res.destroyed) return;
    res.writeHead(answer.status, answer.contentType ? { 'content-type': answer.contentType } : {});
    res.end(answer.body ?? '');
  }
}

class Client {
  constructor(
    private readonly origin: string,
    readonly token: string,
  ) {}

  async call(
    method: string,
    pathOrUrl: string,
    options: { json?: unknown; headers?: Record<string, string>; token?: string } = {},
  ): Promise<Reply> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${options.token ?? this.token}`,
      ...options.headers,
    };
    let body: string | undefined;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['content-type'] = 'application/json';
    }
    const response = await fetch(new URL(pathOrUrl, this.origin), { method, headers, body });
    const text = await response.text();
    const parsed: unknown = text && /json/.test(response.headers.get('content-type') ?? '') ? JSON.parse(text) : {};
    return { status: response.status, headers: response.headers, text, body: parsed as Record<string, unknown> };
  }
}

function errorOf(reply: Reply): { code: string; message: string } {
  const { code, message } = (reply.body as { error: { code: string; message: string } }).error;
  return { code, message };
}

const MINUTE = 60_000;

describe('Graph emulator change notifications', () => {
  const issuer = new TokenIssuer();
  const tenant = new EmulatedTenant();
  const app = tenant.registerApp();
  const otherApp = tenant.registerApp({ displayName: 'Someone else' });
  const alerts = tenant.addUser('alerts');
  const ops = tenant.addUser('ops');
  const crowded = tenant.addUser('crowded');
  const onPrem = tenant.addUser('onprem', { restEnabled: false });
  let emulator: GraphEmulator;
  let receiver: Receiver;
  let client: Client;
  let other: Client;

  beforeAll(async () => {
    receiver = await Receiver.start();
    emulator = await GraphEmulator.start({
      tenant,
      issuer,
      ca: testCa(),
      subscriptions: {
        validationTimeoutMs: 500,
        deliveryTimeoutMs: 2000,
        retryDelaysMs: [50, 100],
        maxSubscriptionsPerMailbox: 3,
      },
    });
    client = new Client(emulator.url, appToken(issuer, tenant, app));
    other = new Client(emulator.url, appToken(issuer, tenant, otherApp));
  });

  afterAll(async () => {
    await emulator.close();
    await receiver.server.close();
  });

  beforeEach(async () => {
    await emulator.idle();
    for (const sub of emulator.activeSubscriptions()) {
      const owner = sub.applicationId === app.clientId ? client : other;
      await owner.call('DELETE', `/v1.0/subscriptions/${String(sub.id)}`);
    }
    emulator.reset();
    receiver.reset();
    for (const user of [alerts, ops, crowded]) emulator.mailbox(user.id).clear();
    await emulator.idle();
    receiver.reset();
  });

  function inMinutes(minutes: number): string {
    return new Date(emulator.clock.now().getTime() + minutes * MINUTE).toISOString();
  }

  function subscribe(overrides: Record<string, unknown> = {}, as: Client = client): Promise<Reply> {
    return as.call('POST', '/v1.0/subscriptions', {
      json: {
        changeType: 'created,updated,deleted',
        notificationUrl: receiver.url('/notify', '?tenant=t1'),
        lifecycleNotificationUrl: receiver.url('/lifecycle'),
        resource: `users/${alerts.id}/mailFolders('inbox')/messages`,
        expirationDateTime: inMinutes(4000),
        clientState: 'secret-state',
        ...overrides,
      },
    });
  }

  async function subscribed(overrides: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const reply = await subscribe(overrides);
    expect(reply.status).toBe(201);
    receiver.reset();
    return reply.body;
  }

  describe('create', () => {
    it('validates both URLs as Graph does and answers 201 with the subscription resource', async () => {
      const reply = await subscribe();
      expect(reply.status).toBe(201);
      expect(reply.body).toMatchObject({
        resource: `users/${alerts.id}/mailFolders('inbox')/messages`,
        applicationId: app.clientId,
        changeType: 'created,updated,deleted',
        clientState: 'secret-state',
        notificationUrl: receiver.url('/notify', '?tenant=t1'),
        lifecycleNotificationUrl: receiver.url('/lifecycle'),
        latestSupportedTlsVersion: 'v1_2',
        includeResourceData: false,
        notificationContentType: 'application/json',
      });
      expect(reply.body.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(reply.body.creatorId).toMatch(/^[0-9a-f-]{36}$/);
      expect(String(reply.body.expirationDateTime)).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$/);

      const [notify, lifecycle] = receiver.received;
      expect(receiver.received).toHaveLength(2);
      expect(notify.path).toBe('/notify');
      expect(lifecycle.path).toBe('/lifecycle');
      for (const validation of [notify, lifecycle]) {
        expect(validation.contentType).toMatch(/^text\/plain/);
        expect(validation.body).toBe('');
        expect(validation.query.get('validationToken')).toMatch(
          /^Validation: Testing client application reachability for subscription Request-Id: [0-9a-f-]{36}$/,
        );
      }
      // The URL's own query string is kept, and the token is encoded as encodeURIComponent does.
      expect(notify.rawUrl).toMatch(/^\/notify\?tenant=t1&validationToken=Validation%3A%20Testing%20/);
      const log = emulator.notificationDeliveries.filter((d) => d.kind === 'validation');
      expect(log.map((d) => [d.url, d.status, d.subscriptionIds])).toEqual([
        [receiver.url('/notify', '?tenant=t1'), 200, [reply.body.id]],
        [receiver.url('/lifecycle'), 200, [reply.body.id]],
      ]);
    });

    it.each([
      [
        'the wrong body',
        { status: 200, contentType: 'text/plain', body: 'not the token' },
        'ValidationError',
        /exactly match/,
      ],
      [
        'the token as JSON',
        { status: 200, contentType: 'application/json', body: '"x"' },
        'ValidationError',
        /exactly match/,
      ],
      ['a 500', { status: 500 }, 'ValidationError', /must respond with 200 OK/],
      ['a 202', { status: 202 }, 'ValidationError', /must respond with 200 OK/],
    ])('refuses an endpoint answering %s with 400', async (_name, answer, code, message) => {
      const fixed: Answer = answer;
      receiver.on('/bad', (r) =>
        fixed.body === '"x"' ? { ...fixed, body: JSON.stringify(r.query.get('validationToken')) } : fixed,
      );
      const reply = await subscribe({ notificationUrl: receiver.url('/bad') });
      expect(reply.status).toBe(400);
      expect(errorOf(reply).code).toBe(code);
      expect(errorOf(reply).message).toMatch(message);
      expect(emulator.activeSubscriptions()).toHaveLength(0);
    });

    it('refuses an endpoint that answers after the validation timeout', async () => {
      receiver.on('/slow', (r) => ({ ...wellBehaved(r), delayMs: 1500 }));
      const reply = await subscribe({ notificationUrl: receiver.url('/slow') });
      expect(reply.status).toBe(400);
      expect(errorOf(reply)).toEqual({ code: 'InvalidRequest', message: 'Subscription validation request timed out.' });
    });

    it('refuses a lifecycle URL that fails validation even when the notification URL passes', async () => {
      receiver.on('/lifecycle-broken', () => ({ status: 404 }));
      const reply = await subscribe({ lifecycleNotificationUrl: receiver.url('/lifecycle-broken') });
      expect(reply.status).toBe(400);
      expect(receiver.received.map((r) => r.path)).toEqual(['/notify', '/lifecycle-broken']);
    });

    it('refuses http URLs without calling them', async () => {
      const plain = await subscribe({ notificationUrl: receiver.url('/notify').replace('https:', 'http:') });
      expect(plain.status).toBe(400);
      expect(errorOf(plain).message).toMatch(/https/);
      const lifecycle = await subscribe({ lifecycleNotificationUrl: 'http://127.0.0.1:1/lifecycle' });
      expect(lifecycle.status).toBe(400);
      expect(receiver.received).toHaveLength(0);
    });

    it('caps the expiry at the maximum with the minutes in the message, and raises a short one to 45 minutes', async () => {
      const tooFar = await subscribe({ expirationDateTime: inMinutes(10_071) });
      expect(tooFar.status).toBe(400);
      expect(errorOf(tooFar)).toEqual({
        code: 'ExtensionError',
        message: 'Subscription expiration can only be 10070 minutes in the future.',
      });
      const past = await subscribe({ expirationDateTime: inMinutes(-1) });
      expect(past.status).toBe(400);

      const longest = await subscribe({ expirationDateTime: inMinutes(10_069) });
      expect(longest.status).toBe(201);
      const short = await subscribe({ expirationDateTime: inMinutes(10) });
      expect(short.status).toBe(201);
      const ahead = Date.parse(String(short.body.expirationDateTime)) - emulator.clock.now().getTime();
      expect(ahead).toBeGreaterThan(44 * MINUTE);
      expect(ahead).toBeLessThanOrEqual(45 * MINUTE);
    });

    it("holds a changed maximum (a tenant's own limit) for creates and renewals until it changes again", async () => {
      emulator.setMaxExpirationMinutes(1440);
      try {
        const tooFar = await subscribe({ expirationDateTime: inMinutes(1441) });
        expect(tooFar.status).toBe(400);
        expect(errorOf(tooFar).message).toBe('Subscription expiration can only be 1440 minutes in the future.');
        const sub = await subscribed({ expirationDateTime: inMinutes(1439) });
        const renewal = await client.call('PATCH', `/v1.0/subscriptions/${String(sub.id)}`, {
          json: { expirationDateTime: inMinutes(1441) },
        });
        expect(renewal.status).toBe(400);
        emulator.setMaxExpirationMinutes(10_080);
        const longer = await client.call('PATCH', `/v1.0/subscriptions/${String(sub.id)}`, {
          json: { expirationDateTime: inMinutes(10_079) },
        });
        expect(longer.status).toBe(200);
      } finally {
        emulator.setMaxExpirationMinutes(10_070);
      }
      expect(() => emulator.setMaxExpirationMinutes(44)).toThrow();
    });

    it('allows a clientState of 128 characters and refuses 129', async () => {
      expect((await subscribe({ clientState: 'c'.repeat(128) })).status).toBe(201);
      const long = await subscribe({ clientState: 'c'.repeat(129) });
      expect(long.status).toBe(400);
      expect(errorOf(long).message).toMatch(/128/);
    });

    it('refuses a bad or missing changeType, notificationUrl or expirationDateTime', async () => {
      for (const overrides of [
        { changeType: 'created,moved' },
        { changeType: undefined },
        { notificationUrl: undefined },
        { expirationDateTime: undefined },
        { expirationDateTime: 'tomorrow' },
      ]) {
        const reply = await subscribe(overrides);
        expect({ overrides, status: reply.status }).toEqual({ overrides, status: 400 });
      }
    });

    it('needs a read permission: Mail.ReadBasic.All will do, Mail.Send or Mail.ReadWrite alone will not', async () => {
      for (const roles of [['Mail.Send'], ['Mail.ReadWrite']]) {
        const token = appToken(issuer, tenant, app, { roles });
        const reply = await client.call('POST', '/v1.0/subscriptions', {
          token,
          json: {
            changeType: 'created',
            notificationUrl: receiver.url('/notify'),
            resource: `users/${alerts.id}/messages`,
            expirationDateTime: inMinutes(100),
          },
        });
        expect(reply.status).toBe(403);
        expect(errorOf(reply).code).toBe('ExtensionError');
      }
      const basic = new Client(emulator.url, appToken(issuer, tenant, app, { roles: ['Mail.ReadBasic.All'] }));
      expect((await subscribe({}, basic)).status).toBe(201);
    });

    it('accepts the resource shapes Graph does and refuses the others', async () => {
      for (const resource of [
        `/users/${alerts.mail}/mailFolders('Inbox')/messages`,
        `Users/${alerts.userPrincipalName}/MailFolders/inbox/Messages`,
        `users/${alerts.id}/messages`,
      ]) {
        const reply = await subscribe({ resource });
        expect({ resource, status: reply.status }).toEqual({ resource, status: 201 });
        await client.call('DELETE', `/v1.0/subscriptions/${String(reply.body.id)}`);
      }
      const me = await subscribe({ resource: "me/mailFolders('inbox')/messages" });
      expect(me.status).toBe(400);
      expect(errorOf(me).message).toBe('/me request is only valid with delegated authentication flow.');
      expect((await subscribe({ resource: `users/${alerts.id}/events` })).status).toBe(400);
      expect((await subscribe({ resource: `users/nobody@contoso.com/messages` })).status).toBe(404);
      const onPremises = await subscribe({ resource: `users/${onPrem.id}/messages` });
      expect(onPremises.status).toBe(404);
      expect(errorOf(onPremises).message).toMatch(/hosted on-premise/);
      expect((await subscribe({ resource: `users/${alerts.id}/mailFolders('nosuchfolder')/messages` })).status).toBe(
        400,
      );
      expect(receiver.received.filter((r) => r.path === '/notify')).toHaveLength(3);
    });

    it('refuses more active subscriptions per mailbox than the limit, over all apps, with 403', async () => {
      const resource = `users/${crowded.id}/messages`;
      expect((await subscribe({ resource })).status).toBe(201);
      expect((await subscribe({ resource })).status).toBe(201);
      expect((await subscribe({ resource }, other)).status).toBe(201);
      const fourth = await subscribe({ resource }, other);
      expect(fourth.status).toBe(403);
      expect(errorOf(fourth).message).toMatch(/maximum number of subscriptions \(3\)/);
      // Another mailbox has its own budget.
      expect((await subscribe({ resource: `users/${ops.id}/messages` })).status).toBe(201);
    });
  });

  describe('read, renew, delete', () => {
    it('shows a subscription only to the app that created it', async () => {
      const sub = await subscribed();
      const id = String(sub.id);
      expect((await client.call('GET', `/v1.0/subscriptions/${id}`)).body.id).toBe(id);
      const mine = await client.call('GET', '/v1.0/subscriptions');
      expect((mine.body.value as Array<{ id: string }>).map((s) => s.id)).toEqual([id]);

      expect((await other.call('GET', '/v1.0/subscriptions')).body.value).toEqual([]);
      for (const [method, json] of [
        ['GET', undefined],
        ['PATCH', { expirationDateTime: inMinutes(200) }],
        ['POST', undefined],
        ['DELETE', undefined],
      ] as const) {
        const path = method === 'POST' ? `/v1.0/subscriptions/${id}/reauthorize` : `/v1.0/subscriptions/${id}`;
        const reply = await other.call(method, path, { json });
        expect({ method, status: reply.status, error: errorOf(reply) }).toEqual({
          method,
          status: 404,
          error: { code: 'ResourceNotFound', message: 'The object was not found.' },
        });
      }
      expect((await client.call('GET', `/v1.0/subscriptions/${id}`)).status).toBe(200);
    });

    it('renews within the same limits and refuses to change the lifecycle URL', async () => {
      const id = String((await subscribed()).id);
      const renewed = await client.call('PATCH', `/v1.0/subscriptions/${id}`, {
        json: { expirationDateTime: inMinutes(9000) },
      });
      expect(renewed.status).toBe(200);
      expect(Date.parse(String(renewed.body.expirationDateTime))).toBeCloseTo(Date.parse(inMinutes(9000)), -4);
      const tooFar = await client.call('PATCH', `/v1.0/subscriptions/${id}`, {
        json: { expirationDateTime: inMinutes(20_000) },
      });
      expect(errorOf(tooFar).message).toBe('Subscription expiration can only be 10070 minutes in the future.');
      const lifecycle = await client.call('PATCH', `/v1.0/subscriptions/${id}`, {
        json: { lifecycleNotificationUrl: receiver.url('/elsewhere') },
      });
      expect(lifecycle.status).toBe(400);
      expect(errorOf(lifecycle).message).toMatch(/lifecycleNotificationUrl/);
      expect((await client.call('DELETE', `/v1.0/subscriptions/${id}`)).status).toBe(204);
      expect((await client.call('GET', `/v1.0/subscriptions/${id}`)).status).toBe(404);
    });

    it('deletes a subscription for good once the emulated clock passes its expiry', async () => {
      const id = String((await subscribed({ expirationDateTime: inMinutes(60) })).id);
      emulator.clock.advance(59 * MINUTE);
      expect((await client.call('GET', `/v1.0/subscriptions/${id}`)).status).toBe(200);
      emulator.clock.advance(2 * MINUTE);
      expect(emulator.activeSubscriptions()).toHaveLength(0);
      for (const method of ['GET', 'PATCH', 'DELETE']) {
        const reply = await client.call(method, `/v1.0/subscriptions/${id}`, {
          json: method === 'PATCH' ? { expirationDateTime: inMinutes(100) } : undefined,
        });
        expect({ method, status: reply.status, code: errorOf(reply).code }).toEqual({
          method,
          status: 404,
          code: 'ResourceNotFound',
        });
      }
      emulator.mailbox(alerts.id).addMessage('inbox', { subject: 'after expiry' });
      await emulator.idle();
      expect(receiver.received).toHaveLength(0);
    });
  });

  describe('delivery', () => {
    it('posts a change notification of the documented shape when mail lands in the watched folder', async () => {
      const sub = await subscribed({ changeType: 'created' });
      const sent = await client.call('POST', `/v1.0/users/${ops.id}/sendMail`, {
        json: { message: { subject: 'Hello', toRecipients: [{ emailAddress: { address: alerts.mail } }] } },
      });
      expect(sent.status).toBe(202);
      await emulator.idle();
      const posts = receiver.notifications('/notify');
      expect(posts).toHaveLength(1);
      expect(posts[0].query.get('tenant')).toBe('t1');
      expect(posts[0].contentType).toMatch(/^application\/json/);
      const message = emulator.inbox(alerts.id)[0];
      const resource = `Users/${alerts.id}/Messages/${message.id}`;
      expect(posts[0].json).toEqual({
        value: [
          {
            id: expect.any(String) as unknown,
            subscriptionId: sub.id,
            subscriptionExpirationDateTime: sub.expirationDateTime,
            changeType: 'created',
            resource,
            resourceData: {
              '@odata.type': '#Microsoft.Graph.Message',
              '@odata.id': resource,
              '@odata.etag': `W/"${message.changeKey}"`,
              id: message.id,
            },
            clientState: 'secret-state',
            tenantId: tenant.tenantId,
          },
        ],
      });
      const change = emulator.notificationDeliveries.filter((d) => d.kind === 'change');
      expect(change).toMatchObject([{ attempt: 1, status: 202, subscriptionIds: [sub.id], slow: false }]);
      expect(emulator.slowDeliveryRatio(receiver.url('/notify', '?tenant=t1'))).toBe(0);
    });

    it('notifies only for the folder and change types a subscription asked for', async () => {
      await subscribed({ changeType: 'updated', clientState: undefined });
      const mailbox = emulator.mailbox(alerts.id);
      const draft = mailbox.addMessage('drafts', { subject: 'draft' });
      mailbox.updateMessage(draft.id, { subject: 'draft 2' });
      const inbox = mailbox.addMessage('inbox', { subject: 'new' });
      await emulator.idle();
      expect(receiver.notifications('/notify')).toHaveLength(0);
      mailbox.updateMessage(inbox.id, { isRead: true });
      await emulator.idle();
      const [post] = receiver.notifications('/notify');
      expect(post.json?.value.map((i) => [i.changeType, (i.resourceData as { id: string }).id])).toEqual([
        ['updated', inbox.id],
      ]);
      expect(post.json?.value[0]).not.toHaveProperty('clientState');
    });

    it('puts the notifications of several subscriptions with the same URL in one POST', async () => {
      const first = await subscribed();
      const second = await subscribed({ resource: `users/${alerts.id}/messages` });
      emulator.mailbox(alerts.id).addMessage('inbox', { subject: 'one change, two subscriptions' });
      await emulator.idle();
      const posts = receiver.notifications('/notify');
      expect(posts).toHaveLength(1);
      expect(posts[0].json?.value.map((i) => i.subscriptionId).sort()).toEqual([first.id, second.id].sort());
    });

    it('retries after a failure and stops on success', async () => {
      await subscribed();
      let calls = 0;
      receiver.on('/notify', () => (++calls === 1 ? { status: 500 } : { status: 200 }));
      emulator.mailbox(alerts.id).addMessage('inbox', { subject: 'retry me' });
      await emulator.idle();
      expect(receiver.notifications('/notify')).toHaveLength(2);
      expect(receiver.notifications('/notify')[1].body).toBe(receiver.notifications('/notify')[0].body);
      expect(
        emulator.notificationDeliveries.filter((d) => d.kind === 'change').map((d) => [d.attempt, d.status, d.dropped]),
      ).toEqual([
        [1, 500, undefined],
        [2, 200, undefined],
      ]);
    });

    it('gives up when the retries run out', async () => {
      await subscribed();
      receiver.on('/notify', () => ({ status: 503 }));
      emulator.mailbox(alerts.id).addMessage('inbox', { subject: 'never delivered' });
      await emulator.idle();
      const attempts = emulator.notificationDeliveries.filter((d) => d.kind === 'change');
      expect(attempts.map((d) => [d.attempt, d.status, d.dropped ?? false])).toEqual([
        [1, 503, false],
        [2, 503, false],
        [3, 503, true],
      ]);
      expect(receiver.notifications('/notify')).toHaveLength(3);
    });

    it('discards a failed notification older than 4 hours of emulated time instead of retrying it', async () => {
      await subscribed();
      receiver.on('/notify', () => {
        emulator.clock.advance(4 * 60 * MINUTE + 1);
        return { status: 500 };
      });
      emulator.mailbox(alerts.id).addMessage('inbox', { subject: 'too late' });
      await emulator.idle();
      expect(
        emulator.notificationDeliveries.filter((d) => d.kind === 'change').map((d) => [d.attempt, d.status, d.dropped]),
      ).toEqual([[1, 500, true]]);
      expect(receiver.notifications('/notify')).toHaveLength(1);
    });

    it('drops notifications while dropNotifications is on, and delivers again when it is off', async () => {
      const sub = await subscribed();
      emulator.dropNotifications(String(sub.id), true);
      emulator.mailbox(alerts.id).addMessage('inbox', { subject: 'dropped' });
      await emulator.idle();
      expect(receiver.notifications('/notify')).toHaveLength(0);
      expect(emulator.notificationDeliveries.filter((d) => d.kind === 'change')).toMatchObject([
        { dropped: true, attempt: 0, subscriptionIds: [sub.id] },
      ]);
      emulator.dropNotifications(String(sub.id), false);
      emulator.mailbox(alerts.id).addMessage('inbox', { subject: 'delivered' });
      await emulator.idle();
      expect(receiver.notifications('/notify')).toHaveLength(1);
    });
  });

  describe('lifecycle events', () => {
    it('sends missed to the lifecycle URL with the documented fields', async () => {
      const sub = await subscribed();
      const delivery = await emulator.sendLifecycleEvent(String(sub.id), 'missed');
      expect(delivery).toMatchObject({ kind: 'lifecycle', status: 202, attempt: 1, url: receiver.url('/lifecycle') });
      const [post] = receiver.received;
      expect(post.path).toBe('/lifecycle');
      expect(post.json).toEqual({
        value: [
          {
            subscriptionId: sub.id,
            subscriptionExpirationDateTime: sub.expirationDateTime,
            tenantId: tenant.tenantId,
            clientState: 'secret-state',
            lifecycleEvent: 'missed',
          },
        ],
      });
      expect((await client.call('GET', `/v1.0/subscriptions/${String(sub.id)}`)).status).toBe(200);
    });

    it('deletes the subscription on subscriptionRemoved', async () => {
      const sub = await subscribed();
      await emulator.sendLifecycleEvent(String(sub.id), 'subscriptionRemoved');
      expect(receiver.received[0].json?.value[0].lifecycleEvent).toBe('subscriptionRemoved');
      expect((await client.call('GET', `/v1.0/subscriptions/${String(sub.id)}`)).status).toBe(404);
      emulator.mailbox(alerts.id).addMessage('inbox', { subject: 'nobody listens' });
      await emulator.idle();
      expect(receiver.notifications('/notify')).toHaveLength(0);
    });

    it.each(['reauthorize', 'renewal'])(
      'holds change notifications after reauthorizationRequired until %s, then delivers them',
      async (answer) => {
        const sub = await subscribed();
        const id = String(sub.id);
        await emulator.sendLifecycleEvent(id, 'reauthorizationRequired');
        const message = emulator.mailbox(alerts.id).addMessage('inbox', { subject: 'held' });
        await emulator.idle();
        expect(receiver.notifications('/notify')).toHaveLength(0);
        const reply =
          answer === 'reauthorize'
            ? await client.call('POST', `/v1.0/subscriptions/${id}/reauthorize`)
            : await client.call('PATCH', `/v1.0/subscriptions/${id}`, {
                json: { expirationDateTime: inMinutes(5000) },
              });
        expect(reply.status).toBe(answer === 'reauthorize' ? 204 : 200);
        await emulator.idle();
        const posts = receiver.notifications('/notify');
        expect(posts).toHaveLength(1);
        expect((posts[0].json?.value[0].resourceData as { id: string }).id).toBe(message.id);
      },
    );

    it('refuses reauthorize for a token that lost its read permission', async () => {
      const id = String((await subscribed()).id);
      const sendOnly = appToken(issuer, tenant, app, { roles: ['Mail.Send'] });
      expect((await client.call('POST', `/v1.0/subscriptions/${id}/reauthorize`, { token: sendOnly })).status).toBe(
        403,
      );
    });

    it('refuses a lifecycle event for a subscription without a lifecycle URL', async () => {
      const sub = await subscribed({ lifecycleNotificationUrl: undefined });
      await expect(emulator.sendLifecycleEvent(String(sub.id), 'missed')).rejects.toThrow(/lifecycleNotificationUrl/);
      const inspection = await fetch(
        `${emulator.url}/_emulator/subscriptions/${String(sub.id)}/lifecycle?event=missed`,
        {
          method: 'POST',
        },
      );
      expect(inspection.status).toBe(400);
    });
  });

  describe('messages delta', () => {
    const deltaPath = `/v1.0/users/${alerts.mail}/mailFolders/inbox/messages/delta`;

    async function follow(first: string, headers: Record<string, string> = {}) {
      const pages: Reply[] = [];
      let next: string | undefined = first;
      while (next) {
        const page = await client.call('GET', next, { headers });
        expect(page.status).toBe(200);
        pages.push(page);
        next = page.body['@odata.nextLink'] as string | undefined;
      }
      return { pages, deltaLink: String(pages[pages.length - 1].body['@odata.deltaLink']) };
    }

    const ids = (pages: Reply[]) => pages.flatMap((p) => (p.body.value as Array<{ id: string }>).map((m) => m.id));

    it('pages the first round, then returns only what was created, changed or removed', async () => {
      const mailbox = emulator.mailbox(alerts.id);
      const messages = [1, 2, 3, 4, 5].map((n) => mailbox.addMessage('inbox', { subject: `m${n}` }));
      mailbox.addMessage('drafts', { subject: 'elsewhere' });

      const first = await follow(`${deltaPath}?$select=subject,isRead`, { prefer: 'odata.maxpagesize=2' });
      expect(first.pages.map((p) => (p.body.value as unknown[]).length)).toEqual([2, 2, 1]);
      expect(first.pages[0].headers.get('preference-applied')).toBe('odata.maxpagesize=2');
      expect(ids(first.pages).sort()).toEqual(messages.map((m) => m.id).sort());
      for (const page of first.pages.slice(0, -1)) {
        expect(String(page.body['@odata.nextLink'])).toMatch(new RegExp(`^${emulator.url}/v1\\.0/.*\\$skiptoken=`));
        expect(page.body).not.toHaveProperty('@odata.deltaLink');
      }
      expect(first.deltaLink).toMatch(new RegExp(`^${emulator.url}/v1\\.0/.*\\$deltatoken=`));
      expect(first.deltaLink).not.toMatch(/select/i);
      const sample = (first.pages[0].body.value as Array<Record<string, unknown>>)[0];
      expect(Object.keys(sample).sort()).toEqual(['@odata.etag', '@odata.type', 'id', 'isRead', 'subject']);

      const unchanged = await follow(first.deltaLink);
      expect(ids(unchanged.pages)).toEqual([]);

      const added = mailbox.addMessage('inbox', { subject: 'new' });
      mailbox.updateMessage(messages[1].id, { isRead: true });
      mailbox.deleteMessage(messages[2].id);
      mailbox.moveMessage(messages[3].id, 'deleteditems');
      const second = await follow(unchanged.deltaLink);
      const value = second.pages.flatMap((p) => p.body.value as Array<Record<string, unknown>>);
      expect(value).toHaveLength(4);
      expect(value.find((m) => m.id === added.id)).toMatchObject({ subject: 'new', isRead: false });
      expect(value.find((m) => m.id === messages[1].id)).toMatchObject({ subject: 'm2', isRead: true });
      for (const gone of [messages[2], messages[3]]) {
        expect(value.find((m) => m.id === gone.id)).toEqual({
          '@odata.type': '#microsoft.graph.message',
          id: gone.id,
          '@removed': { reason: 'deleted' },
        });
      }
      // The default page size is 10 and no preference was sent.
      expect(second.pages[0].headers.get('preference-applied')).toBeNull();
    });

    it('pages by 10 without a page-size preference', async () => {
      const mailbox = emulator.mailbox(alerts.id);
      for (let n = 0; n < 12; n++) mailbox.addMessage('inbox', { subject: `m${n}` });
      const { pages } = await follow(deltaPath);
      expect(pages.map((p) => (p.body.value as unknown[]).length)).toEqual([10, 2]);
      expect(pages[0].headers.get('preference-applied')).toBeNull();
    });

    it('filters on receivedDateTime and keeps the filter in the links', async () => {
      const mailbox = emulator.mailbox(alerts.id);
      mailbox.addMessage('inbox', { subject: 'old', receivedDateTime: '2020-01-01T00:00:00Z' });
      const recent = mailbox.addMessage('inbox', { subject: 'recent', receivedDateTime: '2030-01-01T00:00:00Z' });
      const first = await follow(`${deltaPath}?$filter=receivedDateTime ge 2025-01-01T00:00:00Z`);
      expect(ids(first.pages)).toEqual([recent.id]);
      mailbox.addMessage('inbox', { subject: 'also old', receivedDateTime: '2021-01-01T00:00:00Z' });
      const later = mailbox.addMessage('inbox', { subject: 'later', receivedDateTime: '2031-01-01T00:00:00Z' });
      expect(ids((await follow(first.deltaLink)).pages)).toEqual([later.id]);

      for (const filter of ["subject eq 'x'", 'receivedDateTime le 2025-01-01T00:00:00Z', 'receivedDateTime ge soon']) {
        const reply = await client.call('GET', `${deltaPath}?$filter=${encodeURIComponent(filter)}`);
        expect({ filter, status: reply.status, code: errorOf(reply).code }).toEqual({
          filter,
          status: 400,
          code: 'ErrorInvalidUrlQueryFilter',
        });
      }
    });

    it('fails invalidated tokens with 410 and malformed ones with 400', async () => {
      emulator.mailbox(alerts.id).addMessage('inbox', { subject: 'x' });
      const first = await follow(`${deltaPath}`, { prefer: 'odata.maxpagesize=1' });
      emulator.mailbox(alerts.id).addMessage('inbox', { subject: 'y' });
      const midway = await client.call('GET', deltaPath, { headers: { prefer: 'odata.maxpagesize=1' } });
      const nextLink = String(midway.body['@odata.nextLink']);
      emulator.invalidateDeltaTokens(alerts.mail);
      for (const link of [first.deltaLink, nextLink]) {
        const reply = await client.call('GET', link);
        expect(reply.status).toBe(410);
        expect(errorOf(reply).code).toBe('syncStateNotFound');
      }
      const malformed = await client.call('GET', `${deltaPath}?$deltatoken=not-a-token`);
      expect(malformed.status).toBe(400);
      // A full sync works again.
      expect((await follow(deltaPath)).pages.length).toBeGreaterThan(0);
    });

    it('refuses a token issued for another folder with 410', async () => {
      const { deltaLink } = await follow(deltaPath);
      const token = new URL(deltaLink).searchParams.get('$deltatoken') ?? '';
      const reply = await client.call(
        'GET',
        `/v1.0/users/${alerts.id}/mailFolders/drafts/messages/delta?$deltatoken=${token}`,
      );
      expect(reply.status).toBe(410);
    });
  });

  describe('$batch', () => {
    it('runs each item through the pipeline: one PATCH gets an injected 429 with Retry-After', async () => {
      const ids = [];
      for (let i = 0; i < 3; i++) ids.push(String((await subscribed()).id));
      emulator.injectFaults({ status: 429, retryAfter: 7, method: 'PATCH', pathPattern: new RegExp(ids[1]) });
      const reply = await client.call('POST', '/v1.0/$batch', {
        json: {
          requests: ids.map((id, n) => ({
            id: String(n + 1),
            method: 'PATCH',
            url: `/subscriptions/${id}`,
            headers: { 'content-type': 'application/json' },
            body: { expirationDateTime: inMinutes(6000) },
          })),
        },
      });
      expect(reply.status).toBe(200);
      const responses = reply.body.responses as Array<{
        id: string;
        status: number;
        headers: Record<string, string>;
        body: Record<string, unknown>;
      }>;
      const byId = new Map(responses.map((r) => [r.id, r]));
      expect([...byId.keys()].sort()).toEqual(['1', '2', '3']);
      expect(byId.get('1')?.status).toBe(200);
      expect(byId.get('1')?.body.id).toBe(ids[0]);
      expect(byId.get('3')?.status).toBe(200);
      expect(byId.get('2')?.status).toBe(429);
      expect(byId.get('2')?.headers['retry-after']).toBe('7');
      expect((byId.get('2')?.body.error as { code: string }).code).toBe('TooManyRequests');
      // Items appear in the request log like any request.
      expect(
        emulator.requests
          .filter((r) => r.method === 'PATCH')
          .map((r) => r.status)
          .sort(),
      ).toEqual([200, 200, 429]);
    });

    it('refuses more than 20 requests, duplicate ids and unknown dependencies with 400', async () => {
      const item = (id: string) => ({ id, method: 'GET', url: '/subscriptions' });
      const tooMany = await client.call('POST', '/v1.0/$batch', {
        json: { requests: Array.from({ length: 21 }, (_, i) => item(String(i))) },
      });
      expect(tooMany.status).toBe(400);
      expect(errorOf(tooMany).message).toMatch(/20/);
      const twenty = await client.call('POST', '/v1.0/$batch', {
        json: { requests: Array.from({ length: 20 }, (_, i) => item(String(i))) },
      });
      expect(twenty.status).toBe(200);
      expect((await client.call('POST', '/v1.0/$batch', { json: { requests: [item('a'), item('a')] } })).status).toBe(
        400,
      );
      const unknown = await client.call('POST', '/v1.0/$batch', {
        json: { requests: [{ ...item('a'), dependsOn: ['zz'] }] },
      });
      expect(unknown.status).toBe(400);
    });

    it('answers 424 for an item whose dependency failed, without running it', async () => {
      const id = String((await subscribed()).id);
      const reply = await client.call('POST', '/v1.0/$batch', {
        json: {
          requests: [
            { id: 'missing', method: 'GET', url: '/subscriptions/00000000-0000-0000-0000-000000000000' },
            { id: 'delete', method: 'DELETE', url: `subscriptions/${id}`, dependsOn: ['missing'] },
            { id: 'read', method: 'GET', url: `subscriptions/${id}` },
          ],
        },
      });
      const statuses = Object.fromEntries(
        (reply.body.responses as Array<{ id: string; status: number }>).map((r) => [r.id, r.status]),
      );
      expect(statuses).toEqual({ missing: 404, delete: 424, read: 200 });
      expect((await client.call('GET', `/v1.0/subscriptions/${id}`)).status).toBe(200);
    });

    it('needs a valid token for every item', async () => {
      const reply = await client.call('POST', '/v1.0/$batch', {
        token: 'not-a-token',
        json: { requests: [{ id: '1', method: 'GET', url: '/subscriptions' }] },
      });
      expect(reply.status).toBe(401);
    });
  });

  describe('inspection', () => {
    it('lists subscriptions and deliveries without clientState, and drives lifecycle, drops and the clock', async () => {
      const sub = await subscribed({ expirationDateTime: inMinutes(100) });
      const id = String(sub.id);
      const inspect = (method: string, path: string) => fetch(`${emulator.url}/_emulator${path}`, { method });

      const subs = (await (await inspect('GET', '/subscriptions')).json()) as { value: Array<Record<string, unknown>> };
      expect(subs.value).toMatchObject([{ id, clientState: '***' }]);

      expect((await inspect('POST', `/subscriptions/${id}/drop-notifications?on=true`)).status).toBe(200);
      emulator.mailbox(alerts.id).addMessage('inbox', { subject: 'dropped via inspection' });
      await emulator.idle();
      expect(receiver.notifications('/notify')).toHaveLength(0);
      expect((await inspect('POST', `/subscriptions/${id}/drop-notifications?on=false`)).status).toBe(200);
      emulator.mailbox(alerts.id).addMessage('inbox', { subject: 'delivered' });
      await emulator.idle();
      expect(receiver.notifications('/notify')).toHaveLength(1);

      const lifecycle = await inspect('POST', `/subscriptions/${id}/lifecycle?event=missed`);
      expect(lifecycle.status).toBe(200);
      expect(
        receiver.received.filter((r) => r.path === '/lifecycle').map((r) => r.json?.value[0].lifecycleEvent),
      ).toEqual(['missed']);
      expect((await inspect('POST', `/subscriptions/${id}/lifecycle?event=bogus`)).status).toBe(400);

      const log = (await (await inspect('GET', '/notifications')).json()) as {
        value: Array<{ kind: string; dropped?: boolean; body?: { value: Array<Record<string, unknown>> } }>;
      };
      expect(log.value.map((d) => [d.kind, d.dropped ?? false])).toEqual([
        ['validation', false],
        ['validation', false],
        ['change', true],
        ['change', false],
        ['lifecycle', false],
      ]);
      expect(JSON.stringify(log.value)).not.toContain('secret-state');

      expect((await inspect('POST', '/clock/advance?minutes=101')).status).toBe(200);
      expect((await client.call('GET', `/v1.0/subscriptions/${id}`)).status).toBe(404);
      expect((await inspect('POST', `/subscriptions/${id}/lifecycle?event=missed`)).status).toBe(404);
    });
  });
});
