/**
 * Reply and forward through the gateway (a functions host in its own process, HTTP through gatewayClient): the
 * helpdesk loop runs in the emulated tenant, and every assertion is on what the Graph emulator holds afterwards
 * (the thread, the quoted original, attachment bytes by hash, who got what).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { InternetMessageHeader } from '@microsoft/microsoft-graph-types';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { expectProblem, gatewayClient, type GatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';

const SUPPORT = 'support@contoso.com';
const CUSTOMER = 'alerts@contoso.com';

let env: TestCloud;
let host: FunctionsHostProcess;
let gateway: GatewayClient;

beforeAll(async () => {
  // Private storage: this file's host must be the only one working its outbox queue.
  env = await startTestCloud({ privateStorage: true, graph: { latencyMs: { min: 0, max: 5 } } });
  host = await startFunctionsHost({
    ...env.settings,
    // someone@ may be read but is no allowed sender; it@ may not be read.
    ALLOWED_READ_MAILBOXES: `${SUPPORT},${CUSTOMER},someone@contoso.com`,
  });
  gateway = gatewayClient(host, { wait: 30 });
});
afterAll(async () => {
  await host?.stop();
  await env?.close();
});

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const marker = () => `ticket-${randomUUID()}`;
const header = (headers: InternetMessageHeader[] | null | undefined, name: string) =>
  (headers ?? []).find((h) => h.name?.toLowerCase() === name.toLowerCase())?.value ?? undefined;
const inbox = (address: string, subject: string) => env.cloud.graph.inbox(address).filter((m) => m.subject === subject);

/** The customer writes to support@ through the gateway; returns support@'s copy and the customer's sent copy. */
async function customerWrites(subject: string, attachment?: Buffer) {
  const sent = await gateway.send({
    from: CUSTOMER,
    to: [SUPPORT],
    subject,
    html: '<p>My printer is <b>on fire</b>.</p>',
    ...(attachment
      ? {
          attachments: [{ name: 'photo.jpg', contentType: 'image/jpeg', contentBase64: attachment.toString('base64') }],
        }
      : {}),
  });
  expect(sent.status).toBe(200);
  await env.cloud.graph.idleSubmissions();
  const [received] = inbox(SUPPORT, subject);
  const sentCopy = env.cloud.graph
    .mailbox(CUSTOMER)
    .listMessages('sentitems')
    .find((m) => m.subject === subject);
  expect(received).toBeDefined();
  expect(sentCopy).toBeDefined();
  return { received, sentCopy: sentCopy! };
}

describe('reply and forward in the thread', () => {
  it('answers a customer in the same conversation, the original quoted below, with a file attached', async () => {
    const subject = marker();
    const { received, sentCopy } = await customerWrites(subject);
    const breakdown = randomBytes(40_000);

    const answer = await gateway.reply(SUPPORT, received.id, {
      text: 'We are on it: see the breakdown attached.',
      attachments: [{ name: 'breakdown.csv', contentType: 'text/csv', contentBase64: breakdown.toString('base64') }],
      headers: { 'X-Ticket-Id': subject },
    });

    expect(answer.status).toBe(200);
    expect(answer.headers.get('location')).toBe(`/api/mail/${String(answer.body.id)}`);
    await env.cloud.graph.idleSubmissions();
    const [reply] = inbox(CUSTOMER, `RE: ${subject}`);
    expect(reply).toBeDefined();
    expect(reply.from?.emailAddress?.address).toBe(SUPPORT);
    expect(reply.conversationId).toBe(sentCopy.conversationId);
    expect(header(reply.internetMessageHeaders, 'In-Reply-To')).toBe(received.internetMessageId);
    expect(header(reply.internetMessageHeaders, 'References')).toContain(received.internetMessageId);
    expect(header(reply.internetMessageHeaders, 'X-Ticket-Id')).toBe(subject);
    const body = reply.body?.content ?? '';
    expect(body.indexOf('We are on it: see the breakdown attached.')).toBeGreaterThanOrEqual(0);
    expect(body.indexOf('We are on it')).toBeLessThan(body.indexOf('on fire'));
    expect(reply.attachments.map((a) => [a.name, sha256(Buffer.from(a.contentBytes ?? '', 'base64'))])).toEqual([
      ['breakdown.csv', sha256(breakdown)],
    ]);

    // The status document and the record say what the mail answered and where it went.
    const status = await gateway.mailStatus(String(answer.body.id));
    expect(status).toMatchObject({
      status: 'sent',
      from: SUPPORT,
      inReplyTo: { mailbox: SUPPORT, messageId: received.id, kind: 'reply' },
      conversationId: sentCopy.conversationId,
    });
  });

  it('puts an html answer above the quoted original, and sends a large attachment through an upload session', async () => {
    const subject = marker();
    const { received, sentCopy } = await customerWrites(subject);
    const manual = randomBytes(3 * 1024 * 1024 + 10);
    const before = env.cloud.graph.requests.length;

    const answer = await gateway.reply(SUPPORT, received.id, {
      html: '<p>Here is the <i>manual</i>.</p>',
      attachments: [{ name: 'manual.pdf', contentType: 'application/pdf', contentBase64: manual.toString('base64') }],
    });

    expect(answer.status).toBe(200);
    expect(
      env.cloud.graph.requests.slice(before).some((r) => r.path.endsWith('/attachments/createUploadSession')),
    ).toBe(true);
    await env.cloud.graph.idleSubmissions();
    const [reply] = inbox(CUSTOMER, `RE: ${subject}`);
    expect(reply.conversationId).toBe(sentCopy.conversationId);
    const body = reply.body?.content ?? '';
    expect(body.indexOf('<p>Here is the <i>manual</i>.</p>')).toBeGreaterThanOrEqual(0);
    expect(body.indexOf('manual</i>')).toBeLessThan(body.indexOf('on fire'));
    expect(reply.attachments.map((a) => [a.name, sha256(Buffer.from(a.contentBytes ?? '', 'base64'))])).toEqual([
      ['manual.pdf', sha256(manual)],
    ]);
  });

  it('replies to all: the sender and the other recipients but not the mailbox itself, with the caller’s cc added', async () => {
    const subject = marker();
    const original = env.cloud.graph.mailbox(SUPPORT).addMessage('inbox', {
      subject,
      from: { emailAddress: { address: 'customer@example.org', name: 'Carla' } },
      toRecipients: [{ emailAddress: { address: SUPPORT } }, { emailAddress: { address: 'it@contoso.com' } }],
      ccRecipients: [{ emailAddress: { address: 'billing@contoso.com' } }],
      body: { contentType: 'text', content: 'Who pays for the printer?' },
      internetMessageId: `<${randomUUID()}@example.org>`,
    });

    const answer = await gateway.reply(SUPPORT, original.id, {
      text: 'Billing does.',
      replyAll: true,
      cc: ['someone@contoso.com'],
    });

    expect(answer.status).toBe(200);
    await env.cloud.graph.idleSubmissions();
    const [toIt] = inbox('it@contoso.com', `RE: ${subject}`);
    expect(toIt.toRecipients?.map((r) => r.emailAddress?.address)).toEqual(['customer@example.org', 'it@contoso.com']);
    expect(toIt.ccRecipients?.map((r) => r.emailAddress?.address)).toEqual([
      'billing@contoso.com',
      'someone@contoso.com',
    ]);
    expect(inbox('billing@contoso.com', `RE: ${subject}`)).toHaveLength(1);
    expect(inbox('someone@contoso.com', `RE: ${subject}`)).toHaveLength(1);
    expect(inbox(SUPPORT, `RE: ${subject}`)).toHaveLength(0);
    expect(env.cloud.graph.outbound.filter((o) => o.subject === `RE: ${subject}`)).toHaveLength(1);
    expect(toIt.conversationId).toBe(original.conversationId);
    // Counted against support@'s daily recipients as Exchange counts them: the three Graph added, and the caller's cc.
    expect(await gateway.mailStatus(String(answer.body.id))).toMatchObject({ recipients: 4 });
  });

  it("counts a reply's recipients from the original's Reply-To, and one when the original cannot be read", async () => {
    const subject = marker();
    const original = env.cloud.graph.mailbox(SUPPORT).addMessage('inbox', {
      subject,
      from: { emailAddress: { address: 'customer@example.org' } },
      replyTo: [{ emailAddress: { address: 'orders@example.org' } }, { emailAddress: { address: 'ops@example.org' } }],
      toRecipients: [{ emailAddress: { address: SUPPORT } }],
      body: { contentType: 'text', content: 'Where is my order?' },
      internetMessageId: `<${randomUUID()}@example.org>`,
    });
    const answer = await gateway.reply(SUPPORT, original.id, { text: 'On its way.' });
    expect(answer.status).toBe(200);
    expect(await gateway.mailStatus(String(answer.body.id))).toMatchObject({ recipients: 2 });

    const gone = await customerWrites(marker());
    env.cloud.graph.mailbox(SUPPORT).deleteMessage(gone.received.id);
    const failed = await gateway.reply(SUPPORT, gone.received.id, { text: 'Too late.', replyAll: true });
    expectProblem(failed, 404);
    expect(await gateway.mailStatus(String(failed.body.id))).toMatchObject({ status: 'failed', recipients: 1 });
  });

  it("forwards to a new recipient with the original's attachments", async () => {
    const subject = marker();
    const photo = randomBytes(20_000);
    const { received, sentCopy } = await customerWrites(subject, photo);

    const answer = await gateway.forward(SUPPORT, received.id, {
      to: [{ address: 'it@contoso.com', name: 'IT' }],
      text: 'Please have a look at the photo.',
    });

    expect(answer.status).toBe(200);
    await env.cloud.graph.idleSubmissions();
    const [forwarded] = inbox('it@contoso.com', `FW: ${subject}`);
    expect(forwarded).toBeDefined();
    expect(forwarded.conversationId).toBe(sentCopy.conversationId);
    expect(forwarded.body?.content).toContain('Please have a look at the photo.');
    expect(forwarded.body?.content).toContain('on fire');
    expect(forwarded.attachments.map((a) => [a.name, sha256(Buffer.from(a.contentBytes ?? '', 'base64'))])).toEqual([
      ['photo.jpg', sha256(photo)],
    ]);
    expect(await gateway.mailStatus(String(answer.body.id))).toMatchObject({
      inReplyTo: { mailbox: SUPPORT, messageId: received.id, kind: 'forward' },
    });
  });

  it('answers a repeat with the same Idempotency-Key with the same outbox id, and sends once', async () => {
    const subject = marker();
    const { received } = await customerWrites(subject);
    const key = randomUUID();
    const body = { text: 'Once only.' };

    const first = await gateway.reply(SUPPORT, received.id, body, { headers: { 'idempotency-key': key } });
    const second = await gateway.reply(SUPPORT, received.id, body, { headers: { 'idempotency-key': key } });

    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(second.body.id).toBe(first.body.id);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    // The same key for the same body as a forward, or answering another message, is another request.
    const asForward = await gateway.forward(
      SUPPORT,
      received.id,
      { ...body, to: ['it@contoso.com'] },
      { headers: { 'idempotency-key': key } },
    );
    expectProblem(asForward, 409);
    await env.cloud.graph.idleSubmissions();
    expect(inbox(CUSTOMER, `RE: ${subject}`)).toHaveLength(1);
  });

  it('fails with message-not-found when the message was moved (its id changed) or deleted', async () => {
    const moved = await customerWrites(marker());
    env.cloud.graph.mailbox(SUPPORT).moveMessage(moved.received.id, 'archive');
    const deleted = await customerWrites(marker());
    env.cloud.graph.mailbox(SUPPORT).deleteMessage(deleted.received.id);

    for (const { received } of [moved, deleted]) {
      const answer = await gateway.reply(SUPPORT, received.id, { text: 'Too late.' });
      expectProblem(answer, 404);
      expect(answer.body).toMatchObject({
        type: expect.stringMatching(/\/problems\/message-not-found$/) as unknown,
        graph: { code: 'ErrorItemNotFound' },
      });
      const status = await gateway.mailStatus(String(answer.body.id));
      expect(status).toMatchObject({ status: 'failed', inReplyTo: { messageId: received.id } });
    }
    // No half-built draft stays behind.
    expect(env.cloud.graph.mailbox(SUPPORT).listMessages('drafts')).toEqual([]);
  });

  it('refuses a mailbox outside ALLOWED_READ_MAILBOXES or ALLOWED_SENDERS, and a malformed id, with no Graph call', async () => {
    const id = env.cloud.graph
      .mailbox('it@contoso.com')
      .addMessage('inbox', { subject: 'x', from: { emailAddress: { address: CUSTOMER } } }).id;
    const before = env.cloud.graph.requests.length;

    const notReadable = await gateway.reply('it@contoso.com', id, { text: 'x' });
    expectProblem(notReadable, 403);
    expect(notReadable.body.type).toMatch(/\/problems\/mailbox-not-readable$/);
    const notSender = await gateway.forward('someone@contoso.com', id, { to: [CUSTOMER], text: 'x' });
    expectProblem(notSender, 403);
    expect(notSender.body.type).toMatch(/\/problems\/sender-not-allowed$/);
    const badId = await gateway.reply(SUPPORT, 'not-an-id.', { text: 'x' });
    expectProblem(badId, 400);
    const invalid = await gateway.forward(SUPPORT, id, { text: 'x', html: '<p>x</p>', to: [] });
    expectProblem(invalid, 400);
    expect((invalid.body.errors as { field: string }[]).map((e) => e.field).sort()).toEqual(['text', 'to']);

    expect(env.cloud.graph.requests.length).toBe(before);
  });
});
