/**
 * The Graph emulator's mail operations over real HTTPS: sendMail, drafts, attachments, upload sessions, draft send,
 * delivery into the tenant's Inboxes and the outbound log, Send As, and the per (app, mailbox) upload budget. Each test
 * checks what a product depends on, so a lax emulator (or a broken one) fails here first.
 */
import { randomBytes } from 'node:crypto';
import type { FileAttachment, InternetMessageHeader, Message } from '@microsoft/microsoft-graph-types';
import { GraphEmulator, type GraphLimits } from '../emulators/graph/graphEmulator';
import { EmulatedTenant } from '../emulators/tenant';
import { TokenIssuer } from '../emulators/tokenIssuer';
import { testCa } from '../support/testEnv';
import { appToken } from '../support/appToken';

const MB = 1024 * 1024;

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  body: Record<string, unknown>;
}

interface GraphErrorBody {
  code: string;
  message: string;
}

type MessageJson = Message & { id: string };
type AttachmentJson = FileAttachment & { id: string; '@odata.type': string };

interface RequestOptions {
  /** Defaults to the client's token; null sends no Authorization header. */
  token?: string | null;
  json?: unknown;
  body?: Uint8Array | string;
  headers?: Record<string, string>;
}

/** Talks to one emulator with global fetch (the test CA is trusted through NODE_EXTRA_CA_CERTS). */
class Client {
  constructor(
    private readonly origin: string,
    private readonly token: string,
  ) {}

  async call(method: string, pathOrUrl: string, options: RequestOptions = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? this.token : options.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: Uint8Array | string | undefined = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['content-type'] = 'application/json';
    }
    const response = await fetch(new URL(pathOrUrl, this.origin), { method, headers, body });
    const text = await response.text();
    const parsed: unknown = text && /json/.test(response.headers.get('content-type') ?? '') ? JSON.parse(text) : {};
    return { status: response.status, headers: response.headers, text, body: parsed as Record<string, unknown> };
  }

  /** GETs a raw (non-JSON) resource. */
  async bytes(path: string): Promise<Buffer> {
    const response = await fetch(new URL(path, this.origin), { headers: { authorization: `Bearer ${this.token}` } });
    expect(response.status).toBe(200);
    return Buffer.from(await response.arrayBuffer());
  }

  sendMail(user: string, message: object, extra: Record<string, unknown> = {}, token?: string): Promise<Reply> {
    return this.call('POST', `/v1.0/users/${user}/sendMail`, { json: { message, ...extra }, token });
  }

  async createDraft(user: string, message: object): Promise<MessageJson> {
    const reply = await this.call('POST', `/v1.0/users/${user}/messages`, { json: message });
    expect(reply.status).toBe(201);
    return reply.body as unknown as MessageJson;
  }

  async list(user: string, folder: string, query = ''): Promise<MessageJson[]> {
    const reply = await this.call('GET', `/v1.0/users/${user}/mailFolders/${folder}/messages${query}`);
    expect(reply.status).toBe(200);
    return reply.body.value as MessageJson[];
  }

  async attachments(user: string, messageId: string): Promise<AttachmentJson[]> {
    const reply = await this.call('GET', `/v1.0/users/${user}/messages/${messageId}/attachments`);
    expect(reply.status).toBe(200);
    return reply.body.value as AttachmentJson[];
  }

  async openSession(user: string, messageId: string, item: Record<string, unknown>): Promise<Reply> {
    return this.call('POST', `/v1.0/users/${user}/messages/${messageId}/attachments/createUploadSession`, {
      json: { AttachmentItem: { attachmentType: 'file', ...item } },
    });
  }

  /** PUTs bytes [start, start + chunk.length) of a `total`-byte file to an upload URL, without a token. */
  putChunk(uploadUrl: string, chunk: Buffer, start: number, total: number, headers: Record<string, string> = {}) {
    return this.call('PUT', uploadUrl, {
      token: null,
      body: chunk,
      headers: {
        'content-type': 'application/octet-stream',
        'content-range': `bytes ${start}-${start + chunk.length - 1}/${total}`,
        ...headers,
      },
    });
  }
}

/** The error's code and message (innerError's ids and date vary). */
function errorOf(reply: Reply): GraphErrorBody {
  const { code, message } = (reply.body as { error: GraphErrorBody }).error;
  return { code, message };
}

function to(...addresses: string[]) {
  return addresses.map((address) => ({ emailAddress: { address } }));
}

function header(headers: InternetMessageHeader[] | null | undefined, name: string): string | undefined {
  return (headers ?? []).find((h) => h.name?.toLowerCase() === name.toLowerCase())?.value ?? undefined;
}

function bytesOf(attachment: { contentBytes?: string | null }): Buffer {
  return Buffer.from(attachment.contentBytes ?? '', 'base64');
}

/** Uploads `file` in chunks of the given sizes; returns the last reply. */
async function uploadInChunks(client: Client, uploadUrl: string, file: Buffer, sizes: number[]): Promise<Reply[]> {
  const replies: Reply[] = [];
  let start = 0;
  for (const size of sizes) {
    replies.push(await client.putChunk(uploadUrl, file.subarray(start, start + size), start, file.length));
    start += size;
  }
  return replies;
}

describe('Graph emulator mail', () => {
  const issuer = new TokenIssuer();
  const tenant = new EmulatedTenant();
  const app = tenant.registerApp();
  const alerts = tenant.addUser('alerts', { displayName: 'Alerts' });
  const ops = tenant.addUser('ops', { displayName: 'Operations' });
  const finance = tenant.addUser('finance');
  const audit = tenant.addUser('audit');
  const shared = tenant.addUser('shared', { displayName: 'Shared desk' });
  const everyone = [alerts, ops, finance, audit, shared];
  let emulator: GraphEmulator;
  let client: Client;

  beforeAll(async () => {
    emulator = await GraphEmulator.start({ tenant, issuer, ca: testCa() });
    client = new Client(emulator.url, appToken(issuer, tenant, app));
  });

  afterAll(async () => {
    await emulator.close();
  });

  beforeEach(() => {
    emulator.reset();
    emulator.outbound.length = 0;
    for (const user of everyone) emulator.mailbox(user.id).clear();
  });

  describe('sendMail', () => {
    it('delivers to an internal recipient with every field intact and keeps a Sent Items copy', async () => {
      const logo = randomBytes(2048);
      const report = randomBytes(200_000);
      const reply = await client.sendMail(alerts.mail, {
        subject: 'Disk almost full',
        body: { contentType: 'HTML', content: '<p>See <img src="cid:logo"></p>' },
        toRecipients: [{ emailAddress: { address: ops.mail, name: 'Ops team' } }],
        ccRecipients: to(finance.mail),
        replyTo: to('noc@example.net'),
        importance: 'High',
        internetMessageHeaders: [
          { name: 'x-gateway-id', value: 'gw-42' },
          { name: 'X-Correlation', value: 'abc' },
        ],
        attachments: [
          {
            '@odata.type': '#microsoft.graph.fileAttachment',
            name: 'logo.png',
            contentType: 'image/png',
            contentBytes: logo.toString('base64'),
            isInline: true,
            contentId: 'logo',
          },
          {
            '@odata.type': '#microsoft.graph.fileAttachment',
            name: 'report.bin',
            contentType: 'application/octet-stream',
            contentBytes: report.toString('base64'),
          },
        ],
      });
      expect(reply.status).toBe(202);
      expect(reply.text).toBe('');

      const [message] = await client.list(ops.mail, 'inbox');
      expect(message).toMatchObject({
        subject: 'Disk almost full',
        body: { contentType: 'html', content: '<p>See <img src="cid:logo"></p>' },
        from: { emailAddress: { address: alerts.mail, name: 'Alerts' } },
        sender: { emailAddress: { address: alerts.mail } },
        toRecipients: [{ emailAddress: { address: ops.mail, name: 'Ops team' } }],
        ccRecipients: [{ emailAddress: { address: finance.mail } }],
        replyTo: [{ emailAddress: { address: 'noc@example.net' } }],
        importance: 'high',
        isRead: false,
        isDraft: false,
        hasAttachments: true,
      });
      expect(message.internetMessageId).toMatch(/^<.+@contoso\.com>$/);
      expect(message.sentDateTime).toEqual(expect.any(String));
      // Graph returns internet headers only when selected.
      expect(message).not.toHaveProperty('internetMessageHeaders');
      const [selected] = await client.list(ops.mail, 'inbox', '?$select=internetMessageHeaders,subject');
      expect(header(selected.internetMessageHeaders, 'x-gateway-id')).toBe('gw-42');
      expect(header(selected.internetMessageHeaders, 'X-Correlation')).toBe('abc');
      expect(header(selected.internetMessageHeaders, 'Message-ID')).toBe(message.internetMessageId);

      const attachments = await client.attachments(ops.mail, message.id);
      const inline = attachments.find((a) => a.name === 'logo.png');
      const file = attachments.find((a) => a.name === 'report.bin');
      expect(inline).toMatchObject({
        '@odata.type': '#microsoft.graph.fileAttachment',
        isInline: true,
        contentId: 'logo',
        contentType: 'image/png',
        size: logo.length,
      });
      expect(bytesOf(inline ?? {}).equals(logo)).toBe(true);
      expect(file).toMatchObject({ isInline: false, size: report.length });
      expect(bytesOf(file ?? {}).equals(report)).toBe(true);

      const [financeCopy] = emulator.inbox(finance.mail);
      expect(financeCopy.internetMessageId).toBe(message.internetMessageId);
      expect(bytesOf(financeCopy.attachments.find((a) => a.name === 'report.bin') ?? {}).equals(report)).toBe(true);
      const [sent] = await client.list(alerts.mail, 'sentitems');
      expect(sent).toMatchObject({ subject: 'Disk almost full', isRead: true, isDraft: false });
      expect(emulator.outbound).toEqual([]);
    });

    it('hides Bcc recipients from every delivered copy but keeps them in Sent Items', async () => {
      const reply = await client.sendMail(alerts.mail, {
        subject: 'Quiet copy',
        toRecipients: to(ops.mail),
        bccRecipients: to(audit.mail, 'archive@example.net'),
      });
      expect(reply.status).toBe(202);
      const [opsCopy] = await client.list(ops.mail, 'inbox', '?$select=bccRecipients,toRecipients');
      expect(opsCopy.bccRecipients).toEqual([]);
      const [auditCopy] = await client.list(audit.mail, 'inbox', '?$select=bccRecipients,toRecipients,subject');
      expect(auditCopy.subject).toBe('Quiet copy');
      expect(auditCopy.bccRecipients ?? []).toEqual([]);
      expect(auditCopy.toRecipients?.map((r) => r.emailAddress?.address)).toEqual([ops.mail]);
      const [sent] = await client.list(alerts.mail, 'sentitems', '?$select=bccRecipients');
      expect(sent.bccRecipients?.map((r) => r.emailAddress?.address)).toEqual([audit.mail, 'archive@example.net']);
      expect(emulator.outbound.map((m) => m.to)).toEqual([['archive@example.net']]);
    });

    it('records recipients outside the tenant as outbound mail, also on the inspection API', async () => {
      const reply = await client.sendMail(alerts.mail, {
        subject: 'Invoice',
        toRecipients: to('Partner@Example.net'),
        ccRecipients: to(ops.mail, 'accounts@example.org'),
      });
      expect(reply.status).toBe(202);
      const [opsCopy] = emulator.inbox(ops.mail);
      expect(emulator.outbound).toEqual([
        {
          from: alerts.mail,
          to: ['Partner@Example.net', 'accounts@example.org'],
          subject: 'Invoice',
          internetMessageId: opsCopy.internetMessageId,
          sentAt: expect.any(Date) as unknown,
        },
      ]);
      const inspected = await client.call('GET', '/_emulator/outbound', { token: null });
      expect(inspected.status).toBe(200);
      expect(inspected.body.value).toEqual([
        expect.objectContaining({ subject: 'Invoice', to: ['Partner@Example.net', 'accounts@example.org'] }),
      ]);
      const mailbox = await client.call('GET', `/_emulator/mailboxes/${ops.mail}/inbox`, { token: null });
      expect((mailbox.body.messages as MessageJson[]).map((m) => m.subject)).toEqual(['Invoice']);
    });

    it('keeps a Sent Items copy only when saveToSentItems is not false', async () => {
      expect((await client.sendMail(alerts.mail, { subject: 'kept', toRecipients: to(ops.mail) })).status).toBe(202);
      expect(
        (
          await client.sendMail(
            alerts.mail,
            { subject: 'not kept', toRecipients: to(ops.mail) },
            { saveToSentItems: false },
          )
        ).status,
      ).toBe(202);
      // Graph's own sample sends the flag as a string.
      expect(
        (
          await client.sendMail(
            alerts.mail,
            { subject: 'not kept either', toRecipients: to(ops.mail) },
            { saveToSentItems: 'false' },
          )
        ).status,
      ).toBe(202);
      expect((await client.list(alerts.mail, 'sentitems')).map((m) => m.subject)).toEqual(['kept']);
      expect(emulator.inbox(ops.mail)).toHaveLength(3);
    });

    it('refuses a message without recipients or with more than 500, and accepts exactly 500', async () => {
      const none = await client.sendMail(alerts.mail, { subject: 'nobody', toRecipients: [] });
      expect(none.status).toBe(400);
      expect(errorOf(none)).toEqual({
        code: 'ErrorInvalidRecipients',
        message: "At least one recipient is not valid., A message can't be sent because it contains no recipients.",
      });
      const addresses = Array.from({ length: 501 }, (_, i) => `user${i}@example.net`);
      const tooMany = await client.sendMail(alerts.mail, {
        subject: 'everyone',
        toRecipients: to(...addresses.slice(0, 300)),
        ccRecipients: to(...addresses.slice(300, 450)),
        bccRecipients: to(...addresses.slice(450)),
      });
      expect(tooMany.status).toBe(400);
      expect(errorOf(tooMany).code).toBe('ErrorInvalidRecipients');
      expect(errorOf(tooMany).message).toContain('The limit is 500');
      expect(emulator.outbound).toEqual([]);
      expect(await client.list(alerts.mail, 'sentitems')).toEqual([]);

      const fine = await client.sendMail(alerts.mail, { subject: 'many', toRecipients: to(...addresses.slice(1)) });
      expect(fine.status).toBe(202);
      expect(emulator.outbound[0].to).toHaveLength(500);
    });

    it('refuses malformed recipient addresses', async () => {
      const reply = await client.sendMail(alerts.mail, { subject: 'x', toRecipients: to('ops; finance@contoso.com') });
      expect(reply.status).toBe(400);
      expect(errorOf(reply)).toEqual({
        code: 'ErrorInvalidRecipients',
        message:
          "At least one recipient is not valid., Recipient 'ops; finance@contoso.com' is not resolved. All recipients must be resolved before a message can be submitted.",
      });
    });

    it('refuses internet headers that do not start with x- and more than five of them', async () => {
      const standard = await client.sendMail(alerts.mail, {
        subject: 'reply',
        toRecipients: to(ops.mail),
        internetMessageHeaders: [
          { name: 'x-ok', value: '1' },
          { name: 'In-Reply-To', value: '<a@b>' },
        ],
      });
      expect(standard.status).toBe(400);
      expect(errorOf(standard)).toEqual({
        code: 'InvalidInternetMessageHeader',
        message: "The internet message header name 'In-Reply-To' should start with 'x-' or 'X-'.",
      });
      const draft = await client.call('POST', `/v1.0/users/${alerts.mail}/messages`, {
        json: { subject: 'draft', internetMessageHeaders: [{ name: 'References', value: '<a@b>' }] },
      });
      expect(draft.status).toBe(400);
      expect(errorOf(draft).code).toBe('InvalidInternetMessageHeader');
      const six = await client.sendMail(alerts.mail, {
        subject: 'headers',
        toRecipients: to(ops.mail),
        internetMessageHeaders: Array.from({ length: 6 }, (_, i) => ({ name: `x-h${i}`, value: String(i) })),
      });
      expect(six.status).toBe(400);
      expect(errorOf(six).code).toBe('InvalidInternetMessageHeaderCollection');
      expect(emulator.inbox(ops.mail)).toEqual([]);
    });

    it('refuses attachments that are not valid fileAttachments', async () => {
      const attach = (attachment: object) =>
        client.sendMail(alerts.mail, { subject: 'a', toRecipients: to(ops.mail), attachments: [attachment] });
      const file = { '@odata.type': '#microsoft.graph.fileAttachment', name: 'a.txt', contentType: 'text/plain' };
      const notBase64 = await attach({ ...file, contentBytes: 'this is not base64!' });
      expect(notBase64.status).toBe(400);
      expect(errorOf(notBase64).code).toBe('RequestBodyRead');
      const base64url = await attach({ ...file, contentBytes: Buffer.from([0xfb, 0xff, 0xfe]).toString('base64url') });
      expect(base64url.status).toBe(400);
      const missing = await attach(file);
      expect(missing.status).toBe(400);
      expect(errorOf(missing)).toEqual({
        code: 'ErrorRequiredPropertyMissing',
        message: 'Required property is missing.',
      });
      const untyped = await attach({ name: 'a.txt', contentBytes: 'YQ==' });
      expect(untyped.status).toBe(400);
      const wrongType = await attach({
        ...file,
        '@odata.type': '#microsoft.graph.fileattachmentx',
        contentBytes: 'YQ==',
      });
      expect(wrongType.status).toBe(400);
      expect(emulator.inbox(ops.mail)).toEqual([]);
      // Whitespace inside base64 is fine, as .NET decoding ignores it.
      const wrapped = await attach({ ...file, contentBytes: 'aGVs\r\nbG8=' });
      expect(wrapped.status).toBe(202);
      expect(bytesOf(emulator.inbox(ops.mail)[0].attachments[0]).toString()).toBe('hello');
    });

    it('refuses unknown message properties and a body over 4 MB', async () => {
      const typo = await client.sendMail(alerts.mail, { subject: 'x', toRecipient: to(ops.mail) });
      expect(typo.status).toBe(400);
      expect(errorOf(typo)).toMatchObject({ code: 'RequestBodyRead' });
      expect(errorOf(typo).message).toContain(
        "The property 'toRecipient' does not exist on type 'microsoft.graph.message'",
      );
      const misplaced = await client.sendMail(alerts.mail, {
        subject: 'x',
        toRecipients: to(ops.mail),
        saveToSentItems: false,
      });
      expect(misplaced.status).toBe(400);
      const big = randomBytes(3 * MB + 100_000);
      const tooBig = await client.sendMail(alerts.mail, {
        subject: 'big',
        toRecipients: to(ops.mail),
        attachments: [
          { '@odata.type': '#microsoft.graph.fileAttachment', name: 'big.bin', contentBytes: big.toString('base64') },
        ],
      });
      expect(tooBig.status).toBe(413);
      expect(emulator.inbox(ops.mail)).toEqual([]);
    });

    it('refuses a from address without Send As, and allows it once granted', async () => {
      const message = {
        subject: 'From the desk',
        from: { emailAddress: { address: shared.mail, name: 'Shared desk' } },
        toRecipients: to(ops.mail),
      };
      const denied = await client.sendMail(alerts.mail, message);
      expect(denied.status).toBe(403);
      expect(errorOf(denied)).toEqual({
        code: 'ErrorSendAsDenied',
        message:
          'The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.',
      });
      expect(emulator.inbox(ops.mail)).toEqual([]);
      // The mailbox's own address is always allowed, in any case.
      const own = await client.sendMail(alerts.mail, {
        ...message,
        from: { emailAddress: { address: alerts.mail.toUpperCase() } },
      });
      expect(own.status).toBe(202);

      tenant.grantSendAs(alerts, shared.mail.toUpperCase());
      try {
        const allowed = await client.sendMail(alerts.mail, message);
        expect(allowed.status).toBe(202);
        const copy = emulator
          .inbox(ops.mail)
          .find((m) => m.subject === 'From the desk' && m.from?.emailAddress?.address === shared.mail);
        expect(copy).toMatchObject({ sender: { emailAddress: { address: alerts.mail } } });
      } finally {
        tenant.sendAs.delete(alerts.id);
      }
    });

    it('needs Mail.Send', async () => {
      const readWrite = appToken(issuer, tenant, app, { roles: ['Mail.ReadWrite'] });
      const reply = await client.sendMail(alerts.mail, { subject: 'x', toRecipients: to(ops.mail) }, {}, readWrite);
      expect(reply.status).toBe(403);
      expect(errorOf(reply)).toEqual({
        code: 'ErrorAccessDenied',
        message: 'Access is denied. Check credentials and try again.',
      });
      const draft = await client.createDraft(alerts.mail, { subject: 'x', toRecipients: to(ops.mail) });
      const send = await client.call('POST', `/v1.0/users/${alerts.mail}/messages/${draft.id}/send`, {
        token: readWrite,
      });
      expect(send.status).toBe(403);
      expect(emulator.inbox(ops.mail)).toEqual([]);
    });
  });

  describe('drafts and upload sessions', () => {
    it('creates a draft, uploads 10 MB in 4/4/2 MB chunks, sends it, and delivers the bytes intact', async () => {
      const draft = await client.createDraft(alerts.mail, {
        subject: 'Nightly dump',
        body: { contentType: 'text', content: 'attached' },
        toRecipients: to(ops.mail),
      });
      expect(draft).toMatchObject({ isDraft: true, subject: 'Nightly dump', sentDateTime: null });
      expect(draft.id).toMatch(/^AAMk/);
      expect(draft.internetMessageId).toMatch(/^<.+>$/);
      expect(draft.createdDateTime).toEqual(expect.any(String));
      expect((await client.list(alerts.mail, 'drafts')).map((m) => m.id)).toEqual([draft.id]);

      const file = randomBytes(10 * MB);
      const session = await client.openSession(alerts.mail, draft.id, {
        name: 'dump.bin',
        size: file.length,
        contentType: 'application/octet-stream',
      });
      expect(session.status).toBe(201);
      const uploadUrl = String(session.body.uploadUrl);
      expect(uploadUrl.startsWith(`${emulator.url}/`)).toBe(true);
      expect(uploadUrl).toMatch(/AttachmentSessions\('[^']+'\)\?authtoken=[A-Za-z0-9_-]{20,}$/);
      expect(session.body.nextExpectedRanges).toEqual(['0-']);
      expect(Date.parse(String(session.body.expirationDateTime))).toBeGreaterThan(Date.now());

      const [first, second, last] = await uploadInChunks(client, uploadUrl, file, [4 * MB, 4 * MB, 2 * MB]);
      expect(first.status).toBe(200);
      expect(first.body.nextExpectedRanges).toEqual([String(4 * MB)]);
      expect(second.body.nextExpectedRanges).toEqual([String(8 * MB)]);
      expect(last.status).toBe(201);
      expect(last.text).toBe('');
      const location = last.headers.get('location') ?? '';
      const attachmentId = /Attachments\('([^']+)'\)/.exec(location)?.[1];
      expect(attachmentId).toBeDefined();

      const onDraft = await client.attachments(alerts.mail, draft.id);
      expect(onDraft.map((a) => [a.id, a.name, a.size])).toEqual([[attachmentId, 'dump.bin', file.length]]);
      // A finished session is gone.
      expect((await client.putChunk(uploadUrl, file.subarray(0, 10), 0, file.length)).status).toBe(404);

      const send = await client.call('POST', `/v1.0/users/${alerts.mail}/messages/${draft.id}/send`);
      expect(send.status).toBe(202);
      expect(send.text).toBe('');

      const [received] = await client.list(ops.mail, 'inbox');
      expect(received).toMatchObject({
        subject: 'Nightly dump',
        hasAttachments: true,
        internetMessageId: draft.internetMessageId,
      });
      const [attachment] = await client.attachments(ops.mail, received.id);
      expect(bytesOf(attachment).equals(file)).toBe(true);
      const raw = await client.bytes(
        `/v1.0/users/${ops.mail}/messages/${received.id}/attachments/${attachment.id}/$value`,
      );
      expect(raw.equals(file)).toBe(true);
      expect(bytesOf(emulator.inbox(ops.mail)[0].attachments[0]).equals(file)).toBe(true);

      // The draft moved to Sent Items under a new id.
      expect((await client.call('GET', `/v1.0/users/${alerts.mail}/messages/${draft.id}`)).status).toBe(404);
      const [sent] = await client.list(alerts.mail, 'sentitems');
      expect(sent.id).not.toBe(draft.id);
      expect(sent).toMatchObject({ subject: 'Nightly dump', isDraft: false });
      expect(await client.list(alerts.mail, 'drafts')).toEqual([]);
    });

    it('adds a small attachment with one POST and refuses one over 3 MB', async () => {
      const draft = await client.createDraft(alerts.mail, { subject: 'small', toRecipients: to(ops.mail) });
      const bytes = randomBytes(10_000);
      const added = await client.call('POST', `/v1.0/users/${alerts.mail}/messages/${draft.id}/attachments`, {
        json: {
          '@odata.type': '#microsoft.graph.fileAttachment',
          name: 'note.bin',
          contentBytes: bytes.toString('base64'),
        },
      });
      expect(added.status).toBe(201);
      expect(added.body).toMatchObject({
        '@odata.type': '#microsoft.graph.fileAttachment',
        name: 'note.bin',
        size: 10_000,
      });
      const one = await client.call(
        'GET',
        `/v1.0/users/${alerts.mail}/messages/${draft.id}/attachments/${String(added.body.id)}?$select=name,size`,
      );
      expect(one.status).toBe(200);
      expect(one.body).toMatchObject({ name: 'note.bin', size: 10_000 });
      expect(one.body).not.toHaveProperty('contentBytes');

      const tooBig = await client.call('POST', `/v1.0/users/${alerts.mail}/messages/${draft.id}/attachments`, {
        json: {
          '@odata.type': '#microsoft.graph.fileAttachment',
          name: 'big.bin',
          contentBytes: randomBytes(3 * MB + 1).toString('base64'),
        },
      });
      expect(tooBig.status).toBe(413);
      expect(await client.attachments(alerts.mail, draft.id)).toHaveLength(1);
    });

    it('refuses an upload session under 3 MB or over 150 MB', async () => {
      const draft = await client.createDraft(alerts.mail, { subject: 'sizes', toRecipients: to(ops.mail) });
      const small = await client.openSession(alerts.mail, draft.id, { name: 'a.bin', size: 3 * MB - 1 });
      expect(small.status).toBe(400);
      expect(errorOf(small).code).toBe('ErrorAttachmentSizeShouldNotBeLessThanMinimumSize');
      const huge = await client.openSession(alerts.mail, draft.id, { name: 'a.bin', size: 150 * MB + 1 });
      expect(huge.status).toBe(400);
      expect(errorOf(huge).code).toBe('ErrorAttachmentSizeLimitExceeded');
      expect((await client.openSession(alerts.mail, draft.id, { name: 'a.bin', size: 3 * MB })).status).toBe(201);
      const notFile = await client.openSession(alerts.mail, draft.id, {
        attachmentType: 'reference',
        name: 'a',
        size: 4 * MB,
      });
      expect(notFile.status).toBe(400);
    });

    it('refuses an Authorization header on the upload URL, leaving the session usable', async () => {
      const draft = await client.createDraft(alerts.mail, { subject: 'token', toRecipients: to(ops.mail) });
      const file = randomBytes(3 * MB + 10);
      const session = await client.openSession(alerts.mail, draft.id, { name: 'a.bin', size: file.length });
      const uploadUrl = String(session.body.uploadUrl);
      const withToken = await client.call('PUT', uploadUrl, {
        body: file,
        headers: { 'content-range': `bytes 0-${file.length - 1}/${file.length}` },
      });
      expect(withToken.status).toBe(401);
      expect(errorOf(withToken).code).toBe('InvalidAudienceForResource');
      expect(errorOf(withToken).message).toContain("Audience claim is 'https://graph.microsoft.com'");
      expect(await client.attachments(alerts.mail, draft.id)).toEqual([]);
      expect((await client.putChunk(uploadUrl, file, 0, file.length)).status).toBe(201);
      // A forged token in the URL finds no session.
      const other = await client.openSession(alerts.mail, draft.id, { name: 'b.bin', size: file.length });
      const forged = String(other.body.uploadUrl).replace(/authtoken=.*/, 'authtoken=forged');
      expect((await client.putChunk(forged, file.subarray(0, MB), 0, file.length)).status).toBe(404);
    });

    it('refuses a chunk over 4 MB and an out-of-order chunk, then resumes from nextExpectedRanges', async () => {
      const draft = await client.createDraft(alerts.mail, { subject: 'resume', toRecipients: to(ops.mail) });
      const file = randomBytes(9 * MB);
      const session = await client.openSession(alerts.mail, draft.id, { name: 'r.bin', size: file.length });
      const uploadUrl = String(session.body.uploadUrl);

      const oversized = await client.putChunk(uploadUrl, file.subarray(0, 4 * MB + 1), 0, file.length);
      expect(oversized.status).toBe(413);
      const ahead = await client.putChunk(uploadUrl, file.subarray(4 * MB, 8 * MB), 4 * MB, file.length);
      expect(ahead.status).toBe(416);
      const wrongTotal = await client.call('PUT', uploadUrl, {
        token: null,
        body: file.subarray(0, MB),
        headers: { 'content-range': `bytes 0-${MB - 1}/${file.length + 1}` },
      });
      expect(wrongTotal.status).toBe(400);
      const noRange = await client.call('PUT', uploadUrl, { token: null, body: file.subarray(0, MB) });
      expect(noRange.status).toBe(400);

      const first = await client.putChunk(uploadUrl, file.subarray(0, 4 * MB), 0, file.length);
      expect(first.status).toBe(200);
      const next = Number.parseInt(String((first.body.nextExpectedRanges as string[])[0]), 10);
      expect(next).toBe(4 * MB);
      const repeated = await client.putChunk(uploadUrl, file.subarray(0, 4 * MB), 0, file.length);
      expect(repeated.status).toBe(416);
      expect((await client.putChunk(uploadUrl, file.subarray(next, next + 4 * MB), next, file.length)).status).toBe(
        200,
      );
      expect((await client.putChunk(uploadUrl, file.subarray(8 * MB), 8 * MB, file.length)).status).toBe(201);
      const [attachment] = await client.attachments(alerts.mail, draft.id);
      expect(bytesOf(attachment).equals(file)).toBe(true);
    });

    it('keeps no Sent Items copy of a draft marked PidTagDeleteAfterSubmit, and keeps one otherwise', async () => {
      const discard = await client.createDraft(alerts.mail, {
        subject: 'no copy',
        toRecipients: to(ops.mail),
        singleValueExtendedProperties: [{ id: 'boolean 0x0e01', value: 'true' }],
      });
      expect((await client.call('POST', `/v1.0/users/${alerts.mail}/messages/${discard.id}/send`)).status).toBe(202);
      expect(await client.list(alerts.mail, 'sentitems')).toEqual([]);
      expect(await client.list(alerts.mail, 'drafts')).toEqual([]);
      expect(emulator.inbox(ops.mail).map((m) => m.subject)).toEqual(['no copy']);

      const keep = await client.createDraft(alerts.mail, { subject: 'copy', toRecipients: to(ops.mail) });
      expect((await client.call('POST', `/v1.0/users/${alerts.mail}/messages/${keep.id}/send`)).status).toBe(202);
      expect((await client.list(alerts.mail, 'sentitems')).map((m) => m.subject)).toEqual(['copy']);
    });

    it('refuses to send a draft without recipients or with a request body, leaving it in Drafts', async () => {
      const draft = await client.createDraft(alerts.mail, { subject: 'to nobody', toRecipients: [] });
      const send = await client.call('POST', `/v1.0/users/${alerts.mail}/messages/${draft.id}/send`);
      expect(send.status).toBe(400);
      expect(errorOf(send).code).toBe('ErrorInvalidRecipients');
      const addressed = await client.createDraft(alerts.mail, { subject: 'addressed', toRecipients: to(ops.mail) });
      const withBody = await client.call('POST', `/v1.0/users/${alerts.mail}/messages/${addressed.id}/send`, {
        json: { message: { subject: 'changed' } },
      });
      expect(withBody.status).toBe(400);
      expect((await client.list(alerts.mail, 'drafts')).map((m) => m.subject).sort()).toEqual([
        'addressed',
        'to nobody',
      ]);
      expect(emulator.inbox(ops.mail)).toEqual([]);
    });

    it('deletes a message into Deleted Items, and from there for good', async () => {
      const draft = await client.createDraft(alerts.mail, { subject: 'bin me' });
      expect((await client.call('DELETE', `/v1.0/users/${alerts.mail}/messages/${draft.id}`)).status).toBe(204);
      const [deleted] = await client.list(alerts.mail, 'deleteditems');
      expect(deleted.subject).toBe('bin me');
      expect((await client.call('DELETE', `/v1.0/users/${alerts.mail}/messages/${deleted.id}`)).status).toBe(204);
      expect(await client.list(alerts.mail, 'deleteditems')).toEqual([]);
      expect((await client.call('DELETE', `/v1.0/users/${alerts.mail}/messages/${deleted.id}`)).status).toBe(404);
    });
  });

  describe('limits', () => {
    async function limitedEmulator(limits: GraphLimits): Promise<{ graph: GraphEmulator; api: Client }> {
      const graph = await GraphEmulator.start({ tenant, issuer, ca: testCa(), limits });
      return { graph, api: new Client(graph.url, appToken(issuer, tenant, app)) };
    }

    it('answers 429 with Retry-After once the upload budget is spent, counting upload-session chunks', async () => {
      const { graph, api } = await limitedEmulator({ uploadBytesPerWindow: 5 * MB, uploadWindowMs: 3000 });
      try {
        const draft = await api.createDraft(alerts.mail, { subject: 'budget', toRecipients: to(ops.mail) });
        const file = randomBytes(3.5 * MB);
        const session = await api.openSession(alerts.mail, draft.id, { name: 'a.bin', size: file.length });
        expect((await api.putChunk(String(session.body.uploadUrl), file, 0, file.length)).status).toBe(201);

        const attachment = randomBytes(1.5 * MB).toString('base64');
        const message = {
          subject: 'over budget',
          toRecipients: to(ops.mail),
          attachments: [{ '@odata.type': '#microsoft.graph.fileAttachment', name: 'b.bin', contentBytes: attachment }],
        };
        const refused = await api.sendMail(alerts.mail, message);
        expect(refused.status).toBe(429);
        expect(errorOf(refused).code).toBe('ApplicationThrottled');
        const retryAfter = Number(refused.headers.get('retry-after'));
        expect(retryAfter).toBeGreaterThanOrEqual(1);
        expect(retryAfter).toBeLessThanOrEqual(3);
        // Another mailbox has its own budget.
        expect((await api.sendMail(ops.mail, { ...message, toRecipients: to(alerts.mail) })).status).toBe(202);

        const second = await api.openSession(alerts.mail, draft.id, { name: 'c.bin', size: file.length });
        expect(second.status).toBe(201);
        const chunk = await api.putChunk(String(second.body.uploadUrl), file, 0, file.length);
        expect(chunk.status).toBe(429);
        expect(Number(chunk.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);

        await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000 + 100));
        expect((await api.sendMail(alerts.mail, message)).status).toBe(202);
      } finally {
        await graph.close();
      }
    });

    it('answers 404 on an upload URL whose session expired', async () => {
      const { graph, api } = await limitedEmulator({ uploadSessionLifetimeMs: 200 });
      try {
        const draft = await api.createDraft(alerts.mail, { subject: 'late', toRecipients: to(ops.mail) });
        const file = randomBytes(3 * MB);
        const session = await api.openSession(alerts.mail, draft.id, { name: 'a.bin', size: file.length });
        await new Promise((resolve) => setTimeout(resolve, 300));
        const late = await api.putChunk(String(session.body.uploadUrl), file, 0, file.length);
        expect(late.status).toBe(404);
        expect(errorOf(late).code).toBe('ErrorItemNotFound');
      } finally {
        await graph.close();
      }
    });
  });
});
