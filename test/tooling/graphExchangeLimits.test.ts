/**
 * Exchange Online's submission limits behind the Graph emulator, over real HTTPS with app tokens: past 30 messages a
 * minute Graph still answers 202 and the mail waits in the Outbox (first in, first out, released as the emulated clock
 * moves); past 10,000 recipients a day the message becomes a 550 5.1.90 NDR in the sender's Inbox, and past the
 * tenant's external recipient limit (TERRL, when set) a 550 5.7.233 NDR; an unknown recipient of the tenant's domain
 * comes back as a 550 5.1.1 NDR with the original attached. Also the
 * client-set internetMessageId, kept through delivery and searchable in Sent Items with `$filter`.
 */
import type { Message } from '@microsoft/microsoft-graph-types';
import { GraphEmulator, type GraphLimits } from '../emulators/graph/graphEmulator';
import { EmulatedTenant } from '../emulators/tenant';
import { TokenIssuer } from '../emulators/tokenIssuer';
import { appToken } from '../support/appToken';
import { testCa } from '../support/testEnv';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

type MessageJson = Message & { id: string };

/** Talks to one emulator with global fetch (the test CA is trusted through NODE_EXTRA_CA_CERTS). */
class Client {
  constructor(
    readonly origin: string,
    private readonly token: string,
  ) {}

  async call(method: string, path: string, json?: unknown): Promise<Reply> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (json !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(new URL(path, this.origin), {
      method,
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
    });
    const text = await response.text();
    const body: unknown = text && /json/.test(response.headers.get('content-type') ?? '') ? JSON.parse(text) : {};
    return { status: response.status, body: body as Record<string, unknown> };
  }

  sendMail(user: string, message: object, extra: Record<string, unknown> = {}): Promise<Reply> {
    return this.call('POST', `/v1.0/users/${user}/sendMail`, { message, ...extra });
  }

  async list(user: string, folder: string, query = ''): Promise<MessageJson[]> {
    const reply = await this.call('GET', `/v1.0/users/${user}/mailFolders/${folder}/messages${query}`);
    expect(reply.status).toBe(200);
    return reply.body.value as MessageJson[];
  }
}

function to(...addresses: string[]) {
  return addresses.map((address) => ({ emailAddress: { address } }));
}

function errorCode(reply: Reply): string {
  return (reply.body as { error: { code: string } }).error.code;
}

/** The most deliveries in any 60-second window (ending at a delivery), from the per-message times. */
function busiestMinute(times: number[]): number {
  return Math.max(0, ...times.map((end) => times.filter((t) => t > end - MINUTE && t <= end).length));
}

describe('Graph emulator: Exchange submission limits', () => {
  const issuer = new TokenIssuer();
  const tenant = new EmulatedTenant();
  const app = tenant.registerApp();
  const alerts = tenant.addUser('alerts', { displayName: 'Alerts' });
  const ops = tenant.addUser('ops', { displayName: 'Operations' });
  const billing = tenant.addUser('billing');
  // MaxSendSize 64 KiB instead of Exchange Online's 35 MB default, so that a test need not send 36 MB.
  const small = tenant.addUser('small', { maxSendSizeBytes: 64 * 1024 });
  const running: GraphEmulator[] = [];

  async function start(limits?: GraphLimits): Promise<{ graph: GraphEmulator; api: Client }> {
    const graph = await GraphEmulator.start({ tenant, issuer, ca: testCa(), limits });
    running.push(graph);
    return { graph, api: new Client(graph.url, appToken(issuer, tenant, app)) };
  }

  afterEach(async () => {
    await Promise.all(running.splice(0).map((g) => g.close()));
  });

  describe('message rate (30 per minute per mailbox)', () => {
    it('accepts the 31st message of a minute with 202 but delivers it only once the clock moves a minute', async () => {
      const { graph, api } = await start();
      for (let i = 1; i <= 31; i++) {
        const reply = await api.sendMail(alerts.mail, { subject: `m${i}`, toRecipients: to(ops.mail) });
        expect(reply.status).toBe(202);
      }
      expect(graph.sendsAccepted(alerts.mail)).toBe(31);
      expect(graph.inbox(ops.mail)).toHaveLength(30);
      expect(graph.inbox(ops.mail).map((m) => m.subject)).not.toContain('m31');
      // Sent Items gets the copy when the message leaves the Outbox, not when Graph accepts it.
      expect(graph.mailbox(alerts.mail).listMessages('sentitems')).toHaveLength(30);
      expect(graph.submissions(alerts.mail)).toMatchObject({ queued: 1, delivered: 30, ndr: 0 });

      // Real time passing (with the release tick running) does not release it before a minute is up.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(graph.submissions(alerts.mail).queued).toBe(1);

      graph.clock.advance(MINUTE);
      expect(graph.submissions(alerts.mail)).toMatchObject({ queued: 0, delivered: 31 });
      const last = graph.inbox(ops.mail)[0];
      expect(last.subject).toBe('m31');
      const records = graph.submissions(alerts.mail).messages;
      const first = records[0];
      const late = records[30];
      expect(late.subject).toBe('m31');
      expect(late.deliveredAt!.getTime() - first.deliveredAt!.getTime()).toBeGreaterThanOrEqual(MINUTE);
      // The message keeps its submission time; the delivered copy is received when it left.
      expect(Date.parse(last.sentDateTime!)).toBeLessThan(Date.parse(last.receivedDateTime));
      expect(graph.mailbox(alerts.mail).listMessages('sentitems')).toHaveLength(31);
      await graph.idleSubmissions();
    });

    it('carries 90 messages over three emulated minutes, first in first out, never more than 30 in a minute', async () => {
      const { graph, api } = await start();
      for (let i = 0; i < 90; i++) {
        const message = { subject: `batch ${String(i).padStart(2, '0')}`, toRecipients: to(ops.mail) };
        // Half through a draft, half through sendMail: both paths share the Outbox.
        if (i % 2 === 0) {
          expect((await api.sendMail(alerts.mail, message)).status).toBe(202);
        } else {
          const draft = await api.call('POST', `/v1.0/users/${alerts.mail}/messages`, message);
          expect(draft.status).toBe(201);
          const sent = await api.call('POST', `/v1.0/users/${alerts.mail}/messages/${String(draft.body.id)}/send`);
          expect(sent.status).toBe(202);
        }
      }
      expect(graph.sendsAccepted(alerts.mail)).toBe(90);
      let idle = false;
      const idleSoon = graph.idleSubmissions().then(() => (idle = true));
      expect(graph.submissions(alerts.mail)).toMatchObject({ delivered: 30, queued: 60 });

      graph.clock.advance(MINUTE);
      expect(graph.submissions(alerts.mail)).toMatchObject({ delivered: 60, queued: 30 });
      await Promise.resolve();
      expect(idle).toBe(false);

      graph.clock.advance(MINUTE);
      expect(graph.submissions(alerts.mail)).toMatchObject({ delivered: 90, queued: 0 });
      await idleSoon;
      expect(idle).toBe(true);

      const records = graph.submissions(alerts.mail).messages;
      expect(records.map((r) => r.subject)).toEqual(
        Array.from({ length: 90 }, (_, i) => `batch ${String(i).padStart(2, '0')}`),
      );
      const times = records.map((r) => r.deliveredAt!.getTime());
      // First in, first out: delivery times never go backwards in submission order.
      for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThanOrEqual(times[i - 1]);
      expect(times[89] - times[0]).toBeGreaterThanOrEqual(2 * MINUTE);
      expect(times[89] - times[0]).toBeLessThan(3 * MINUTE);
      expect(busiestMinute(times)).toBe(30);

      const histogram = graph.deliveredPerMinute(alerts.mail);
      expect(histogram.reduce((sum, m) => sum + m.count, 0)).toBe(90);
      expect(Math.max(...histogram.map((m) => m.count))).toBeLessThanOrEqual(30);
      expect(histogram.length).toBeGreaterThanOrEqual(3);

      // The Inbox shows them in the order they left: oldest received last.
      const subjects = graph
        .inbox(ops.mail)
        .map((m) => m.subject)
        .reverse();
      expect(subjects).toEqual(records.map((r) => r.subject));
      // Another mailbox has its own Outbox.
      expect((await api.sendMail(billing.mail, { subject: 'own limit', toRecipients: to(ops.mail) })).status).toBe(202);
      expect(graph.submissions(billing.mail)).toMatchObject({ delivered: 1, queued: 0 });
    });

    it('releases held mail on its real-time tick once the minute is over', async () => {
      const { graph, api } = await start({ messagesPerMinute: 2 });
      for (const subject of ['a', 'b', 'c']) {
        expect((await api.sendMail(alerts.mail, { subject, toRecipients: to(ops.mail) })).status).toBe(202);
      }
      expect(graph.submissions(alerts.mail).queued).toBe(1);
      // Just short of a minute: nothing yet; the rest of the minute then passes in real time.
      graph.clock.advance(MINUTE - 2000);
      expect(graph.submissions(alerts.mail).queued).toBe(1);
      await graph.idleSubmissions();
      expect(graph.inbox(ops.mail).map((m) => m.subject)).toEqual(['c', 'b', 'a']);
    });

    it('keeps held mail in the Outbox folder, findable by internetMessageId, until it leaves; then Sent Items has it', async () => {
      const { graph, api } = await start({ messagesPerMinute: 1 });
      const kept = '<held.kept@gateway.contoso.com>';
      const unsaved = '<held.unsaved@gateway.contoso.com>';
      const byId = (id: string) => `?$filter=${encodeURIComponent(`internetMessageId eq '${id}'`)}`;
      expect((await api.sendMail(alerts.mail, { subject: 'first', toRecipients: to(ops.mail) })).status).toBe(202);
      const send = (subject: string, internetMessageId: string, extra: Record<string, unknown> = {}) =>
        api.sendMail(alerts.mail, { subject, toRecipients: to(ops.mail), internetMessageId }, extra);
      expect((await send('kept', kept)).status).toBe(202);
      expect((await send('unsaved', unsaved, { saveToSentItems: false })).status).toBe(202);

      // The first left at once (Outbox empty of it, Sent Items has it); the other two wait in the Outbox.
      expect((await api.list(alerts.mail, 'outbox', '?$select=subject')).map((m) => m.subject).sort()).toEqual([
        'kept',
        'unsaved',
      ]);
      const held = await api.list(alerts.mail, 'outbox', byId(kept));
      expect(held.map((m) => [m.subject, m.internetMessageId, m.isDraft])).toEqual([['kept', kept, false]]);
      expect(await api.list(alerts.mail, 'sentitems', byId(kept))).toEqual([]);
      expect((await api.list(alerts.mail, 'sentitems')).map((m) => m.subject)).toEqual(['first']);
      const folder = await api.call('GET', `/v1.0/users/${alerts.mail}/mailFolders/outbox`);
      expect(folder.body).toMatchObject({ displayName: 'Outbox', totalItemCount: 2 });

      graph.clock.advance(MINUTE);
      expect(await api.list(alerts.mail, 'outbox', byId(kept))).toEqual([]);
      expect((await api.list(alerts.mail, 'sentitems', byId(kept))).map((m) => m.subject)).toEqual(['kept']);
      expect((await api.list(alerts.mail, 'outbox')).map((m) => m.subject)).toEqual(['unsaved']);

      graph.clock.advance(MINUTE);
      // saveToSentItems false: it leaves the Outbox and is kept nowhere.
      expect(await api.list(alerts.mail, 'outbox')).toEqual([]);
      expect(await api.list(alerts.mail, 'sentitems', byId(unsaved))).toEqual([]);
      expect(graph.inbox(ops.mail).map((m) => m.subject)).toEqual(['unsaved', 'kept', 'first']);
    });

    it('shows submissions on the inspection API', async () => {
      const { graph, api } = await start({ messagesPerMinute: 1 });
      for (const subject of ['one', 'two']) {
        expect((await api.sendMail(alerts.mail, { subject, toRecipients: to(ops.mail) })).status).toBe(202);
      }
      const response = await fetch(new URL(`/_emulator/mailboxes/${alerts.mail}/submissions`, graph.url));
      expect(response.status).toBe(200);
      const view = (await response.json()) as Record<string, unknown>;
      expect(view).toMatchObject({ queued: 1, delivered: 1, ndr: 0, sendsAccepted: 2 });
      expect(view.messages).toEqual([
        expect.objectContaining({ subject: 'one', outcome: 'delivered', recipients: 1 }),
        expect.objectContaining({ subject: 'two', outcome: 'queued' }),
      ]);
      expect(view.deliveredPerMinute).toEqual([expect.objectContaining({ count: 1 })]);
      // reset() forgets the windows, so the held message leaves.
      graph.reset();
      await graph.idleSubmissions();
      expect(graph.inbox(ops.mail).map((m) => m.subject)).toEqual(['two', 'one']);
    });
  });

  describe('recipient rate (10,000 per day per mailbox)', () => {
    it('delivers 10,000 recipients, turns the next send into a 550 5.1.90 NDR, and sends again 24 hours later', async () => {
      const { graph, api } = await start();
      for (let batch = 0; batch < 20; batch++) {
        const recipients = Array.from({ length: 500 }, (_, i) => `r${batch}-${i}@fabrikam.example`);
        const reply = await api.sendMail(alerts.mail, { subject: `bulk ${batch}`, toRecipients: to(...recipients) });
        expect(reply.status).toBe(202);
      }
      expect(graph.submissions(alerts.mail)).toMatchObject({ delivered: 20, ndr: 0, queued: 0 });
      expect(graph.outbound.reduce((sum, m) => sum + m.to.length, 0)).toBe(10_000);

      const over = await api.sendMail(alerts.mail, {
        subject: 'one too many',
        toRecipients: to(ops.mail),
        internetMessageId: '<over.the.limit@contoso.com>',
      });
      expect(over.status).toBe(202);
      expect(graph.inbox(ops.mail)).toHaveLength(0);
      expect(graph.submissions(alerts.mail)).toMatchObject({ delivered: 20, ndr: 1, queued: 0 });
      expect(
        graph
          .mailbox(alerts.mail)
          .listMessages('sentitems')
          .map((m) => m.subject),
      ).not.toContain('one too many');
      expect(graph.ndrs).toEqual([
        expect.objectContaining({
          mailbox: alerts.mail,
          subject: 'one too many',
          status: '5.1.90',
          internetMessageId: '<over.the.limit@contoso.com>',
        }),
      ]);

      // The NDR as a product reads it through Graph.
      const inbox = await api.list(alerts.mail, 'inbox', '?$select=subject,from,body,internetMessageHeaders');
      expect(inbox).toHaveLength(1);
      const ndr = inbox[0];
      expect(ndr.subject).toBe('Undeliverable: one too many');
      expect(ndr.from?.emailAddress?.name).toBe('Microsoft Outlook');
      expect(ndr.from?.emailAddress?.address).toMatch(/^MicrosoftExchange[0-9a-f]{32}@contoso\.com$/);
      expect(ndr.body?.content).toContain(
        "550 5.1.90 Your message can't be sent because you've reached your daily limit for message recipients",
      );
      expect(ndr.internetMessageHeaders).toEqual(
        expect.arrayContaining([{ name: 'In-Reply-To', value: '<over.the.limit@contoso.com>' }]),
      );

      graph.clock.advance(DAY);
      expect((await api.sendMail(alerts.mail, { subject: 'next day', toRecipients: to(ops.mail) })).status).toBe(202);
      expect(graph.inbox(ops.mail).map((m) => m.subject)).toEqual(['next day']);
      expect(graph.submissions(alerts.mail)).toMatchObject({ delivered: 21, ndr: 1 });
    });

    it('refuses a message that would go past the limit, counting To, Cc and Bcc, while a smaller one still fits', async () => {
      const { graph, api } = await start({ recipientsPerDay: 5 });
      const three = {
        toRecipients: to(ops.mail),
        ccRecipients: to(billing.mail),
        bccRecipients: to('x@fabrikam.example'),
      };
      expect((await api.sendMail(alerts.mail, { subject: 'first three', ...three })).status).toBe(202);
      expect((await api.sendMail(alerts.mail, { subject: 'three more', ...three })).status).toBe(202);
      expect(
        (await api.sendMail(alerts.mail, { subject: 'two fit', toRecipients: to(ops.mail, 'y@fabrikam.example') }))
          .status,
      ).toBe(202);
      expect(graph.inbox(ops.mail).map((m) => m.subject)).toEqual(['two fit', 'first three']);
      expect(graph.submissions(alerts.mail).messages.map((m) => m.outcome)).toEqual(['delivered', 'ndr', 'delivered']);
      expect(graph.inbox(alerts.mail).map((m) => m.subject)).toEqual(['Undeliverable: three more']);
      // The window slides: just short of 24 hours it is still full; 24 hours after the sends it is empty again.
      graph.clock.advance(DAY - 5000);
      expect((await api.sendMail(alerts.mail, { subject: 'still full', toRecipients: to(ops.mail) })).status).toBe(202);
      expect(graph.ndrs.map((n) => n.subject)).toEqual(['three more', 'still full']);
      graph.clock.advance(10_000);
      const five = to(ops.mail, billing.mail, 'a@fabrikam.example', 'b@fabrikam.example', 'c@fabrikam.example');
      expect((await api.sendMail(alerts.mail, { subject: 'room again', toRecipients: five })).status).toBe(202);
      expect(graph.inbox(ops.mail)[0].subject).toBe('room again');
    });
  });

  describe('tenant external recipient rate (TERRL, across mailboxes)', () => {
    it('counts external recipients of every mailbox, never internal ones, and turns the mail past it into a 550 5.7.233 NDR until the window moves', async () => {
      const { graph, api } = await start({ tenantExternalRecipientsPerDay: 3 });
      const external = (subject: string, ...addresses: string[]) => ({ subject, toRecipients: to(...addresses) });
      expect(
        (await api.sendMail(alerts.mail, external('two out', 'a@fabrikam.example', ops.mail, 'b@fabrikam.example')))
          .status,
      ).toBe(202);
      expect((await api.sendMail(billing.mail, external('one out', 'c@northwind.example'))).status).toBe(202);
      // Internal mail is not counted, however much of it there is.
      expect((await api.sendMail(billing.mail, external('inside', ops.mail, alerts.mail))).status).toBe(202);
      expect((await api.sendMail(billing.mail, external('one too many', 'd@northwind.example'))).status).toBe(202);
      expect(graph.ndrs.map((n) => [n.mailbox, n.subject, n.status])).toEqual([
        [billing.mail, 'one too many', '5.7.233'],
      ]);
      const ndr = graph.inbox(billing.mail).find((m) => m.subject === 'Undeliverable: one too many');
      expect(ndr?.body?.content).toContain(
        "550 5.7.233 Your message can't be sent because your tenant exceeded its daily limit for sending email to external recipients",
      );
      expect(graph.inbox(ops.mail).map((m) => m.subject)).toEqual(['inside', 'two out']);
      graph.clock.advance(DAY + 1000);
      expect((await api.sendMail(alerts.mail, external('next day', 'e@fabrikam.example'))).status).toBe(202);
      expect(graph.ndrs).toHaveLength(1);
      expect(graph.submissions(alerts.mail)).toMatchObject({ delivered: 2, ndr: 0 });
    });
  });

  describe("unknown recipients of the tenant's own domain (550 5.1.1)", () => {
    it('delivers to the mailboxes that exist and reports the unknown ones in one NDR with the original attached', async () => {
      const { graph, api } = await start();
      const sent = await api.sendMail(alerts.mail, {
        subject: 'to a ghost',
        toRecipients: to(ops.mail, 'ghost@contoso.com', 'x@fabrikam.example'),
        internetMessageId: '<ghost.1@contoso.com>',
      });
      expect(sent.status).toBe(202);
      expect(graph.inbox(ops.mail).map((m) => m.subject)).toEqual(['to a ghost']);
      // An unknown address of an accepted domain never leaves the tenant; the external one does.
      expect(graph.outbound.map((o) => o.to)).toEqual([['x@fabrikam.example']]);
      expect(graph.ndrs).toEqual([
        expect.objectContaining({ status: '5.1.1', recipients: ['ghost@contoso.com'], subject: 'to a ghost' }),
      ]);
      const [ndr] = await api.list(
        alerts.mail,
        'inbox',
        '?$select=subject,from,body,internetMessageHeaders,hasAttachments',
      );
      expect(ndr.subject).toBe('Undeliverable: to a ghost');
      expect(ndr.hasAttachments).toBe(true);
      expect(ndr.body?.content).toContain(
        "ghost@contoso.com<br>Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'",
      );
      expect(ndr.body?.content).not.toContain('ops@contoso.com<br>Remote Server');
      expect(ndr.internetMessageHeaders).toEqual(
        expect.arrayContaining([
          { name: 'In-Reply-To', value: '<ghost.1@contoso.com>' },
          { name: 'X-MS-Exchange-Message-Is-Ndr', value: '' },
        ]),
      );
      const attachments = await api.call('GET', `/v1.0/users/${alerts.mail}/messages/${ndr.id}/attachments`);
      expect(attachments.body.value).toEqual([
        expect.objectContaining({
          '@odata.type': '#microsoft.graph.itemAttachment',
          name: 'to a ghost',
          contentType: null,
        }),
      ]);
      // Sent: the submission is delivered (to whoever exists), not refused.
      expect(graph.submissions(alerts.mail)).toMatchObject({ delivered: 1, ndr: 0 });
    });
  });

  describe('client-set internetMessageId', () => {
    it('keeps it through delivery into the Inbox and Sent Items, and $filter finds it in Sent Items', async () => {
      const { graph, api } = await start();
      const id = '<attempt-7f3a.1@gateway.contoso.com>';
      const reply = await api.sendMail(alerts.mail, {
        subject: 'tracked',
        toRecipients: to(ops.mail),
        internetMessageId: id,
      });
      expect(reply.status).toBe(202);
      expect((await api.sendMail(alerts.mail, { subject: 'other', toRecipients: to(ops.mail) })).status).toBe(202);

      const received = (
        await api.list(ops.mail, 'inbox', '?$select=subject,internetMessageId,internetMessageHeaders')
      ).find((m) => m.subject === 'tracked');
      expect(received?.internetMessageId).toBe(id);
      expect(received?.internetMessageHeaders).toEqual(expect.arrayContaining([{ name: 'Message-ID', value: id }]));

      const found = await api.list(
        alerts.mail,
        'sentitems',
        `?$filter=internetMessageId eq '${encodeURIComponent(id)}'`,
      );
      expect(found.map((m) => [m.subject, m.internetMessageId])).toEqual([['tracked', id]]);
      const viaMessages = await api.call(
        'GET',
        `/v1.0/users/${alerts.mail}/messages?$filter=${encodeURIComponent(`internetMessageId eq '${id}'`)}`,
      );
      expect((viaMessages.body.value as MessageJson[]).map((m) => m.subject)).toEqual(['tracked']);
      const missing = await api.list(
        alerts.mail,
        'sentitems',
        `?$filter=${encodeURIComponent("internetMessageId eq '<never.sent@contoso.com>'")}`,
      );
      expect(missing).toEqual([]);
      expect(graph.submissions(alerts.mail).messages[0].internetMessageId).toBe(id);
    });

    it('keeps a draft’s internetMessageId when the draft is sent', async () => {
      const { graph, api } = await start();
      const id = '<draft.42@gateway.contoso.com>';
      const draft = await api.call('POST', `/v1.0/users/${alerts.mail}/messages`, {
        subject: 'drafted',
        toRecipients: to(ops.mail),
        internetMessageId: id,
      });
      expect(draft.status).toBe(201);
      expect(draft.body.internetMessageId).toBe(id);
      const sent = await api.call('POST', `/v1.0/users/${alerts.mail}/messages/${String(draft.body.id)}/send`);
      expect(sent.status).toBe(202);
      expect(graph.inbox(ops.mail)[0].internetMessageId).toBe(id);
      const found = await api.list(
        alerts.mail,
        'sentitems',
        `?$filter=internetMessageId eq '${encodeURIComponent(id)}'`,
      );
      expect(found.map((m) => m.subject)).toEqual(['drafted']);
    });

    it('refuses a malformed internetMessageId on sendMail and on a new draft', async () => {
      const { graph, api } = await start();
      for (const bad of ['no-brackets@contoso.com', '<no-at-sign>', '<two words@contoso.com>', '<@contoso.com>', 42]) {
        const send = await api.sendMail(alerts.mail, {
          subject: 'x',
          toRecipients: to(ops.mail),
          internetMessageId: bad,
        });
        expect(send.status).toBe(400);
        const draft = await api.call('POST', `/v1.0/users/${alerts.mail}/messages`, {
          subject: 'x',
          internetMessageId: bad,
        });
        expect(draft.status).toBe(400);
        if (typeof bad === 'string') {
          expect(errorCode(send)).toBe('InvalidInternetMessageId');
          expect(errorCode(draft)).toBe('InvalidInternetMessageId');
        } else {
          expect(errorCode(send)).toBe('RequestBodyRead');
        }
      }
      expect(graph.sendsAccepted(alerts.mail)).toBe(0);
      expect(graph.inbox(ops.mail)).toHaveLength(0);
    });

    it('answers 501 for any other $filter on message listings', async () => {
      const { api } = await start();
      for (const filter of ["subject eq 'x'", "internetMessageId ne '<a@b>'", 'internetMessageId eq <a@b>']) {
        const reply = await api.call(
          'GET',
          `/v1.0/users/${alerts.mail}/mailFolders/sentitems/messages?$filter=${encodeURIComponent(filter)}`,
        );
        expect(reply.status).toBe(501);
        expect(errorCode(reply)).toBe('NotImplemented');
      }
    });
  });
  describe("the mailbox's maximum message size (MaxSendSize)", () => {
    const attachment = (bytes: number) => ({
      '@odata.type': '#microsoft.graph.fileAttachment',
      name: 'data.bin',
      contentType: 'application/octet-stream',
      contentBytes: Buffer.alloc(bytes, 7).toString('base64'),
    });

    it('refuses a sendMail over it with 413 ErrorMessageSizeExceeded and sends nothing; one under it goes', async () => {
      const { graph, api } = await start();
      const over = await api.sendMail(small.mail, {
        subject: 'too big',
        toRecipients: to(ops.mail),
        attachments: [attachment(65 * 1024)],
      });
      expect(over.status).toBe(413);
      expect(over.body).toMatchObject({
        error: { code: 'ErrorMessageSizeExceeded', message: 'The message exceeds the maximum supported size.' },
      });
      expect(graph.sendsAccepted(small.mail)).toBe(0);

      const under = await api.sendMail(small.mail, {
        subject: 'fits',
        toRecipients: to(ops.mail),
        attachments: [attachment(60 * 1024)],
      });
      expect(under.status).toBe(202);
      expect(graph.inbox(ops.mail).map((m) => m.subject)).toContain('fits');
      expect(graph.inbox(ops.mail).map((m) => m.subject)).not.toContain('too big');
      // Another mailbox has Exchange Online's default, 35 MB.
      expect(
        (
          await api.sendMail(alerts.mail, {
            subject: 'ok',
            toRecipients: to(ops.mail),
            attachments: [attachment(65 * 1024)],
          })
        ).status,
      ).toBe(202);
      await graph.idleSubmissions();
    });

    it("refuses a draft's send over it the same way and leaves the draft in Drafts", async () => {
      const { graph, api } = await start();
      const draft = await api.call('POST', `/v1.0/users/${small.mail}/messages`, {
        subject: 'draft too big',
        toRecipients: to(ops.mail),
      });
      expect(draft.status).toBe(201);
      const id = String(draft.body.id);
      for (let i = 0; i < 2; i++) {
        const added = await api.call(
          'POST',
          `/v1.0/users/${small.mail}/messages/${id}/attachments`,
          attachment(40 * 1024),
        );
        expect(added.status).toBe(201);
      }
      const sent = await api.call('POST', `/v1.0/users/${small.mail}/messages/${id}/send`);
      expect(sent.status).toBe(413);
      expect(errorCode(sent)).toBe('ErrorMessageSizeExceeded');
      expect(graph.sendsAccepted(small.mail)).toBe(0);
      expect(
        graph
          .mailbox(small.mail)
          .listMessages('drafts')
          .map((m) => m.id),
      ).toContain(id);
    });
  });
});
