/**
 * The Graph emulator's message API over real HTTPS with the real Graph SDK: bodies and Prefer, listings with
 * $filter/$orderby/$top, attachments and their streamed $value, MIME, PATCH, move, delete, reply and forward drafts in
 * the thread, well-known folders and the permission rules. The gateway's message API is built against these rules, so
 * each test proves one of them (and would fail on an emulator that let the product get away with less).
 */
import { createHash, randomBytes } from 'node:crypto';
import { Client, GraphError, ResponseType } from '@microsoft/microsoft-graph-client';
import type { InternetMessageHeader, Message } from '@microsoft/microsoft-graph-types';
import { GraphEmulator, type NewMessage } from '../emulators/graph/graphEmulator';
import { EmulatedTenant } from '../emulators/tenant';
import { TokenIssuer } from '../emulators/tokenIssuer';
import { appToken } from '../support/appToken';
import { testCa } from '../support/testEnv';

type MessageJson = Message & { id: string; '@odata.etag'?: string };
type AttachmentJson = { id: string; '@odata.type': string; name: string; contentType: string | null; size: number };

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

function header(headers: InternetMessageHeader[] | null | undefined, name: string): string | undefined {
  return (headers ?? []).find((h) => h.name?.toLowerCase() === name.toLowerCase())?.value ?? undefined;
}

/** Status, code and message of the Graph error a call fails with. */
async function failure(call: Promise<unknown>): Promise<{ status: number; code: string | null; message: string }> {
  try {
    await call;
  } catch (err) {
    if (err instanceof GraphError) return { status: err.statusCode, code: err.code, message: err.message };
    throw err;
  }
  throw new Error('the call succeeded');
}

describe('Graph emulator messages (real Graph SDK)', () => {
  const issuer = new TokenIssuer();
  const tenant = new EmulatedTenant();
  const app = tenant.registerApp();
  const support = tenant.addUser('support', { displayName: 'Support desk' });
  const customer = tenant.addUser('customer', { displayName: 'Carla Customer' });
  const colleague = tenant.addUser('colleague', { displayName: 'Colin Colleague' });
  let emulator: GraphEmulator;
  let graph: Client;

  /** A Graph SDK client for the emulator with a token carrying `roles` (default: the app's consented ones). */
  function sdk(roles?: string[]): Client {
    const token = appToken(issuer, tenant, app, roles ? { roles } : {});
    return Client.init({
      authProvider: (done) => done(null, token),
      baseUrl: emulator.url,
      defaultVersion: 'v1.0',
      customHosts: new Set([new URL(emulator.url).hostname]),
    });
  }

  /** Raw answer of a GET (headers, bytes). */
  async function raw(path: string, headers: Record<string, string> = {}, client = graph): Promise<Response> {
    let request = client.api(path).responseType(ResponseType.RAW);
    for (const [name, value] of Object.entries(headers)) request = request.header(name, value);
    return (await request.get()) as Response;
  }

  function seed(folder: string, message: NewMessage) {
    return emulator.mailbox(support.id).addMessage(folder, message);
  }

  const base = `/users/${support.mail}`;

  beforeAll(async () => {
    emulator = await GraphEmulator.start({ tenant, issuer, ca: testCa() });
    graph = sdk();
  });

  afterAll(async () => {
    await emulator.close();
  });

  beforeEach(() => {
    emulator.reset();
    for (const user of [support, customer, colleague]) emulator.mailbox(user.id).clear();
  });

  describe('bodies', () => {
    const html = '<html><body><p>Hello <b>Carla</b> &amp; team</p><p>Line two</p></body></html>';

    it('serves the body as HTML by default, converting a text body, with no Preference-Applied', async () => {
      const stored = seed('inbox', { subject: 'plain', body: { contentType: 'text', content: 'a < b\nsecond line' } });
      const response = await raw(`${base}/messages/${stored.id}`);
      expect(response.headers.get('preference-applied')).toBeNull();
      const message = (await response.json()) as MessageJson;
      expect(message.body?.contentType).toBe('html');
      expect(message.body?.content).toContain('a &lt; b<br>');
    });

    it('converts body and uniqueBody to text on Prefer: outlook.body-content-type="text" and says so', async () => {
      const stored = seed('inbox', { subject: 'rich', body: { contentType: 'html', content: html } });
      const response = await raw(`${base}/messages/${stored.id}?$select=subject,body,uniqueBody`, {
        Prefer: 'outlook.body-content-type="text"',
      });
      expect(response.headers.get('preference-applied')).toBe('outlook.body-content-type="text"');
      const message = (await response.json()) as MessageJson;
      expect(message.body).toEqual({ contentType: 'text', content: 'Hello Carla & team\r\nLine two' });
      expect(message.uniqueBody).toEqual(message.body);
      const asHtml = await raw(`${base}/messages/${stored.id}`, { Prefer: 'outlook.body-content-type="html"' });
      expect(asHtml.headers.get('preference-applied')).toBe('outlook.body-content-type="html"');
      expect(((await asHtml.json()) as MessageJson).body).toEqual({ contentType: 'html', content: html });
    });

    it('ignores an unknown body-content-type and applies the preference to listings too', async () => {
      seed('inbox', { subject: 'x', body: { contentType: 'html', content: '<p>hi</p>' } });
      const unknown = await raw(`${base}/messages`, { Prefer: 'outlook.body-content-type="rtf"' });
      expect(unknown.headers.get('preference-applied')).toBeNull();
      const listed = await raw(`${base}/mailFolders/inbox/messages`, {
        Prefer: 'odata.maxpagesize=5, outlook.body-content-type=text',
      });
      expect(listed.headers.get('preference-applied')).toBe('outlook.body-content-type="text"');
      const page = (await listed.json()) as { value: MessageJson[] };
      expect(page.value[0].body).toEqual({ contentType: 'text', content: 'hi' });
    });

    it('returns uniqueBody and internetMessageHeaders only when $select names them', async () => {
      const stored = seed('inbox', {
        subject: 's',
        body: { contentType: 'text', content: 'x' },
        internetMessageHeaders: [{ name: 'x-ticket', value: '42' }],
      });
      const plain = (await graph.api(`${base}/messages/${stored.id}`).get()) as MessageJson;
      expect(plain).not.toHaveProperty('uniqueBody');
      expect(plain).not.toHaveProperty('internetMessageHeaders');
      const selected = (await graph
        .api(`${base}/messages/${stored.id}`)
        .select(['uniqueBody', 'internetMessageHeaders'])
        .get()) as MessageJson;
      expect(selected.uniqueBody?.content).toContain('x');
      expect(header(selected.internetMessageHeaders, 'x-ticket')).toBe('42');
    });

    it('gives bodyPreview as the first 255 characters of the text', async () => {
      const long = `<p>${'word '.repeat(100)}</p>`;
      const stored = seed('inbox', { subject: 'long', body: { contentType: 'html', content: long } });
      const message = (await graph.api(`${base}/messages/${stored.id}`).get()) as MessageJson;
      expect(message.bodyPreview).toHaveLength(255);
      expect(message.bodyPreview).not.toContain('<');
    });
  });

  describe('listings', () => {
    /** Seeds messages received at 10:00, 11:00, 12:00 and 13:00; the 11:00 one is read. */
    function seedDay(): MessageJson[] {
      return ['10', '11', '12', '13'].map((hour) =>
        seed('inbox', {
          subject: `at ${hour}`,
          receivedDateTime: `2026-03-01T${hour}:00:00Z`,
          isRead: hour === '11',
          internetMessageId: `<m${hour}@example.net>`,
        }),
      );
    }
    const subjects = (page: unknown) => (page as { value: MessageJson[] }).value.map((m) => m.subject);

    it('filters on receivedDateTime with ge, gt, le and lt', async () => {
      seedDay();
      const list = (filter: string) => graph.api(`${base}/mailFolders/inbox/messages`).filter(filter).get();
      expect(subjects(await list('receivedDateTime ge 2026-03-01T11:00:00Z'))).toEqual(['at 13', 'at 12', 'at 11']);
      expect(subjects(await list('receivedDateTime gt 2026-03-01T11:00:00Z'))).toEqual(['at 13', 'at 12']);
      expect(subjects(await list('receivedDateTime le 2026-03-01T11:00:00Z'))).toEqual(['at 11', 'at 10']);
      expect(subjects(await list('receivedDateTime lt 2026-03-01T11:00:00Z'))).toEqual(['at 10']);
    });

    it('filters on isRead and internetMessageId, joined by and', async () => {
      seedDay();
      const list = (filter: string) => graph.api(`${base}/messages`).filter(filter).get();
      expect(subjects(await list('isRead eq false'))).toEqual(['at 13', 'at 12', 'at 10']);
      expect(subjects(await list('isRead eq true'))).toEqual(['at 11']);
      expect(subjects(await list("internetMessageId eq '<m12@example.net>'"))).toEqual(['at 12']);
      expect(subjects(await list('receivedDateTime ge 2026-03-01T10:30:00Z and isRead eq false'))).toEqual([
        'at 13',
        'at 12',
      ]);
    });

    it('orders by receivedDateTime desc and asc when the filter leads with it', async () => {
      seedDay();
      const filter = 'receivedDateTime ge 1900-01-01T00:00:00Z and isRead eq false';
      const desc: unknown = await graph
        .api(`${base}/mailFolders/inbox/messages`)
        .filter(filter)
        .orderby('receivedDateTime desc')
        .get();
      expect(subjects(desc)).toEqual(['at 13', 'at 12', 'at 10']);
      const asc: unknown = await graph
        .api(`${base}/mailFolders/inbox/messages`)
        .filter(filter)
        .orderby('receivedDateTime')
        .get();
      expect(subjects(asc)).toEqual(['at 10', 'at 12', 'at 13']);
      const alone: unknown = await graph
        .api(`${base}/mailFolders/inbox/messages`)
        .orderby('receivedDateTime asc')
        .get();
      expect(subjects(alone)).toEqual(['at 10', 'at 11', 'at 12', 'at 13']);
    });

    it('answers 400 InefficientFilter when $orderby does not lead $filter', async () => {
      seedDay();
      const error = await failure(
        graph
          .api(`${base}/mailFolders/inbox/messages`)
          .filter('isRead eq false and receivedDateTime ge 2026-03-01T00:00:00Z')
          .orderby('receivedDateTime desc')
          .get(),
      );
      expect(error).toEqual({
        status: 400,
        code: 'InefficientFilter',
        message: 'The restriction or sort order is too complex for this operation.',
      });
      const notInFilter = await failure(
        graph.api(`${base}/messages`).filter('isRead eq false').orderby('receivedDateTime desc').get(),
      );
      expect(notInFilter.code).toBe('InefficientFilter');
    });

    it('refuses a malformed filter value with 400 and an unimplemented filter with 501', async () => {
      const quotedDate = await failure(graph.api(`${base}/messages`).filter("receivedDateTime ge '2026-01-01'").get());
      expect(quotedDate).toMatchObject({ status: 400, code: 'BadRequest' });
      const other = await failure(graph.api(`${base}/messages`).filter("subject eq 'x'").get());
      expect(other).toMatchObject({ status: 501, code: 'NotImplemented' });
    });

    it('pages with $top through @odata.nextLink, keeping the filter and order', async () => {
      seedDay();
      const first = (await graph
        .api(`${base}/mailFolders/inbox/messages`)
        .filter('receivedDateTime ge 2026-03-01T00:00:00Z')
        .orderby('receivedDateTime asc')
        .top(3)
        .select(['subject'])
        .get()) as { value: MessageJson[]; '@odata.nextLink'?: string };
      expect(subjects(first)).toEqual(['at 10', 'at 11', 'at 12']);
      expect(first['@odata.nextLink']).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/v1\.0\//);
      const second = (await graph.api(first['@odata.nextLink']!).get()) as {
        value: MessageJson[];
        '@odata.nextLink'?: string;
      };
      expect(subjects(second)).toEqual(['at 13']);
      expect(second['@odata.nextLink']).toBeUndefined();
    });

    it('lists every well-known folder by name and by id', async () => {
      for (const name of ['inbox', 'sentitems', 'drafts', 'deleteditems', 'archive', 'junkemail', 'outbox']) {
        const stored = seed(name, { subject: `in ${name}` });
        const byName: unknown = await graph.api(`${base}/mailFolders/${name}/messages`).get();
        expect(subjects(byName)).toEqual([`in ${name}`]);
        const byId: unknown = await graph.api(`${base}/mailFolders/${stored.parentFolderId}/messages`).get();
        expect(subjects(byId)).toEqual([`in ${name}`]);
      }
      const unknown = await failure(graph.api(`${base}/mailFolders/notafolder/messages`).get());
      expect(unknown).toMatchObject({ status: 400, code: 'ErrorInvalidIdMalformed' });
    });
  });

  describe('attachments', () => {
    const fileBytes = randomBytes(300_000);
    function seedWithAttachments(): MessageJson {
      return seed('inbox', {
        subject: 'with attachments',
        body: { contentType: 'html', content: '<p>see attached</p>' },
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
              from: { emailAddress: { address: 'old@example.net', name: 'Old Sender' } },
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

    it('lists file, item and reference attachments with their types, item and reference without bytes', async () => {
      const message = seedWithAttachments();
      const list = (await graph.api(`${base}/messages/${message.id}/attachments`).get()) as { value: AttachmentJson[] };
      expect(list.value.map((a) => [a['@odata.type'], a.name])).toEqual([
        ['#microsoft.graph.fileAttachment', 'Rechnung März.pdf'],
        ['#microsoft.graph.itemAttachment', 'Earlier mail'],
        ['#microsoft.graph.referenceAttachment', 'Big deck.pptx'],
      ]);
      const [file, item, reference] = list.value;
      expect(file).toMatchObject({ contentType: 'application/pdf', size: fileBytes.length });
      expect(item).toMatchObject({ contentType: null });
      const itemMime = await (await raw(`${base}/messages/${message.id}/attachments/${item.id}/$value`)).arrayBuffer();
      expect(item.size).toBe(itemMime.byteLength);
      expect(item).not.toHaveProperty('item');
      expect(item).not.toHaveProperty('contentBytes');
      expect(reference).not.toHaveProperty('sourceUrl');
      const one = (await graph.api(`${base}/messages/${message.id}/attachments/${file.id}`).get()) as {
        contentBytes: string;
      };
      expect(sha256(Buffer.from(one.contentBytes, 'base64'))).toBe(sha256(fileBytes));
    });

    it("serves $value: a file's bytes with its content type, an attached message as MIME, a reference as 405", async () => {
      const message = seedWithAttachments();
      const list = (await graph.api(`${base}/messages/${message.id}/attachments`).get()) as { value: AttachmentJson[] };
      const [file, item, reference] = list.value;
      const bytes = await raw(`${base}/messages/${message.id}/attachments/${file.id}/$value`);
      expect(bytes.headers.get('content-type')).toBe('application/pdf');
      expect(bytes.headers.get('content-length')).toBe(String(fileBytes.length));
      expect(sha256(Buffer.from(await bytes.arrayBuffer()))).toBe(sha256(fileBytes));
      const mime = await (await raw(`${base}/messages/${message.id}/attachments/${item.id}/$value`)).text();
      expect(mime).toContain('Subject: The attached one\r\n');
      expect(mime).toContain('Message-ID: <inner@example.net>\r\n');
      expect(mime).toContain('inner body');
      const refused = await failure(
        graph.api(`${base}/messages/${message.id}/attachments/${reference.id}/$value`).get(),
      );
      expect(refused.status).toBe(405);
    });

    it('streams $value in chunks: the client has bytes before the emulator has sent the last one', async () => {
      const big = randomBytes(2 * 1024 * 1024);
      const message = seed('inbox', {
        subject: 'big',
        attachments: [
          { name: 'big.bin', contentType: 'application/octet-stream', contentBytes: big.toString('base64') },
        ],
      });
      const [attachment] = emulator.mailbox(support.id).getMessage(message.id)!.attachments;
      emulator.setValueStreamPacing({ chunkBytes: 256 * 1024, delayMs: 50 });
      const response = await raw(`${base}/messages/${message.id}/attachments/${attachment.id}/$value`);
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      const first = await reader.read();
      expect(first.value?.length ?? 0).toBeGreaterThan(0);
      const [record] = emulator.valueStreamLog;
      expect(record.bytes).toBe(big.length);
      expect(record.finishedAt).toBeUndefined();
      const chunks: Buffer[] = [Buffer.from(first.value ?? new Uint8Array())];
      for (let next = await reader.read(); !next.done; next = await reader.read()) chunks.push(Buffer.from(next.value));
      expect(sha256(Buffer.concat(chunks))).toBe(sha256(big));
      expect(record.finishedAt).toBeInstanceOf(Date);
    });

    it('builds the MIME $value from the message: headers, multipart/mixed with alternative body and base64 files', async () => {
      const message = seedWithAttachments();
      const response = await raw(`${base}/messages/${message.id}/$value`);
      expect(response.headers.get('content-type')).toBe('text/plain');
      const mime = await response.text();
      expect(mime).toContain('Subject: with attachments\r\n');
      expect(mime).toContain('Message-ID: <att@example.net>\r\n');
      expect(mime).toMatch(/Content-Type: multipart\/mixed;\r\n\tboundary="([^"]+)"/);
      expect(mime).toMatch(/Content-Type: multipart\/alternative;/);
      expect(mime).toContain('Content-Type: text/html; charset="utf-8"');
      expect(mime).toContain("filename*=utf-8''Rechnung%20M%C3%A4rz.pdf");
      expect(mime).toContain('Content-Type: message/rfc822');
      const base64 = /Content-Transfer-Encoding: base64\r\n\r\n([A-Za-z0-9+/=\r\n]+)\r\n--/.exec(mime)?.[1] ?? '';
      expect(sha256(Buffer.from(base64.replace(/\r\n/g, ''), 'base64'))).toBe(sha256(fileBytes));
    });
  });

  describe('changing messages', () => {
    it('PATCHes isRead, categories and flag, and the store holds them', async () => {
      const stored = seed('inbox', { subject: 'todo' });
      const updated = (await graph
        .api(`${base}/messages/${stored.id}`)
        .patch({ isRead: true, categories: ['Handled'], flag: { flagStatus: 'flagged' } })) as MessageJson;
      expect(updated).toMatchObject({ isRead: true, categories: ['Handled'], flag: { flagStatus: 'flagged' } });
      expect(emulator.mailbox(support.id).getMessage(stored.id)).toMatchObject({
        isRead: true,
        categories: ['Handled'],
        flag: { flagStatus: 'flagged' },
      });
    });

    it('refuses unknown and read-only properties, a bad flagStatus and draft-only ones on received mail', async () => {
      const stored = seed('inbox', { subject: 'todo' });
      const patch = (body: object) => failure(graph.api(`${base}/messages/${stored.id}`).patch(body));
      expect(await patch({ isUnread: true })).toMatchObject({ status: 400, code: 'RequestBodyRead' });
      expect(await patch({ receivedDateTime: '2020-01-01T00:00:00Z' })).toEqual({
        status: 400,
        code: 'ErrorInvalidPropertySet',
        message: 'Set action is invalid for property.',
      });
      expect(await patch({ flag: { flagStatus: 'done' } })).toMatchObject({ status: 400, code: 'RequestBodyRead' });
      expect(await patch({ isRead: 'yes' })).toMatchObject({ status: 400, code: 'RequestBodyRead' });
      expect(await patch({ from: { emailAddress: { address: 'x@example.net' } } })).toEqual({
        status: 400,
        code: 'ErrorInvalidPropertySet',
        message: 'Message is not draft.',
      });
      expect(emulator.mailbox(support.id).getMessage(stored.id)?.isRead).toBe(false);
    });

    it('moves to a well-known folder or a folder id with a new id; the old id is then 404 ErrorItemNotFound', async () => {
      const stored = seed('inbox', { subject: 'file me' });
      const moved = (await graph
        .api(`${base}/messages/${stored.id}/move`)
        .post({ destinationId: 'archive' })) as MessageJson;
      expect(moved.id).not.toBe(stored.id);
      expect(moved.parentFolderId).toBe(emulator.mailbox(support.id).findFolder('archive')?.id);
      expect(await failure(graph.api(`${base}/messages/${stored.id}`).get())).toEqual({
        status: 404,
        code: 'ErrorItemNotFound',
        message: 'The specified object was not found in the store.',
      });
      const inboxId = emulator.mailbox(support.id).findFolder('inbox')!.id;
      const back = (await graph
        .api(`${base}/messages/${moved.id}/move`)
        .post({ destinationId: inboxId })) as MessageJson;
      expect(back.parentFolderId).toBe(inboxId);
      const badFolder = await failure(graph.api(`${base}/messages/${back.id}/move`).post({ destinationId: 'nowhere' }));
      expect(badFolder).toMatchObject({ status: 400, code: 'ErrorInvalidIdMalformed' });
    });

    it('acts below a folder too, where the message must be in that folder', async () => {
      const stored = seed('inbox', { subject: 'here', from: { emailAddress: { address: customer.mail } } });
      const inFolder = (await graph
        .api(`${base}/mailFolders/inbox/messages/${stored.id}`)
        .patch({ categories: ['Seen'] })) as MessageJson;
      expect(inFolder.categories).toEqual(['Seen']);
      const elsewhere = await failure(
        graph.api(`${base}/mailFolders/archive/messages/${stored.id}/createReply`).post({ comment: 'x' }),
      );
      expect(elsewhere).toMatchObject({ status: 404, code: 'ErrorItemNotFound' });
      const moved = (await graph
        .api(`${base}/mailFolders/inbox/messages/${stored.id}/move`)
        .post({ destinationId: 'junkemail' })) as MessageJson;
      expect(moved.parentFolderId).toBe(emulator.mailbox(support.id).findFolder('junkemail')?.id);
    });

    it('deletes softly: the message leaves its folder and its id answers 404', async () => {
      const stored = seed('inbox', { subject: 'bye' });
      await graph.api(`${base}/messages/${stored.id}`).delete();
      expect(emulator.mailbox(support.id).listMessages('inbox')).toEqual([]);
      expect((await failure(graph.api(`${base}/messages/${stored.id}`).get())).code).toBe('ErrorItemNotFound');
    });

    it('answers malformed ids with 400 ErrorInvalidIdMalformed and unknown ones with 404 ErrorItemNotFound', async () => {
      const unknown = `AAMkAG${'x'.repeat(40)}AAA=`;
      for (const id of ['not-an-id', unknown]) {
        const expected =
          id === unknown
            ? { status: 404, code: 'ErrorItemNotFound' }
            : { status: 400, code: 'ErrorInvalidIdMalformed' };
        expect(await failure(graph.api(`${base}/messages/${id}/$value`).get())).toMatchObject(expected);
        expect(await failure(graph.api(`${base}/messages/${id}`).patch({ isRead: true }))).toMatchObject(expected);
        expect(
          await failure(graph.api(`${base}/messages/${id}/move`).post({ destinationId: 'archive' })),
        ).toMatchObject(expected);
        expect(await failure(graph.api(`${base}/messages/${id}/createReply`).post({}))).toMatchObject(expected);
      }
    });
  });

  describe('reply and forward drafts', () => {
    function original(): MessageJson {
      return seed('inbox', {
        subject: 'Printer on fire',
        body: { contentType: 'html', content: '<html><body><p>It is <b>really</b> on fire.</p></body></html>' },
        from: { emailAddress: { address: customer.mail, name: 'Carla Customer' } },
        toRecipients: [{ emailAddress: { address: support.mail } }, { emailAddress: { address: colleague.mail } }],
        ccRecipients: [{ emailAddress: { address: 'boss@example.net' } }],
        internetMessageId: '<fire@example.net>',
        internetMessageHeaders: [{ name: 'References', value: '<earlier@example.net>' }],
        conversationId: 'AAQkAGconversation-printer=',
        attachments: [
          { name: 'photo.jpg', contentType: 'image/jpeg', contentBytes: randomBytes(100).toString('base64') },
        ],
      });
    }

    it('createReply drafts RE: in the same conversation with In-Reply-To/References and the original quoted', async () => {
      const source = original();
      const draft = (await graph
        .api(`${base}/messages/${source.id}/createReply`)
        .post({ comment: 'We are on it.' })) as MessageJson;
      expect(draft).toMatchObject({
        isDraft: true,
        subject: 'RE: Printer on fire',
        conversationId: 'AAQkAGconversation-printer=',
        toRecipients: [{ emailAddress: { address: customer.mail } }],
        hasAttachments: false,
      });
      expect(draft.parentFolderId).toBe(emulator.mailbox(support.id).findFolder('drafts')?.id);
      const full = (await graph
        .api(`${base}/messages/${draft.id}`)
        .select(['body', 'uniqueBody', 'internetMessageHeaders'])
        .get()) as MessageJson;
      expect(header(full.internetMessageHeaders, 'In-Reply-To')).toBe('<fire@example.net>');
      expect(header(full.internetMessageHeaders, 'References')).toBe('<earlier@example.net> <fire@example.net>');
      const body = full.body?.content ?? '';
      expect(body.indexOf('We are on it.')).toBeGreaterThanOrEqual(0);
      expect(body.indexOf('We are on it.')).toBeLessThan(body.indexOf('It is <b>really</b> on fire.'));
      expect(body).toContain('<b>Subject:</b> Printer on fire');
      expect(full.uniqueBody?.content).toContain('We are on it.');
      expect(full.uniqueBody?.content).not.toContain('on fire');
    });

    it("createReply takes message.body as the new part, with the message parameter's other properties", async () => {
      const source = original();
      const draft = (await graph.api(`${base}/messages/${source.id}/createReply`).post({
        message: {
          body: { contentType: 'text', content: 'Fixed & closed.' },
          ccRecipients: [{ emailAddress: { address: colleague.mail } }],
        },
      })) as MessageJson;
      expect(draft.ccRecipients?.map((r) => r.emailAddress?.address)).toEqual([colleague.mail]);
      const full = (await graph
        .api(`${base}/messages/${draft.id}`)
        .header('Prefer', 'outlook.body-content-type="text"')
        .select(['body', 'uniqueBody'])
        .get()) as MessageJson;
      expect(full.uniqueBody).toEqual({ contentType: 'text', content: 'Fixed & closed.' });
      expect(full.body?.content).toMatch(/^Fixed & closed\.[\s\S]*It is really on fire\.$/);
    });

    it("puts In-Reply-To and References in the sent reply's MIME", async () => {
      const source = original();
      const draft = (await graph
        .api(`${base}/messages/${source.id}/createReply`)
        .post({ comment: 'ok' })) as MessageJson;
      const mime = await (await raw(`${base}/mailFolders/drafts/messages/${draft.id}/$value`)).text();
      expect(mime).toContain('Subject: RE: Printer on fire\r\n');
      expect(mime).toContain('In-Reply-To: <fire@example.net>\r\n');
      expect(mime).toContain('References: <earlier@example.net> <fire@example.net>\r\n');
      expect(mime).toContain('Content-Type: multipart/alternative;');
    });

    it("keeps the message parameter's X- headers and internetMessageId on the draft, with the threading headers", async () => {
      const source = original();
      const draft = (await graph.api(`${base}/messages/${source.id}/createReply`).post({
        comment: 'ok',
        message: {
          internetMessageHeaders: [{ name: 'X-Ticket-Id', value: '4711' }],
          internetMessageId: '<reply-1@contoso.com>',
        },
      })) as MessageJson;
      const full = (await graph
        .api(`${base}/messages/${draft.id}`)
        .select(['internetMessageHeaders', 'internetMessageId'])
        .get()) as MessageJson;
      expect(full.internetMessageId).toBe('<reply-1@contoso.com>');
      expect(header(full.internetMessageHeaders, 'X-Ticket-Id')).toBe('4711');
      expect(header(full.internetMessageHeaders, 'In-Reply-To')).toBe('<fire@example.net>');
    });

    it('createReplyAll answers everyone but the mailbox itself', async () => {
      const source = original();
      const draft = (await graph.api(`${base}/messages/${source.id}/createReplyAll`).post({})) as MessageJson;
      expect(draft.toRecipients?.map((r) => r.emailAddress?.address)).toEqual([customer.mail, colleague.mail]);
      expect(draft.ccRecipients?.map((r) => r.emailAddress?.address)).toEqual(['boss@example.net']);
    });

    it('refuses comment together with message.body (400)', async () => {
      const source = original();
      const error = await failure(
        graph
          .api(`${base}/messages/${source.id}/createReply`)
          .post({ comment: 'a', message: { body: { contentType: 'text', content: 'b' } } }),
      );
      expect(error.status).toBe(400);
      expect(emulator.mailbox(support.id).listMessages('drafts')).toEqual([]);
    });

    it('createForward needs toRecipients, as a parameter or in message but not both, and copies attachments', async () => {
      const source = original();
      const forward = (to: object) => graph.api(`${base}/messages/${source.id}/createForward`).post(to);
      expect((await failure(forward({ comment: 'fyi' }))).status).toBe(400);
      const both = { toRecipients: [{ emailAddress: { address: colleague.mail } }] };
      expect((await failure(forward({ ...both, message: both }))).status).toBe(400);
      const draft = (await forward({ ...both, comment: 'fyi' })) as MessageJson;
      expect(draft).toMatchObject({
        subject: 'FW: Printer on fire',
        hasAttachments: true,
        conversationId: source.conversationId,
      });
      expect(draft.toRecipients?.map((r) => r.emailAddress?.address)).toEqual([colleague.mail]);
    });

    it('sends a reply with an attachment into the original sender’s Inbox, in the same conversation', async () => {
      const customerClient = graph;
      await customerClient.api(`/users/${customer.mail}/sendMail`).post({
        message: {
          subject: 'Invoice question',
          body: { contentType: 'html', content: '<p>Why is it so high?</p>' },
          toRecipients: [{ emailAddress: { address: support.mail } }],
        },
      });
      await emulator.idleSubmissions();
      const [received] = emulator.mailbox(support.id).listMessages('inbox');
      const [sentCopy] = emulator.mailbox(customer.id).listMessages('sentitems');
      expect(received.conversationId).toBe(sentCopy.conversationId);

      const draft = (await graph
        .api(`${base}/messages/${received.id}/createReply`)
        .post({ comment: 'See the breakdown attached.' })) as MessageJson;
      const breakdown = randomBytes(50_000);
      await graph.api(`${base}/messages/${draft.id}/attachments`).post({
        '@odata.type': '#microsoft.graph.fileAttachment',
        name: 'breakdown.csv',
        contentType: 'text/csv',
        contentBytes: breakdown.toString('base64'),
      });
      await graph.api(`${base}/messages/${draft.id}/send`).post({});
      await emulator.idleSubmissions();

      const [reply] = emulator.mailbox(customer.id).listMessages('inbox');
      expect(reply.subject).toBe('RE: Invoice question');
      expect(reply.conversationId).toBe(sentCopy.conversationId);
      expect(header(reply.internetMessageHeaders, 'In-Reply-To')).toBe(received.internetMessageId);
      expect(header(reply.internetMessageHeaders, 'References')).toBe(received.internetMessageId);
      expect(reply.body?.content).toContain('See the breakdown attached.');
      expect(reply.body?.content).toContain('Why is it so high?');
      expect(reply.attachments.map((a) => [a.name, sha256(Buffer.from(a.contentBytes ?? '', 'base64'))])).toEqual([
        ['breakdown.csv', sha256(breakdown)],
      ]);
      // The customer reads only the new part through uniqueBody.
      const unique = (await graph
        .api(`/users/${customer.mail}/messages/${reply.id}`)
        .header('Prefer', 'outlook.body-content-type="text"')
        .select(['uniqueBody'])
        .get()) as MessageJson;
      expect(unique.uniqueBody).toEqual({ contentType: 'text', content: 'See the breakdown attached.' });
    });
  });

  describe('permissions', () => {
    it('Mail.ReadBasic.All reads metadata but not body, bodyPreview, uniqueBody, attachments or $value', async () => {
      const stored = seed('inbox', {
        subject: 'secret',
        body: { contentType: 'text', content: 'the secret' },
        attachments: [{ name: 'a.txt', contentBytes: Buffer.from('a').toString('base64') }],
      });
      const basic = sdk(['Mail.ReadBasic.All']);
      const message = (await basic
        .api(`${base}/messages/${stored.id}`)
        .select(['subject', 'body', 'bodyPreview', 'uniqueBody'])
        .get()) as MessageJson;
      expect(message.subject).toBe('secret');
      expect(message).not.toHaveProperty('body');
      expect(message).not.toHaveProperty('bodyPreview');
      expect(message).not.toHaveProperty('uniqueBody');
      const denied = {
        status: 403,
        code: 'ErrorAccessDenied',
        message: 'Access is denied. Check credentials and try again.',
      };
      expect(await failure(basic.api(`${base}/messages/${stored.id}/attachments`).get())).toEqual(denied);
      expect(await failure(basic.api(`${base}/messages/${stored.id}/$value`).get())).toEqual(denied);
    });

    it('PATCH, move, delete and the reply drafts need Mail.ReadWrite', async () => {
      const stored = seed('inbox', { subject: 'x', from: { emailAddress: { address: customer.mail } } });
      const reader = sdk(['Mail.Read', 'Mail.Send']);
      const denied = { status: 403, code: 'ErrorAccessDenied' };
      expect(await failure(reader.api(`${base}/messages/${stored.id}`).patch({ isRead: true }))).toMatchObject(denied);
      expect(
        await failure(reader.api(`${base}/messages/${stored.id}/move`).post({ destinationId: 'archive' })),
      ).toMatchObject(denied);
      expect(await failure(reader.api(`${base}/messages/${stored.id}`).delete())).toMatchObject(denied);
      for (const action of ['createReply', 'createReplyAll', 'createForward']) {
        expect(await failure(reader.api(`${base}/messages/${stored.id}/${action}`).post({}))).toMatchObject(denied);
      }
      expect(emulator.mailbox(support.id).getMessage(stored.id)?.isRead).toBe(false);
    });
  });
});
