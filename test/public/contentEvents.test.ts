/**
 * Content in events, opted into per mailbox with the body of `PUT /api/mailboxes/{mailbox}`: the body (text or HTML,
 * cut to maxBodyBytes) and the attachment list ride in `mail.received`, always with `links`; the `mail-events` queue
 * message is cut to fit 64 KiB, the signed webhook carries the body up to maxBodyBytes; no body ever reaches a log;
 * and asking for content without Mail.Read is refused before Graph is called. The functions host runs in its own
 * process, with this file's own Azurite.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import type { CloudEvent, MailReceivedData } from '../../shared/events/cloudEvent';
import { GRAPH_APP_ROLES } from '../emulators/tenant';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { expectProblem, gatewayClient, type GatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';
import { eventually, QueueReader, WebhookReceiver } from '../support/watchSupport';

const SIGNING_SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const MAILBOXES = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'plain'];

let env: TestCloud;
let host: FunctionsHostProcess;
let gateway: GatewayClient;
let downstream: WebhookReceiver;
let events: QueueReader<CloudEvent<MailReceivedData>>;

beforeAll(async () => {
  env = await startTestCloud({
    privateStorage: true,
    users: ['alerts', ...MAILBOXES],
    graph: { latencyMs: { min: 1, max: 4 } },
  });
  // The first token the host gets lacks Mail.Read (and Mail.ReadWrite, which reads too): watching is allowed, content not.
  env.cloud.app.graphRoles = new Set(['Mail.Send', 'Mail.ReadBasic.All', 'User.Read.All']);
  downstream = await WebhookReceiver.start();
  host = await startFunctionsHost({
    ...env.settings,
    GRAPH_PERMISSION_CHECK: 'token',
    ALLOWED_WATCH_MAILBOXES: MAILBOXES.map((u) => `${u}@contoso.com`).join(','),
    EVENTS_WEBHOOK_URL: downstream.url,
    EVENTS_SIGNING_SECRET: SIGNING_SECRET,
  });
  gateway = gatewayClient(host);
  events = new QueueReader(env.settings.AzureWebJobsStorage, 'mail-events');
});
afterAll(async () => {
  await host?.stop();
  await downstream?.close();
  await env?.close();
});
afterEach(() => env.cloud.graph.clearFaults());

/** Puts a message straight into the mailbox's Inbox, as an external sender's mail arrives. */
function deliver(mailbox: string, body: { contentType: 'text' | 'html'; content: string }, attachments = []) {
  return env.cloud.graph.mailbox(mailbox).addMessage('inbox', {
    subject: `content-${randomUUID()}`,
    from: { emailAddress: { address: 'sender@example.org', name: 'Sender' } },
    toRecipients: [{ emailAddress: { address: mailbox } }],
    body,
    attachments,
  });
}

/** The event for the message on the queue (as a consumer reads it) and its raw base64 message. */
async function queuedEventFor(messageId: string): Promise<{ event: CloudEvent<MailReceivedData>; raw: string }> {
  return eventually(async () => {
    await events.drain();
    const index = events.seen.findIndex((e) => e.data.messageId === messageId);
    return index >= 0 && { event: events.seen[index], raw: events.raw[index] };
  }, `an event for message ${messageId}`);
}

/** The event for the message as the signed webhook received it, its signature checked. */
async function webhookEventFor(messageId: string): Promise<CloudEvent<MailReceivedData>> {
  const hook = await eventually(
    () =>
      downstream.received.find(
        (r) => (JSON.parse(r.body) as CloudEvent<MailReceivedData>).data.messageId === messageId,
      ),
    `the webhook to receive the event of ${messageId}`,
  );
  return new Webhook(SIGNING_SECRET).verify(
    hook.body,
    hook.headers as Record<string, string>,
  ) as CloudEvent<MailReceivedData>;
}

const messagePath = (mailbox: string, id: string) => `/api/mailboxes/${mailbox}/messages/${encodeURIComponent(id)}`;

describe('asking for content', () => {
  it('without Mail.Read in the token is 403 permission-missing naming it, before Graph is called', async () => {
    const before = env.cloud.graph.requests.length;
    const answer = await gateway.watch('c1@contoso.com', { content: { body: 'text' } });
    expectProblem(answer, 403);
    expect(answer.body).toMatchObject({
      type: '/api/problems/permission-missing',
      missingPermissions: ['Mail.Read'],
      feature: 'contentEvents',
      detail: expect.stringContaining('Mail.Read') as unknown,
    });
    const attachments = await gateway.watch('c1@contoso.com', { content: { attachments: 'list' } });
    expect(attachments.body).toMatchObject({ type: '/api/problems/permission-missing' });
    expect(env.cloud.graph.requests.slice(before)).toEqual([]);
    expect((await gateway.mailbox('c1@contoso.com')).status).toBe(404);
  });

  it.each([
    ['maxBodyBytes over 1 MB', { content: { body: 'text', maxBodyBytes: 1_048_577 } }, 'content.maxBodyBytes'],
    ['maxBodyBytes not a whole number', { content: { body: 'text', maxBodyBytes: 1.5 } }, 'content.maxBodyBytes'],
    ['an unknown body type', { content: { body: 'rtf' } }, 'content.body'],
    ['an unknown attachments value', { content: { attachments: 'all' } }, 'content.attachments'],
    ['an unknown member', { content: { body: 'text', bodies: 1 } }, 'content'],
    ['content not an object', { content: 'text' }, 'content'],
  ])('with %s is 400 naming the field, before Graph is called', async (_what, body, field) => {
    const before = env.cloud.graph.requests.length;
    const answer = await gateway.watch('c1@contoso.com', body);
    expectProblem(answer, 400);
    expect(answer.body.type).toBe('/api/problems/validation');
    expect((answer.body.errors as Array<{ field: string }>).map((e) => e.field)).toContain(field);
    expect(env.cloud.graph.requests.slice(before)).toEqual([]);
  });

  it('with a body over 16 KiB is 413 too-large, before Graph is called', async () => {
    const before = env.cloud.graph.requests.length;
    const answer = await gateway.watch('c1@contoso.com', { content: { body: 'text' }, pad: 'x'.repeat(20_000) });
    expectProblem(answer, 413);
    expect(answer.body).toMatchObject({ type: '/api/problems/too-large', limitBytes: 16_384 });
    expect(env.cloud.graph.requests.slice(before)).toEqual([]);
  });

  it('with a body that is not JSON is 400 not-json', async () => {
    const answer = await gateway.watch('c1@contoso.com', '{"content":');
    expectProblem(answer, 400);
    expect(answer.body.type).toBe('/api/problems/not-json');
  });

  it('once Mail.Read is granted (and the token renewed), is stored with the mailbox and shown by GET', async () => {
    env.cloud.app.graphRoles = new Set(GRAPH_APP_ROLES);
    // Graph calls the cached token invalid once: the gateway drops it and gets one that carries Mail.Read.
    env.cloud.graph.injectFaults({ status: 401, code: 'InvalidAuthenticationToken', times: 1 });
    const plain = await gateway.watch('plain@contoso.com');
    expect(plain.status).toBe(201);
    expect(plain.body.content).toEqual({ body: 'none', maxBodyBytes: 65536, attachments: 'none' });

    const put = await gateway.watch('c1@contoso.com', { content: { body: 'text', attachments: 'list' } });
    expect(put.status).toBe(201);
    expect(put.body.content).toEqual({ body: 'text', maxBodyBytes: 65536, attachments: 'list' });
    const shown = await gateway.mailbox('c1@contoso.com');
    expect(shown.body.content).toEqual({ body: 'text', maxBodyBytes: 65536, attachments: 'list' });
  });
});

describe('content events', () => {
  it('carry the body as text, the attachment list and links, on the queue and the signed webhook alike', async () => {
    const secret = `body-secret-${randomUUID()}`;
    const file = randomBytes(3000);
    const mail = deliver('c1@contoso.com', { contentType: 'html', content: `<p>Hello <b>${secret}</b></p>` }, [
      {
        '@odata.type': '#microsoft.graph.fileAttachment',
        name: 'Rechnung März.pdf',
        contentType: 'application/pdf',
        contentBytes: file.toString('base64'),
      },
      {
        '@odata.type': '#microsoft.graph.itemAttachment',
        name: 'Earlier mail',
        item: { subject: 'The attached one', body: { contentType: 'text', content: 'inner' } },
      },
      {
        '@odata.type': '#microsoft.graph.fileAttachment',
        name: 'logo.png',
        contentType: 'image/png',
        isInline: true,
        contentId: 'logo',
        contentBytes: randomBytes(50).toString('base64'),
      },
    ] as never);
    const stored = env.cloud.graph.mailbox('c1@contoso.com').getMessage(mail.id)!;
    const { event } = await queuedEventFor(mail.id);
    expect(event.data.body).toEqual({ contentType: 'text', content: `Hello ${secret}`, truncated: false });
    expect(event.data.attachments).toEqual([
      {
        id: stored.attachments[0].id,
        name: 'Rechnung März.pdf',
        contentType: 'application/pdf',
        size: expect.any(Number) as unknown,
        isInline: false,
        kind: 'file',
      },
      {
        id: stored.attachments[1].id,
        name: 'Earlier mail',
        contentType: null,
        size: expect.any(Number) as unknown,
        isInline: false,
        kind: 'item',
      },
      {
        id: stored.attachments[2].id,
        name: 'logo.png',
        contentType: 'image/png',
        size: expect.any(Number) as unknown,
        isInline: true,
        kind: 'file',
      },
    ]);
    const path = messagePath('c1@contoso.com', mail.id);
    expect(event.data.links).toEqual({
      message: path,
      mime: `${path}/mime`,
      attachments: stored.attachments.map((a) => ({
        id: a.id,
        href: `${path}/attachments/${encodeURIComponent(a.id)}`,
      })),
    });
    expect(await webhookEventFor(mail.id)).toEqual(event);
    // No bytes of any attachment were read for the event.
    expect(env.cloud.graph.requests.filter((r) => r.path.includes(mail.id) && r.path.endsWith('/$value'))).toEqual([]);
    expect(host.output()).not.toContain(secret);
  });

  it('carry the body as HTML when asked, and metadata with links only for a mailbox without content', async () => {
    expect((await gateway.watch('c2@contoso.com', { content: { body: 'html' } })).status).toBe(201);
    const secret = `html-secret-${randomUUID()}`;
    const mail = deliver('c2@contoso.com', { contentType: 'html', content: `<p>${secret}</p>` });
    const { event } = await queuedEventFor(mail.id);
    expect(event.data.body).toEqual({ contentType: 'html', content: `<p>${secret}</p>`, truncated: false });
    expect(event.data).not.toHaveProperty('attachments');
    expect(event.data.links).toEqual({
      message: messagePath('c2@contoso.com', mail.id),
      mime: `${messagePath('c2@contoso.com', mail.id)}/mime`,
    });

    const plainSecret = `plain-secret-${randomUUID()}`;
    const plain = deliver('plain@contoso.com', { contentType: 'text', content: plainSecret });
    const { event: plainEvent } = await queuedEventFor(plain.id);
    expect(plainEvent.data).not.toHaveProperty('body');
    expect(plainEvent.data.links).toEqual({
      message: messagePath('plain@contoso.com', plain.id),
      mime: `${messagePath('plain@contoso.com', plain.id)}/mime`,
    });
    expect(JSON.stringify(plainEvent)).not.toContain(plainSecret);
    expect(host.output()).not.toContain(secret);
  });

  it('cut the body to fit a 64 KiB queue message (truncated), while the webhook carries it whole up to maxBodyBytes', async () => {
    expect((await gateway.watch('c3@contoso.com', { content: { body: 'text', maxBodyBytes: 400_000 } })).status).toBe(
      201,
    );
    // Multi-byte characters, quotes and line breaks: the JSON of the body is larger than its bytes.
    const line = `Zeile "${randomUUID()}" mit Umlauten äöü und 日本語\n`;
    const content = line.repeat(Math.ceil(300_000 / Buffer.byteLength(line)));
    const mail = deliver('c3@contoso.com', { contentType: 'text', content });
    const { event, raw } = await queuedEventFor(mail.id);
    expect(raw.length).toBeLessThanOrEqual(65_536);
    expect(event.data.body?.truncated).toBe(true);
    expect(event.data.body?.contentType).toBe('text');
    expect(content.startsWith(event.data.body!.content)).toBe(true);
    // Cut close to the limit, not far below it.
    expect(raw.length).toBeGreaterThan(60_000);
    expect(event.data.links.message).toBe(messagePath('c3@contoso.com', mail.id));

    const hooked = await webhookEventFor(mail.id);
    expect(hooked.data.body).toEqual({ contentType: 'text', content, truncated: false });
    expect(hooked.id).toBe(event.id);
    expect(host.output()).not.toContain(line.trim());
  });

  it('cut the body to maxBodyBytes on the webhook, on a character boundary', async () => {
    expect((await gateway.watch('c4@contoso.com', { content: { body: 'text', maxBodyBytes: 1001 } })).status).toBe(201);
    const content = 'ä'.repeat(2000);
    const mail = deliver('c4@contoso.com', { contentType: 'text', content });
    const hooked = await webhookEventFor(mail.id);
    expect(hooked.data.body).toEqual({ contentType: 'text', content: 'ä'.repeat(500), truncated: true });
    const { event } = await queuedEventFor(mail.id);
    expect(event.data.body).toEqual(hooked.data.body);
  });

  it('carry the content when catch-up publishes mail whose notification was missed', async () => {
    expect((await gateway.watch('c6@contoso.com', { content: { body: 'text', attachments: 'list' } })).status).toBe(
      201,
    );
    const sub = env.cloud.graph
      .activeSubscriptions()
      .find((s) =>
        String(s.resource).toLowerCase().includes(env.cloud.tenant.findUser('c6@contoso.com')!.mail.toLowerCase()),
      )!;
    env.cloud.graph.dropNotifications(String(sub.id), true);
    const secret = `missed-secret-${randomUUID()}`;
    const mail = deliver('c6@contoso.com', { contentType: 'text', content: secret }, [
      { name: 'a.txt', contentType: 'text/plain', contentBytes: Buffer.from('hello').toString('base64') },
    ] as never);
    await env.cloud.graph.idle();
    env.cloud.graph.dropNotifications(String(sub.id), false);
    await env.cloud.graph.sendLifecycleEvent(String(sub.id), 'missed');
    const { event } = await queuedEventFor(mail.id);
    expect(event.data.body).toEqual({ contentType: 'text', content: secret, truncated: false });
    expect(event.data.attachments).toMatchObject([
      { name: 'a.txt', contentType: 'text/plain', size: expect.any(Number) as unknown, kind: 'file' },
    ]);
    expect(event.data.links.attachments).toHaveLength(1);
    expect(host.output()).not.toContain(secret);
  });

  it('are off again after a PUT without a body', async () => {
    expect((await gateway.watch('c5@contoso.com', { content: { body: 'text' } })).status).toBe(201);
    const off = await gateway.watch('c5@contoso.com');
    expect(off.status).toBe(200);
    expect(off.body.content).toEqual({ body: 'none', maxBodyBytes: 65536, attachments: 'none' });
    const secret = `off-secret-${randomUUID()}`;
    const mail = deliver('c5@contoso.com', { contentType: 'text', content: secret });
    const { event } = await queuedEventFor(mail.id);
    expect(event.data).not.toHaveProperty('body');
    expect(JSON.stringify(await webhookEventFor(mail.id))).not.toContain(secret);
  });
});
