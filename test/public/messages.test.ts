/**
 * The message API as a caller uses it, through the functions host in its own process and the real Graph SDK against
 * the Graph emulator: listing and paging, one message with its body, attachments and MIME streamed out, PATCH, move
 * and delete, and every refusal that must happen before Graph is called (mailbox, ids, cursor, permissions). Every
 * assertion on an effect reads what the emulator holds.
 */
import { createHash, randomBytes } from 'node:crypto';
import { GRAPH_APP_ROLES } from '../emulators/tenant';
import type { NewMessage } from '../emulators/graph/mailboxStore';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { expectProblem, gatewayClient, type GatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';

jest.setTimeout(120_000);

type Json = Record<string, unknown>;
type Listing = { value: Json[]; nextCursor?: string };

let env: TestCloud;
let host: FunctionsHostProcess;
let gateway: GatewayClient;
let support: string;
let billing: string;

const sha256 = (bytes: Buffer | Uint8Array) => createHash('sha256').update(bytes).digest('hex');

beforeAll(async () => {
  env = await startTestCloud({ privateStorage: true });
  support = `support@${env.cloud.tenant.domain}`;
  billing = `billing@${env.cloud.tenant.domain}`;
  host = await startFunctionsHost({ ...env.settings, ALLOWED_READ_MAILBOXES: support });
  gateway = gatewayClient(host);
});
afterAll(async () => {
  await host?.stop();
  await env?.close();
});
beforeEach(() => {
  env.cloud.graph.mailbox(support).clear();
  env.cloud.graph.setValueStreamPacing({ chunkBytes: 64 * 1024, delayMs: 0 });
});
afterEach(() => {
  env.cloud.app.graphRoles = new Set(GRAPH_APP_ROLES);
  env.cloud.graph.clearFaults();
});

const seed = (message: NewMessage, folder = 'inbox') => env.cloud.graph.mailbox(support).addMessage(folder, message);
/** Graph calls about mailboxes made after `from` (token requests go to Entra, not here). */
const graphCallsSince = (from: number) =>
  env.cloud.graph.requests.slice(from).filter((r) => r.path.includes('/users/'));

describe('listing', () => {
  /** Five messages received an hour apart from 09:00; the 10:00 one is read. */
  function seedDay(): void {
    for (const hour of ['09', '10', '11', '12', '13']) {
      seed({
        subject: `at ${hour}`,
        receivedDateTime: `2026-03-01T${hour}:00:00Z`,
        isRead: hour === '10',
        from: { emailAddress: { address: 'carla@example.net', name: 'Carla' } },
        toRecipients: [{ emailAddress: { address: support } }],
        internetMessageId: `<m${hour}@example.net>`,
      });
    }
  }
  const subjects = (listing: Listing) => listing.value.map((m) => m.subject);

  it('lists newest first with the mail.received metadata plus isRead, categories, flag and folder', async () => {
    seedDay();
    const answer = await gateway.messages<Listing>(support);
    expect(answer.status).toBe(200);
    expect(subjects(answer.body)).toEqual(['at 13', 'at 12', 'at 11', 'at 10', 'at 09']);
    expect(answer.body.nextCursor).toBeUndefined();
    const inboxId = env.cloud.graph.mailbox(support).findFolder('inbox')?.id;
    expect(answer.body.value[0]).toEqual({
      mailbox: support,
      messageId: expect.any(String) as unknown,
      internetMessageId: '<m13@example.net>',
      subject: 'at 13',
      from: { address: 'carla@example.net', name: 'Carla' },
      to: [{ address: support }],
      toCount: 1,
      receivedDateTime: '2026-03-01T13:00:00Z',
      hasAttachments: false,
      isRead: false,
      categories: [],
      flag: 'notFlagged',
      folder: inboxId,
    });
  });

  it('filters by unread and since', async () => {
    seedDay();
    const unread = await gateway.messages<Listing>(support, { unread: 'true' });
    expect(subjects(unread.body)).toEqual(['at 13', 'at 12', 'at 11', 'at 09']);
    const since = await gateway.messages<Listing>(support, { since: '2026-03-01T11:00:00Z', unread: 'true' });
    expect(subjects(since.body)).toEqual(['at 13', 'at 12', 'at 11']);
    const archive = await gateway.messages<Listing>(support, { folder: 'archive' });
    expect(archive.body.value).toEqual([]);
  });

  it('pages with an opaque cursor that rebuilds the same listing', async () => {
    seedDay();
    const first = await gateway.messages<Listing>(support, { top: '2', unread: 'true' });
    expect(subjects(first.body)).toEqual(['at 13', 'at 12']);
    expect(first.body.nextCursor).toEqual(expect.any(String));
    expect(first.body.nextCursor).not.toMatch(/https?:|127\.0\.0\.1/);
    const second = await gateway.messages<Listing>(support, { cursor: first.body.nextCursor! });
    expect(subjects(second.body)).toEqual(['at 11', 'at 09']);
    expect(second.body.nextCursor).toBeUndefined();
    // The cursor alone carries the listing: the Graph query was rebuilt with the same filter and page size.
    const [call] = graphCallsSince(0).filter((r) => r.query.$skip === '2');
    expect(call.query).toMatchObject({ $top: '2', $orderby: 'receivedDateTime desc' });
    expect(call.query.$filter).toMatch(/^receivedDateTime ge .* and isRead eq false$/);
  });

  it('refuses a tampered, foreign or URL cursor with 400 and no Graph call', async () => {
    seedDay();
    const first = await gateway.messages<Listing>(support, { top: '2' });
    const cursor = first.body.nextCursor!;
    const state = JSON.parse(Buffer.from(cursor.slice(3), 'base64url').toString('utf8')) as Json;
    const encode = (value: Json) => `c1.${Buffer.from(JSON.stringify(value)).toString('base64url')}`;
    const before = env.cloud.graph.requests.length;
    for (const bad of [
      `${cursor}x`,
      cursor.slice(0, -4),
      encode({ ...state, m: billing }),
      encode({ ...state, k: { skiptoken: 'https://attacker.example/steal' } }),
      encode({ ...state, k: { skip: 2 }, next: 'https://attacker.example/' }),
      encode({ ...state, f: '../../users/billing' }),
      `${env.cloud.graph.url}/v1.0/users/${billing}/messages?$skip=2`,
    ]) {
      const answer = await gateway.messages(support, { cursor: bad });
      expectProblem(answer, 400);
      expect(answer.body.type).toMatch(/\/invalid-cursor$/);
    }
    const contradicting = await gateway.messages(support, { cursor, folder: 'archive' });
    expectProblem(contradicting, 400);
    expect(graphCallsSince(before)).toEqual([]);
  });

  it('refuses bad parameters with 400 naming them and no Graph call', async () => {
    const before = env.cloud.graph.requests.length;
    const answer = await gateway.messages(support, { top: '500', since: 'yesterday', unread: 'maybe' });
    expectProblem(answer, 400);
    expect(answer.body.type).toMatch(/\/invalid-message-request$/);
    expect((answer.body.errors as { field: string }[]).map((e) => e.field)).toEqual(['since', 'unread', 'top']);
    expect(graphCallsSince(before)).toEqual([]);
  });
});

describe('one message', () => {
  const html = '<html><body><p>Hello <b>support</b> &amp; team</p></body></html>';

  function seedThreaded() {
    return seed({
      subject: 'Printer on fire',
      body: { contentType: 'html', content: html },
      from: { emailAddress: { address: 'carla@example.net' } },
      toRecipients: [{ emailAddress: { address: support } }],
      internetMessageId: '<fire@example.net>',
      conversationId: 'AAQkAGconversation-printer=',
      internetMessageHeaders: [
        { name: 'In-Reply-To', value: '<earlier@example.net>' },
        { name: 'References', value: '<first@example.net> <earlier@example.net>' },
        { name: 'X-Ticket', value: '42' },
      ],
    });
  }

  it('answers the body as text by default and as html on request, with the thread', async () => {
    const stored = seedThreaded();
    const text = await gateway.message(support, stored.id);
    expect(text.status).toBe(200);
    expect(text.body).toMatchObject({
      messageId: stored.id,
      subject: 'Printer on fire',
      conversationId: 'AAQkAGconversation-printer=',
      internetMessageId: '<fire@example.net>',
      inReplyTo: '<earlier@example.net>',
      references: ['<first@example.net>', '<earlier@example.net>'],
      body: { contentType: 'text', content: 'Hello support & team' },
      attachments: [],
    });
    expect(text.body).not.toHaveProperty('headers');
    const asHtml = await gateway.message(support, stored.id, { body: 'html' });
    expect(asHtml.body.body).toEqual({ contentType: 'html', content: html });
    const none = await gateway.message(support, stored.id, { body: 'none', headers: 'true' });
    expect(none.body).not.toHaveProperty('body');
    expect(none.body.headers).toEqual(expect.arrayContaining([{ name: 'X-Ticket', value: '42' }]));
  });

  it('answers only the new part of a reply with unique=true', async () => {
    const reply = seed({
      subject: 'RE: Question',
      body: { contentType: 'html', content: '<p>Because.</p><hr><p>Why?</p>' },
      uniqueBody: { contentType: 'html', content: '<p>Because.</p>' },
    });
    const answer = await gateway.message(support, reply.id, { unique: 'true' });
    expect(answer.status).toBe(200);
    expect(answer.body.uniqueBody).toEqual({ contentType: 'text', content: 'Because.' });
    expect(answer.body).not.toHaveProperty('body');
    const refused = await gateway.message(support, reply.id, { unique: 'true', body: 'none' });
    expectProblem(refused, 400);
  });
});

describe('attachments and MIME', () => {
  const fileBytes = randomBytes(300_000);
  function seedWithAttachments() {
    return seed({
      subject: 'with attachments',
      body: { contentType: 'text', content: 'see attached' },
      internetMessageId: '<att@example.net>',
      attachments: [
        {
          '@odata.type': '#microsoft.graph.fileAttachment',
          name: 'Rechnung März.pdf',
          contentType: 'application/pdf',
          contentBytes: fileBytes.toString('base64'),
        },
        {
          '@odata.type': '#microsoft.graph.itemAttachment',
          name: 'Earlier mail',
          item: {
            subject: 'The attached one',
            body: { contentType: 'text', content: 'inner body' },
            from: { emailAddress: { address: 'old@example.net' } },
            internetMessageId: '<inner@example.net>',
          },
        },
        {
          '@odata.type': '#microsoft.graph.referenceAttachment',
          name: 'Big deck.pptx',
          sourceUrl: 'https://contoso.sharepoint.com/deck.pptx',
        },
      ],
    });
  }

  it('lists the attachments with their kind, and streams a file with its type, length and UTF-8 name', async () => {
    const stored = seedWithAttachments();
    const message = await gateway.message<{ attachments: Json[] }>(support, stored.id);
    expect(message.body.attachments.map((a) => [a.name, a.kind, a.contentType])).toEqual([
      ['Rechnung März.pdf', 'file', 'application/pdf'],
      ['Earlier mail', 'item', null],
      ['Big deck.pptx', 'reference', null],
    ]);
    const [file] = message.body.attachments;
    expect(file).toMatchObject({ size: fileBytes.length, isInline: false });
    const download = await gateway.attachment(support, stored.id, file.id as string);
    expect(download.status).toBe(200);
    expect(download.headers.get('content-type')).toBe('application/pdf');
    expect(download.headers.get('cache-control')).toBe('private, no-store');
    expect(download.headers.get('content-length')).toBe(String(fileBytes.length));
    expect(download.headers.get('content-disposition')).toBe(
      `attachment; filename="Rechnung M_rz.pdf"; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf`,
    );
    expect(sha256(Buffer.from(await download.arrayBuffer()))).toBe(sha256(fileBytes));
  });

  it('answers an attached mail as message/rfc822 and a reference attachment as 422 naming it', async () => {
    const stored = seedWithAttachments();
    const [, item, reference] = env.cloud.graph.mailbox(support).getMessage(stored.id)!.attachments;
    const mail = await gateway.attachment(support, stored.id, item.id);
    expect(mail.status).toBe(200);
    expect(mail.headers.get('content-type')).toBe('message/rfc822');
    expect(mail.headers.get('content-disposition')).toBe('attachment; filename="Earlier mail.eml"');
    const mime = await mail.text();
    expect(mime).toContain('Subject: The attached one\r\n');
    expect(mime).toContain('inner body');
    const link = await gateway.attachment(support, stored.id, reference.id);
    expect(link.status).toBe(422);
    const problem = (await link.json()) as Json;
    expect(problem).toMatchObject({
      type: expect.stringMatching(/\/attachment-is-link$/) as unknown,
      attachment: { name: 'Big deck.pptx', kind: 'reference' },
    });
    expect(problem.detail).toContain("'Big deck.pptx' is a reference attachment");
  });

  it('streams the MIME of the message as message/rfc822', async () => {
    const stored = seedWithAttachments();
    const answer = await gateway.mime(support, stored.id);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toBe('message/rfc822');
    const mime = await answer.text();
    expect(mime).toContain('Subject: with attachments\r\n');
    expect(mime).toContain('Message-ID: <att@example.net>\r\n');
    expect(mime).toContain("filename*=utf-8''Rechnung%20M%C3%A4rz.pdf");
  });

  it('streams a 30 MB attachment: the bytes arrive whole, and the answer starts before Graph finished sending', async () => {
    const big = randomBytes(30 * 1024 * 1024);
    const stored = seed({
      subject: 'big',
      attachments: [{ name: 'big.bin', contentType: 'application/octet-stream', contentBytes: big.toString('base64') }],
    });
    const [attachment] = env.cloud.graph.mailbox(support).getMessage(stored.id)!.attachments;
    // 60 chunks with a pause before each: Graph's $value takes a while, so a gateway that buffered it would answer
    // only after the emulator logged the stream finished.
    env.cloud.graph.setValueStreamPacing({ chunkBytes: 512 * 1024, delayMs: 50 });
    const logged = env.cloud.graph.valueStreamLog.length;
    const answer = await gateway.attachment(support, stored.id, attachment.id);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-length')).toBe(String(big.length));
    const reader = (answer.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(first.value?.length ?? 0).toBeGreaterThan(0);
    const [record] = env.cloud.graph.valueStreamLog.slice(logged);
    expect(record.bytes).toBe(big.length);
    expect(record.finishedAt).toBeUndefined();
    const hash = createHash('sha256').update(first.value ?? new Uint8Array());
    let received = first.value?.length ?? 0;
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      hash.update(next.value);
      received += next.value.length;
    }
    expect(received).toBe(big.length);
    expect(hash.digest('hex')).toBe(sha256(big));
    expect(record.finishedAt).toBeInstanceOf(Date);
  });
});

describe('acting on a message', () => {
  it('PATCHes isRead, categories and flag, and the emulator holds them', async () => {
    const stored = seed({ subject: 'todo' });
    const answer = await gateway.updateMessage(support, stored.id, {
      isRead: true,
      categories: ['Handled'],
      flag: 'flagged',
    });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ isRead: true, categories: ['Handled'], flag: 'flagged' });
    expect(env.cloud.graph.mailbox(support).getMessage(stored.id)).toMatchObject({
      isRead: true,
      categories: ['Handled'],
      flag: { flagStatus: 'flagged' },
    });
  });

  it('refuses unknown fields, bad values and an empty PATCH with 400 and no Graph call', async () => {
    const stored = seed({ subject: 'todo' });
    const before = env.cloud.graph.requests.length;
    for (const body of [{ isUnread: true }, { flag: 'done' }, { isRead: 'yes' }, {}, '[1']) {
      const answer = await gateway.updateMessage(support, stored.id, body);
      expectProblem(answer, 400);
    }
    const unknown = await gateway.updateMessage(support, stored.id, { isRead: true, importance: 'high' });
    expect(unknown.body.type).toMatch(/\/invalid-message-request$/);
    expect(unknown.body.detail).toContain('importance');
    expect(graphCallsSince(before)).toEqual([]);
    expect(env.cloud.graph.mailbox(support).getMessage(stored.id)?.isRead).toBe(false);
  });

  it('moves to archive answering the new id; the old id is then 404 message-not-found', async () => {
    const stored = seed({ subject: 'file me' });
    const moved = await gateway.moveMessage(support, stored.id, { folder: 'archive' });
    expect(moved.status).toBe(200);
    const newId = moved.body.messageId as string;
    expect(newId).not.toBe(stored.id);
    expect(moved.body.previousId).toBe(stored.id);
    const archive = env.cloud.graph.mailbox(support).listMessages('archive');
    expect(archive.map((m) => [m.id, m.subject])).toEqual([[newId, 'file me']]);
    expect(env.cloud.graph.mailbox(support).listMessages('inbox')).toEqual([]);
    const old = await gateway.message(support, stored.id);
    expectProblem(old, 404);
    expect(old.body.type).toMatch(/\/message-not-found$/);
    expect((await gateway.message(support, newId)).status).toBe(200);
  });

  it('deletes with 204; the message leaves its folder', async () => {
    const stored = seed({ subject: 'bye' });
    const answer = await gateway.deleteMessage(support, stored.id);
    expect(answer.status).toBe(204);
    expect(env.cloud.graph.mailbox(support).listMessages('inbox')).toEqual([]);
    expect((await gateway.deleteMessage(support, stored.id)).body.type).toMatch(/\/message-not-found$/);
  });
});

describe("Graph's refusals", () => {
  it("throttling beyond the wait budget is 503 graph-throttled with Graph's Retry-After, for JSON and streams", async () => {
    const stored = seed({
      subject: 'busy',
      attachments: [{ name: 'a.txt', contentType: 'text/plain', contentBytes: Buffer.from('a').toString('base64') }],
    });
    const [attachment] = env.cloud.graph.mailbox(support).getMessage(stored.id)!.attachments;
    // 120 s is beyond GRAPH_MAX_WAIT_SECONDS (30): the gateway answers at once instead of waiting.
    env.cloud.graph.injectFaults({ status: 429, retryAfter: 120, times: 1, pathPattern: /\/\$value$/ });
    const download = await gateway.attachment(support, stored.id, attachment.id);
    expect(download.status).toBe(503);
    expect(download.headers.get('retry-after')).toBe('120');
    expect(((await download.json()) as Json).type).toMatch(/\/graph-throttled$/);
    env.cloud.graph.injectFaults({ status: 429, retryAfter: 120, times: 1, method: 'PATCH' });
    const patch = await gateway.updateMessage(support, stored.id, { isRead: true });
    expectProblem(patch, 503);
    expect(patch.headers.get('retry-after')).toBe('120');
    expect(patch.body.type).toMatch(/\/graph-throttled$/);
  });

  it('a mailbox outside the Exchange scope is 403 mailbox-out-of-scope', async () => {
    env.cloud.graph.injectFaults({ status: 403, code: 'ErrorAccessDenied', times: 1, mailbox: support });
    const answer = await gateway.messages(support);
    expectProblem(answer, 403);
    expect(answer.body).toMatchObject({
      type: expect.stringMatching(/\/mailbox-out-of-scope$/) as unknown,
      graph: { code: 'ErrorAccessDenied' },
    });
  });
});

describe('refused before Graph is called', () => {
  it('a mailbox outside ALLOWED_READ_MAILBOXES is 403 mailbox-not-readable on every route', async () => {
    const stored = env.cloud.graph.mailbox(billing).addMessage('inbox', { subject: 'private' });
    const before = env.cloud.graph.requests.length;
    const answers = [
      await gateway.messages(billing),
      await gateway.message(billing, stored.id),
      await gateway.updateMessage(billing, stored.id, { isRead: true }),
      await gateway.moveMessage(billing, stored.id, { folder: 'archive' }),
      await gateway.deleteMessage(billing, stored.id),
    ];
    for (const answer of answers) {
      expectProblem(answer, 403);
      expect(answer.body.type).toMatch(/\/mailbox-not-readable$/);
    }
    const download = await gateway.mime(billing, stored.id);
    expect(download.status).toBe(403);
    expect(graphCallsSince(before)).toEqual([]);
    expect(env.cloud.graph.mailbox(billing).getMessage(stored.id)?.isRead).toBe(false);
  });

  it('malformed message and attachment ids are 400 invalid-message-id', async () => {
    const stored = seed({ subject: 'x' });
    const before = env.cloud.graph.requests.length;
    for (const id of ['not!an*id', 'A'.repeat(600), encodeURIComponent('AAMk/../../users/x')]) {
      const answer = await gateway.message(support, id);
      expectProblem(answer, 400);
      expect(answer.body.type).toMatch(/\/invalid-message-id$/);
    }
    const attachment = await gateway.attachment(support, stored.id, 'bad%20id');
    expect(attachment.status).toBe(400);
    expect(graphCallsSince(before)).toEqual([]);
  });

  it('a token without Mail.Read gets permission-missing naming it; without Mail.ReadWrite for actions', async () => {
    const stored = seed({ subject: 'x' });
    env.cloud.app.graphRoles = new Set(['Mail.ReadBasic.All', 'Mail.Send']);
    // A new host: the gateway's token (and the roles it carries) is cached for its lifetime.
    const basic = await startFunctionsHost({ ...env.settings, ALLOWED_READ_MAILBOXES: support });
    try {
      const client = gatewayClient(basic);
      const before = env.cloud.graph.requests.length;
      const read = await client.message(support, stored.id);
      expectProblem(read, 403);
      expect(read.body).toMatchObject({
        type: expect.stringMatching(/\/permission-missing$/) as unknown,
        missingPermissions: ['Mail.Read'],
      });
      const mime = await client.mime(support, stored.id);
      expect(mime.status).toBe(403);
      const patch = await client.updateMessage(support, stored.id, { isRead: true });
      expect(patch.body).toMatchObject({ missingPermissions: ['Mail.ReadWrite'] });
      expect(graphCallsSince(before)).toEqual([]);
      // Listing needs only Mail.ReadBasic.All.
      const listing = await client.messages<Listing>(support);
      expect(listing.body.value.map((m) => m.subject)).toEqual(['x']);
    } finally {
      await basic.stop();
    }
  });
});
