/**
 * Bounces end to end: a mail the outbox sent to an unknown recipient of the tenant comes back from Exchange as a
 * 550 5.1.1 NDR in the sender's Inbox; with the sender watched, the gateway announces it as exactly one
 * `mail.bounced` naming the outbox id, the recipient and its status code, and the mail's status shows `bounces`. An
 * NDR of a mail the gateway did not send is only a received mail. With BOUNCE_TRACKING=on a sender nobody watches
 * gets a bounce-only watch of its Inbox before its first mail goes: its bounces are announced, nothing else of its
 * Inbox is. Real SDKs, the emulators and this file's own Azurite; the functions host runs in its own process.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { deliverMail } from '../support/mailboxReads';
import type { CloudEvent } from '../../shared/events/cloudEvent';
import type { MailBouncedData } from '../../shared/outbox/bounces/bounces';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient, type GatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';
import { eventually, QueueReader } from '../support/watchSupport';

const SENDER = 'support@contoso.com';
/** Sends, but nobody watches it: BOUNCE_TRACKING watches it for bounces. */
const UNWATCHED = 'alerts@contoso.com';
const NDR_FROM = 'MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.com';

let env: TestCloud;
let host: FunctionsHostProcess;
let gateway: GatewayClient;
let events: QueueReader<CloudEvent<Record<string, unknown>>>;

beforeAll(async () => {
  env = await startTestCloud({
    privateStorage: true,
    users: ['alerts', 'support', 'it'],
    graph: { latencyMs: { min: 1, max: 4 } },
  });
  host = await startFunctionsHost({
    ...env.settings,
    ALLOWED_WATCH_MAILBOXES: `${SENDER},${UNWATCHED}`,
    BOUNCE_TRACKING: 'on',
  });
  gateway = gatewayClient(host);
  events = new QueueReader(env.settings.AzureWebJobsStorage, 'mail-events');
  expect((await gateway.watch(SENDER)).status).toBeLessThan(300);
});
afterAll(async () => {
  await host?.stop();
  await env?.close();
});

/** The events of `type` read so far. */
async function eventsOf(type: string): Promise<Array<CloudEvent<Record<string, unknown>>>> {
  return (await events.drain()).filter((e) => e.type === type);
}

/** Waits until the NDR in the sender's Inbox (by subject) was announced as received: the gateway has looked at it. */
async function receivedEventOf(subject: string): Promise<CloudEvent<Record<string, unknown>>> {
  return eventually(
    async () => (await eventsOf('mail.received')).find((e) => e.data.subject === subject),
    `mail.received of '${subject}'`,
    30_000,
  );
}

it('turns the 550 5.1.1 NDR of an outbox mail into exactly one mail.bounced and the status document shows bounces', async () => {
  const subject = `bounce-${randomUUID()}`;
  const sent = await gateway.send({
    from: SENDER,
    to: ['it@contoso.com', 'ghost@contoso.com'],
    subject,
    text: 'x',
  });
  expect(sent.status).toBe(202);
  const id = String(sent.body.id);

  const bounced = await eventually(
    async () => (await eventsOf('mail.bounced')).find((e) => e.data.id === id),
    `mail.bounced of ${id}`,
    30_000,
  );
  const status = await gateway.mailStatus<{ status: string; internetMessageId: string; bounces: unknown[] }>(id);
  const ndr = env.cloud.graph
    .mailbox(SENDER)
    .listMessages('inbox')
    .find((m) => m.subject === `Undeliverable: ${subject}`);
  expect(ndr).toBeDefined();
  const data = bounced.data as unknown as MailBouncedData;
  expect(data).toEqual({
    id,
    mailbox: SENDER,
    internetMessageId: status.internetMessageId,
    recipients: [
      { address: 'ghost@contoso.com', status: '5.1.1', diagnostic: '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found' },
    ],
    ndrMessageId: ndr!.id,
    receivedDateTime: ndr!.receivedDateTime,
  });
  expect(bounced.source).toBe(`/mailboxes/${SENDER}`);
  expect(bounced.subject).toBe(ndr!.id);
  expect(status.status).toBe('sent');
  expect(status.bounces).toEqual([
    { ndrMessageId: ndr!.id, receivedDateTime: ndr!.receivedDateTime, recipients: data.recipients },
  ]);

  // The NDR is also a mail of the watched Inbox; once that is announced too, the gateway is done with it: still one.
  await receivedEventOf(`Undeliverable: ${subject}`);
  await new Promise((r) => setTimeout(r, 1000));
  expect((await eventsOf('mail.bounced')).filter((e) => e.data.id === id)).toHaveLength(1);
  expect((await gateway.mailStatus<{ bounces: unknown[] }>(id)).bounces).toHaveLength(1);
});

it('publishes no mail.bounced for an NDR of a mail the gateway did not send, only its mail.received', async () => {
  const subject = `Undeliverable: foreign-${randomUUID()}`;
  // One refers to a Message-ID of another client, one to an outbox-shaped Message-ID of no outbox mail.
  const foreignIds = ['<CAF0-foreign-1@contoso.com>', `<${randomBytes(16).toString('hex')}.outbox@contoso.com>`];
  const delivered = foreignIds.map((messageId, i) =>
    env.cloud.graph.mailbox(SENDER).addMessage('inbox', {
      subject: `${subject} ${i}`,
      from: { emailAddress: { name: 'Microsoft Outlook', address: NDR_FROM } },
      toRecipients: [{ emailAddress: { address: SENDER } }],
      body: {
        contentType: 'html',
        content:
          '<p>Diagnostic information for administrators:</p>' +
          "<p>ghost@contoso.com<br>Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'</p>" +
          `<pre>Message-ID: ${messageId.replace(/</g, '&lt;').replace(/>/g, '&gt;')}</pre>`,
      },
      internetMessageHeaders: [
        { name: 'In-Reply-To', value: messageId },
        { name: 'X-MS-Exchange-Message-Is-Ndr', value: '' },
      ],
    }),
  );
  for (let i = 0; i < delivered.length; i++) await receivedEventOf(`${subject} ${i}`);
  await new Promise((r) => setTimeout(r, 1000));
  const ndrIds = new Set(delivered.map((m) => m.id));
  expect((await eventsOf('mail.bounced')).filter((e) => ndrIds.has(String(e.data.ndrMessageId)))).toEqual([]);
  expect(host.output()).toContain('report of a mail the gateway did not send');
});

it('with BOUNCE_TRACKING=on watches an unwatched sender for bounces only: one mail.bounced, no mail.received', async () => {
  const subject = `tracked-${randomUUID()}`;
  const sent = await gateway.send({ from: UNWATCHED, to: ['nobody.here@contoso.com'], subject, text: 'x' });
  expect(sent.status).toBe(202);
  const id = String(sent.body.id);
  const bounced = await eventually(
    async () => (await eventsOf('mail.bounced')).find((e) => e.data.id === id),
    `mail.bounced of ${id}`,
    30_000,
  );
  expect(bounced.data).toMatchObject({
    id,
    mailbox: UNWATCHED,
    recipients: [{ address: 'nobody.here@contoso.com', status: '5.1.1' }],
  });
  expect((await gateway.mailStatus<{ bounces: unknown[] }>(id)).bounces).toHaveLength(1);

  // The rest of that Inbox is not announced: an ordinary mail and a foreign NDR are looked at, and dropped.
  const ordinary = deliverMail(env, UNWATCHED);
  const foreign = env.cloud.graph.mailbox(UNWATCHED).addMessage('inbox', {
    subject: `Undeliverable: elsewhere-${randomUUID()}`,
    from: { emailAddress: { name: 'Microsoft Outlook', address: NDR_FROM } },
    toRecipients: [{ emailAddress: { address: UNWATCHED } }],
    body: { contentType: 'text', content: "x@contoso.com\nRemote Server returned '550 5.1.1 not found'" },
    internetMessageHeaders: [
      { name: 'In-Reply-To', value: '<not-ours@contoso.com>' },
      { name: 'X-MS-Exchange-Message-Is-Ndr', value: '' },
    ],
  });
  await eventually(
    () => host.output().includes(`notification for ${UNWATCHED}: ignored (no report; bounces only)`),
    'the ordinary mail looked at',
    30_000,
  );
  await eventually(
    () => host.output().includes('report of a mail the gateway did not send'),
    'the foreign NDR looked at',
    30_000,
  );
  await new Promise((r) => setTimeout(r, 1000));
  const all = await events.drain();
  expect(all.filter((e) => e.type === 'mail.received' && e.data.mailbox === UNWATCHED)).toEqual([]);
  expect(all.filter((e) => e.type === 'mail.bounced' && e.data.id === id)).toHaveLength(1);
  expect(all.filter((e) => [ordinary.id, foreign.id].includes(String(e.data.ndrMessageId)))).toEqual([]);

  // The watch is the gateway's own: the API shows it as bounce-only.
  const watched = await gateway.mailboxes<{ value?: Array<Record<string, unknown>> }>();
  expect(watched.status).toBe(200);
  expect(JSON.stringify(watched.body)).toContain('"bounceOnly":true');

  // Someone asks to watch it: from then on it is a full watch, and its mail is announced.
  expect((await gateway.watch(UNWATCHED)).status).toBeLessThan(300);
  const shown = await gateway.mailbox<Record<string, unknown>>(UNWATCHED);
  expect(shown.status).toBe(200);
  expect(shown.body.bounceOnly).toBeUndefined();
  const later = deliverMail(env, UNWATCHED);
  await eventually(
    async () => (await eventsOf('mail.received')).some((e) => e.data.messageId === later.id),
    'mail.received of a mail after the PUT',
    30_000,
  );
});
