/**
 * The outbox processor called directly (no queue trigger wires it yet), with everything else real: the Graph
 * emulator through the Graph SDK and the token helper, the outbox, pacer and event ledger in Azurite. Each test
 * asserts on what the emulator accepted, so a duplicate or a missing send fails it.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import { ContainerClient } from '@azure/storage-blob';
import { QueueClient } from '@azure/storage-queue';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EventPublisher } from '../../shared/events/eventPublisher';
import { WebhookDeliveryError, WebhookSender } from '../../shared/events/webhookSender';
import { createServices } from '../../shared/app/services';
import { parseSendRequest } from '../../shared/mail/sendRequest';
import { parseThreadRequest } from '../../shared/mail/threadRequest';
import { MailboxPacer, PacerContentionError, type PacerLease } from '../../shared/pacing/mailboxPacer';
import { TenantBudget } from '../../shared/pacing/tenantBudget';
import {
  failAfterRetries,
  processOutboxMail,
  type OutboxProcessorDependencies,
} from '../../shared/outbox/process/outboxProcessor';
import { OutboxStore, type OutboxRecord } from '../../shared/outbox/store/outboxStore';
import { handleOutboxMessage } from '../../shared/outbox/process/outboxTrigger';
import { InvocationContext } from '@azure/functions';
import { startTestCloud, type TestCloud } from '../support/testEnv';
import { meddledTableClient } from '../support/meddledTable';

let env: TestCloud;
beforeAll(async () => {
  env = await startTestCloud({ graph: { latencyMs: { min: 0, max: 0 } } });
});
afterAll(async () => {
  await env?.close();
});

const SENDER = 'alerts@contoso.com';

interface Rig {
  /** The names' suffix of the rig's tables, queue and container (`outbox-{suffix}` is the queue). */
  suffix: string;
  deps: OutboxProcessorDependencies;
  store: OutboxStore;
  events: QueueClient;
}

/** A processor over fresh tables and queues, so that no test sees another's records, pacing or events. */
function rig(
  options: {
    messagesPerMinute?: number;
    recipientsPerDay?: number;
    leaseMs?: number;
    maxAgeMs?: number;
    now?: () => number;
  } = {},
): Rig {
  const cs = env.settings.AzureWebJobsStorage;
  const suffix = randomUUID().replace(/-/g, '').slice(0, 12);
  const table = (name: string) => TableClient.fromConnectionString(cs, name, { allowInsecureConnection: true });
  const store = new OutboxStore(
    table(`outbox${suffix}`),
    new QueueClient(cs, `outbox-${suffix}`),
    new ContainerClient(cs, `outbox-${suffix}`),
  );
  const events = new QueueClient(cs, `events-${suffix}`);
  const config = { ...env.config, outbox: { ...env.config.outbox, maxAgeMs: options.maxAgeMs ?? 24 * 3_600_000 } };
  const services = createServices(config, {
    outboxStore: store,
    pacer: new MailboxPacer(table(`pacing${suffix}`), {
      messagesPerMinute: options.messagesPerMinute ?? 30,
      recipientsPerDay: options.recipientsPerDay ?? 10_000,
      ...(options.leaseMs ? { leaseMs: options.leaseMs } : {}),
    }),
    publisher: new EventPublisher(table(`ledger${suffix}`), events, undefined),
    ...(options.now ? { now: options.now } : {}),
  });
  return { suffix, store, events, deps: services.outboxProcessor };
}

/** Accepts a mail into the rig's outbox as the HTTP handler would; returns its id. */
async function accept(
  { store }: Rig,
  body: Record<string, unknown> = {},
  createdAt = Date.now(),
  notBefore?: number,
  externalRecipients?: number,
): Promise<{ id: string; internetMessageId: string }> {
  const request = { from: SENDER, to: ['someone@contoso.com'], subject: 'Disk almost full', text: 'plain', ...body };
  const recipients = (['to', 'cc', 'bcc'] as const).reduce(
    (n, field) => n + ((request as unknown as Record<string, unknown[] | undefined>)[field]?.length ?? 0),
    0,
  );
  const id = randomUUID();
  const internetMessageId = `<${id}@mail-gateway.test>`;
  await store.accept(
    {
      id,
      mailbox: String(request.from),
      recipients,
      internetMessageId,
      saveToSentItems: (request as { saveToSentItems?: boolean }).saveToSentItems !== false,
      ...(notBefore !== undefined ? { notBefore } : {}),
      ...(externalRecipients !== undefined ? { externalRecipients } : {}),
    },
    Buffer.from(JSON.stringify(request)),
    createdAt,
  );
  return { id, internetMessageId };
}

async function eventsOf(queue: QueueClient): Promise<{ type: string; data: Record<string, unknown> }[]> {
  await queue.createIfNotExists();
  const { receivedMessageItems } = await queue.receiveMessages({ numberOfMessages: 32 });
  return receivedMessageItems.map(
    (m) =>
      JSON.parse(Buffer.from(m.messageText, 'base64').toString()) as { type: string; data: Record<string, unknown> },
  );
}

describe('the outbox processor', () => {
  it('sends a queued mail once, records sent with Graph request-id, and publishes mail.sent', async () => {
    const r = rig();
    const { id, internetMessageId } = await accept(r);
    const before = env.cloud.graph.sendsAccepted(SENDER);

    expect((await processOutboxMail(id, r.deps)).outcome).toBe('sent');
    // A redelivered message re-publishes the outcome (its first invocation may have died before publishing).
    expect((await processOutboxMail(id, r.deps)).outcome).toBe('republished');

    expect(env.cloud.graph.sendsAccepted(SENDER) - before).toBe(1);
    const { record } = (await r.store.get(id))!;
    expect(record).toMatchObject({ status: 'sent', attempts: 1 });
    expect(record.requestIds).toHaveLength(1);
    expect(record.attemptStartedAt).toBeUndefined();
    // The request's content (kept in the record, a small mail) is not kept once the mail is sent.
    expect(record.inlineRequest).toBeUndefined();
    expect(await r.store.hasPayload(id)).toBe(false);
    const inbox = env.cloud.graph.inbox('someone@contoso.com');
    expect(inbox.filter((m) => m.internetMessageId === internetMessageId)).toHaveLength(1);
    const events = await eventsOf(r.events);
    // The repeat is the same event (id, time, data), which consumers drop by id.
    expect(events.map((e) => [e.type, e.data.id, e.data.status])).toEqual([
      ['mail.sent', id, 'sent'],
      ['mail.sent', id, 'sent'],
    ]);
    expect(events[1]).toEqual(events[0]);
  });

  it('counts the table operations of a sent mail: 5 (record read, sending, final; pacer reserve, release)', async () => {
    const r = rig();
    const { id } = await accept(r);
    // Warm the rig's tables, so that only the mail's own operations are counted.
    await r.deps.pacer.peek(SENDER);
    const methods = ['getEntity', 'createEntity', 'updateEntity', 'upsertEntity', 'deleteEntity', 'submitTransaction'];
    const spies = methods.map((m) => jest.spyOn(TableClient.prototype, m as 'getEntity'));
    try {
      expect((await processOutboxMail(id, r.deps)).outcome).toBe('sent');
      const counts = Object.fromEntries(methods.map((m, i) => [m, spies[i].mock.calls.length]));
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      // Record: read, 'sending', final; pacer: reserve (the insert of the mailbox's first row: the peek above found
      // none, and the pacer keeps what it last read or wrote), release (a write on the ETag of the reserve's). The
      // event goes straight to the queue: the final write made this invocation the only one to finish the mail.
      expect({ total, counts }).toEqual({
        total: 5,
        counts: {
          getEntity: 1,
          createEntity: 1,
          updateEntity: 3,
          upsertEntity: 0,
          deleteEntity: 0,
          submitTransaction: 0,
        },
      });
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
  });

  it('two processes taking turns on a mailbox: stale kept pacer rows are caught by If-Match, every mail sent once', async () => {
    const r = rig({ messagesPerMinute: 600 });
    const cs = env.settings.AzureWebJobsStorage;
    const pacingTable = () =>
      TableClient.fromConnectionString(cs, `pacing${r.suffix}`, { allowInsecureConnection: true });
    // Another process: its own pacer (its own kept rows) over the same pacing table, the same outbox.
    const other: OutboxProcessorDependencies = {
      ...r.deps,
      pacer: new MailboxPacer(pacingTable(), { messagesPerMinute: 600, recipientsPerDay: 10_000 }),
    };
    const before = env.cloud.graph.sendsAccepted(SENDER);
    const mails = [];
    for (let i = 0; i < 6; i++) mails.push(await accept(r));
    for (const [i, { id }] of mails.entries()) {
      expect((await processOutboxMail(id, i % 2 === 0 ? r.deps : other)).outcome).toBe('sent');
    }
    expect(env.cloud.graph.sendsAccepted(SENDER) - before).toBe(6);
    // Each process's kept row was stale after the other's turn: its write got 412 and it decided again.
    expect(r.deps.pacer.conflictRetries + other.pacer.conflictRetries).toBeGreaterThan(0);
    // Nothing lost on the row: every mail counted, every lease given back.
    expect(await r.deps.pacer.peek(SENDER)).toMatchObject({ recipientsInWindow: 6, activeLeases: 0 });
    const events = await eventsOf(r.events);
    expect(events.map((e) => e.data.id).sort()).toEqual(mails.map((m) => m.id).sort());
  });

  it('publishes mail.sent once when the process dies between the final write and the publish: the redelivery does', async () => {
    const r = rig();
    const { id } = await accept(r);
    // The process "dies" right after the record says sent: its publish never happens.
    const dying = Object.create(r.deps.publisher) as EventPublisher;
    dying.publishOwned = () => Promise.reject(new Error('process died'));
    await expect(processOutboxMail(id, { ...r.deps, publisher: dying })).rejects.toThrow('process died');
    expect((await r.store.get(id))?.record.status).toBe('sent');
    expect(await eventsOf(r.events)).toEqual([]);

    const again = await processOutboxMail(id, r.deps);
    expect(again.outcome).toBe('republished');
    const events = await eventsOf(r.events);
    expect(events.map((e) => [e.type, e.data.id])).toEqual([['mail.sent', id]]);
  });

  it('with an events webhook that fails, the queue gets mail.sent once and the retry delivers it to the webhook', async () => {
    const r = rig();
    const { id } = await accept(r);
    const received: { id: string; type: string }[] = [];
    let refuse = true;
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        if (refuse) {
          res.writeHead(503).end();
          return;
        }
        received.push(JSON.parse(body) as { id: string; type: string });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const hook = new WebhookSender(`http://127.0.0.1:${port}/events`, `whsec_${randomBytes(24).toString('base64')}`, {
        attempts: 1,
        baseDelayMs: 1,
        maxDelayMs: 1,
        timeoutMs: 5_000,
      });
      const cs = env.settings.AzureWebJobsStorage;
      const ledger = TableClient.fromConnectionString(cs, `ledger${r.suffix}`, { allowInsecureConnection: true });
      const deps = { ...r.deps, publisher: new EventPublisher(ledger, r.events, hook) };

      await expect(processOutboxMail(id, deps)).rejects.toThrow(WebhookDeliveryError);
      expect((await r.store.get(id))?.record.status).toBe('sent');
      refuse = false;
      expect((await processOutboxMail(id, deps)).outcome).toBe('republished');

      const queued = await eventsOf(r.events);
      expect(queued.map((e) => [e.type, e.data.id])).toEqual([['mail.sent', id]]);
      expect(received.map((e) => e.type)).toEqual(['mail.sent']);
      expect(received[0].id).toBe((queued[0] as unknown as { id: string }).id);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('sends a request stored before attachment blobs existed (large base64 inline) through an upload session', async () => {
    const r = rig();
    const data = randomBytes(5 * 1024 * 1024 + 1);
    // What the outbox stored until now: the caller's request as it came, base64 inline.
    const { id, internetMessageId } = await accept(r, {
      attachments: [
        { name: 'old.bin', contentType: 'application/octet-stream', contentBase64: data.toString('base64') },
      ],
    });
    const calls = env.cloud.graph.requests.length;

    expect((await processOutboxMail(id, r.deps)).outcome).toBe('sent');
    const sent = env.cloud.graph.requests.slice(calls);
    expect(sent.filter((c) => c.method === 'PUT').map((c) => c.status)).toEqual([200, 201]);
    const [received] = env.cloud.graph
      .inbox('someone@contoso.com')
      .filter((m) => m.internetMessageId === internetMessageId);
    const attachment = Buffer.from(
      String(received.attachments.find((a) => a.name === 'old.bin')?.contentBytes),
      'base64',
    );
    expect(attachment.equals(data)).toBe(true);
    expect(await r.store.blobsOf(id)).toEqual([]);
  });

  it('sends a request whose attachments are blobs, large by upload session and small inline, then deletes them', async () => {
    const r = rig();
    const id = randomUUID();
    const internetMessageId = `<${id}@mail-gateway.test>`;
    const large = randomBytes(4 * 1024 * 1024 + 5);
    const small = randomBytes(100_000);
    // Staged as the body reader stages them: each attachment's base64 through a sink, in pieces.
    const attachments = r.store.stageAttachments(id);
    const references = [large, small].map((data) => {
      const sink = attachments.open();
      const base64 = Buffer.from(data.toString('base64'));
      for (let i = 0; i < base64.length; i += 100_003) sink.write(base64.subarray(i, i + 100_003));
      return sink.end();
    });
    const request = {
      from: SENDER,
      to: ['someone@contoso.com'],
      subject: 'blobs',
      text: 'see attachments',
      attachments: [
        { name: 'large.bin', contentType: 'application/octet-stream', contentBase64: references[0] },
        { name: 'small.bin', contentType: 'application/octet-stream', contentBase64: references[1] },
      ],
    };
    await r.store.accept(
      { id, mailbox: SENDER, recipients: 1, internetMessageId, saveToSentItems: true },
      { json: Buffer.from(JSON.stringify(request)), attachments },
    );
    expect(await r.store.blobsOf(id)).toHaveLength(3);

    expect((await processOutboxMail(id, r.deps)).outcome).toBe('sent');
    const [received] = env.cloud.graph
      .inbox('someone@contoso.com')
      .filter((m) => m.internetMessageId === internetMessageId);
    const bytes = (name: string) =>
      Buffer.from(String(received.attachments.find((a) => a.name === name)?.contentBytes), 'base64');
    expect(bytes('large.bin').equals(large)).toBe(true);
    expect(bytes('small.bin').equals(small)).toBe(true);
    expect(await r.store.blobsOf(id)).toEqual([]);
  });

  it('fails a mail Graph refuses for good, with the mapped problem and a mail.failed event', async () => {
    const r = rig();
    const { id } = await accept(r, { from: 'nobody@contoso.com' });

    expect((await processOutboxMail(id, r.deps)).outcome).toBe('failed');
    const { record } = (await r.store.get(id))!;
    expect(record.status).toBe('failed');
    expect(record.problem?.type).toMatch(/mailbox-not-found$/);
    expect(record.attemptStartedAt).toBeUndefined();
    expect(await r.store.hasPayload(id)).toBe(false);
    const events = await eventsOf(r.events);
    expect(events.map((e) => [e.type, (e.data.problem as { type: string }).type])).toEqual([
      ['mail.failed', expect.stringMatching(/mailbox-not-found$/)],
    ]);
  });

  it('after a crash between Graph accepting a mail and the record saying so, finds it in Sent Items and does not send again', async () => {
    const r = rig();
    const { id, internetMessageId } = await accept(r);
    // The interrupted attempt: its marker was written, and Graph accepted the mail, but nothing recorded the answer.
    const stored = (await r.store.get(id))!;
    await r.store.update(
      { ...stored.record, status: 'sending', attempts: 1, attemptStartedAt: Date.now() },
      stored.etag,
    );
    const request = { from: SENDER, to: ['someone@contoso.com'], subject: 's', text: 't' };
    const parsed = parseSendRequest(request);
    if (!parsed.ok) throw new Error('bad test request');
    await r.deps.sender.send({ ...parsed.request, internetMessageId });
    const before = env.cloud.graph.sendsAccepted(SENDER);

    expect((await processOutboxMail(id, r.deps)).outcome).toBe('sent');
    expect(env.cloud.graph.sendsAccepted(SENDER)).toBe(before);
    expect((await r.store.get(id))!.record).toMatchObject({ status: 'sent', attempts: 1 });
  });

  it('after a crash between Graph accepting a reply and the record saying so, finds it in Sent Items, does not send again and keeps the thread', async () => {
    const r = rig();
    const mailbox = 'support@contoso.com';
    const original = env.cloud.graph.mailbox(mailbox).addMessage('inbox', {
      subject: 'Printer on fire',
      from: { emailAddress: { address: 'someone@contoso.com' } },
      toRecipients: [{ emailAddress: { address: mailbox } }],
      body: { contentType: 'text', content: 'It is on fire.' },
      internetMessageId: `<${randomUUID()}@contoso.com>`,
    });
    const thread = { kind: 'reply' as const, messageId: original.id };
    const body = { text: 'We are on it.' };
    const id = randomUUID();
    const internetMessageId = `<${id}@mail-gateway.test>`;
    await r.store.accept(
      { id, mailbox, recipients: 1, internetMessageId, saveToSentItems: true, thread },
      Buffer.from(JSON.stringify(body)),
    );
    // The interrupted attempt: its marker was written, and Graph accepted the reply, but nothing recorded the answer.
    const stored = (await r.store.get(id))!;
    expect(stored.record.thread).toEqual(thread);
    await r.store.update(
      { ...stored.record, status: 'sending', attempts: 1, attemptStartedAt: Date.now() },
      stored.etag,
    );
    const parsed = parseThreadRequest('reply', mailbox, original.id, body);
    if (!parsed.ok) throw new Error('bad test request');
    await r.deps.sender.send({ ...parsed.request, internetMessageId });
    await env.cloud.graph.idleSubmissions();
    const before = env.cloud.graph.sendsAccepted(mailbox);

    expect((await processOutboxMail(id, r.deps)).outcome).toBe('sent');
    expect(env.cloud.graph.sendsAccepted(mailbox)).toBe(before);
    expect((await r.store.get(id))!.record).toMatchObject({
      status: 'sent',
      attempts: 1,
      thread,
      conversationId: original.conversationId,
    });
    const copies = env.cloud.graph
      .inbox('someone@contoso.com')
      .filter((m) => m.internetMessageId === internetMessageId);
    expect(copies.map((m) => [m.subject, m.conversationId])).toEqual([
      ['RE: Printer on fire', original.conversationId],
    ]);
    expect((await eventsOf(r.events)).map((e) => [e.type, e.data.inReplyTo, e.data.conversationId])).toEqual([
      ['mail.sent', { mailbox, messageId: original.id, kind: 'reply' }, original.conversationId],
    ]);
  });

  describe("while Exchange still holds the mail in the mailbox's Outbox (its 30-a-minute rate is used up)", () => {
    const HELD_SENDER = 'billing@contoso.com';

    /** Sends filler mail from the mailbox through Graph until Exchange holds one back, so the next one waits too. */
    async function useUpExchangeRate(r: Rig): Promise<void> {
      const filler = parseSendRequest({ from: HELD_SENDER, to: ['it@contoso.com'], subject: 'filler', text: 'f' });
      if (!filler.ok) throw new Error('bad test request');
      for (let i = 0; env.cloud.graph.submissions(HELD_SENDER).queued === 0; i++) {
        if (i > 100) throw new Error('Exchange never held a message back');
        await r.deps.sender.send(filler.request);
      }
    }

    /** The crash: the attempt marker is written and Graph accepts the mail (202), but nothing records the answer. */
    async function interruptedAfterGraphAccepted(r: Rig, saveToSentItems: boolean) {
      const request = { from: HELD_SENDER, to: ['someone@contoso.com'], subject: 'held', text: 't', saveToSentItems };
      const { id, internetMessageId } = await accept(r, request);
      const stored = (await r.store.get(id))!;
      await r.store.update(
        { ...stored.record, status: 'sending', attempts: 1, attemptStartedAt: Date.now() },
        stored.etag,
      );
      const parsed = parseSendRequest(request);
      if (!parsed.ok) throw new Error('bad test request');
      await r.deps.sender.send({ ...parsed.request, internetMessageId });
      const submission = env.cloud.graph
        .submissions(HELD_SENDER)
        .messages.find((m) => m.internetMessageId === internetMessageId);
      expect(submission?.outcome).toBe('queued');
      return { id, internetMessageId };
    }

    /** Lets Exchange's rate window pass, so that everything held leaves; returns the recipient's copies of the mail. */
    async function deliveredCopies(internetMessageId: string) {
      env.cloud.graph.clock.advance(2 * 60_000);
      await env.cloud.graph.idleSubmissions();
      return env.cloud.graph.inbox('someone@contoso.com').filter((m) => m.internetMessageId === internetMessageId);
    }

    it('finds an interrupted attempt in the Outbox, records it sent and does not send it again', async () => {
      const r = rig();
      await useUpExchangeRate(r);
      const { id, internetMessageId } = await interruptedAfterGraphAccepted(r, true);
      const before = env.cloud.graph.sendsAccepted(HELD_SENDER);

      expect((await processOutboxMail(id, r.deps)).outcome).toBe('sent');
      expect(env.cloud.graph.sendsAccepted(HELD_SENDER)).toBe(before);
      expect((await r.store.get(id))!.record).toMatchObject({ status: 'sent', attempts: 1 });
      expect((await eventsOf(r.events)).map((e) => [e.type, e.data.id])).toEqual([['mail.sent', id]]);
      expect(await deliveredCopies(internetMessageId)).toHaveLength(1);
    });

    it('with saveToSentItems false, still finds it in the Outbox and records it sent instead of outcome unknown', async () => {
      const r = rig();
      await useUpExchangeRate(r);
      const { id, internetMessageId } = await interruptedAfterGraphAccepted(r, false);
      const before = env.cloud.graph.sendsAccepted(HELD_SENDER);

      expect((await processOutboxMail(id, r.deps)).outcome).toBe('sent');
      expect(env.cloud.graph.sendsAccepted(HELD_SENDER)).toBe(before);
      expect((await r.store.get(id))!.record.status).toBe('sent');
      expect(await deliveredCopies(internetMessageId)).toHaveLength(1);
    });
  });

  it('retries an interrupted attempt that Sent Items shows never reached Exchange', async () => {
    const r = rig();
    const { id } = await accept(r);
    const stored = (await r.store.get(id))!;
    await r.store.update(
      { ...stored.record, status: 'sending', attempts: 1, attemptStartedAt: Date.now() },
      stored.etag,
    );
    const before = env.cloud.graph.sendsAccepted(SENDER);

    expect((await processOutboxMail(id, r.deps)).outcome).toBe('sent');
    expect(env.cloud.graph.sendsAccepted(SENDER) - before).toBe(1);
    expect((await r.store.get(id))!.record).toMatchObject({ status: 'sent', attempts: 2 });
  });

  it('marks an interrupted attempt without a Sent Items copy failed as outcome unknown, sending nothing', async () => {
    const r = rig();
    const { id } = await accept(r, { saveToSentItems: false });
    const stored = (await r.store.get(id))!;
    await r.store.update(
      { ...stored.record, status: 'sending', attempts: 1, attemptStartedAt: Date.now() },
      stored.etag,
    );
    const before = env.cloud.graph.sendsAccepted(SENDER);

    expect((await processOutboxMail(id, r.deps)).outcome).toBe('failed');
    expect(env.cloud.graph.sendsAccepted(SENDER)).toBe(before);
    expect((await r.store.get(id))!.record.problem?.type).toMatch(/outcome-unknown$/);
  });

  describe('when every queue try failed', () => {
    const tryFive = () => new InvocationContext({ triggerMetadata: { dequeueCount: 5 } });
    const brokenPacer = (r: Rig): OutboxProcessorDependencies => ({
      ...r.deps,
      pacer: {
        reserve: () => Promise.reject(new Error('Table storage unreachable: connect ECONNREFUSED')),
      } as unknown as MailboxPacer,
    });

    it('the last try records the mail failed with the reason and publishes mail.failed, instead of leaving it queued', async () => {
      const r = rig();
      const { id } = await accept(r);
      const before = env.cloud.graph.sendsAccepted(SENDER);
      // An earlier try is retried by the queue (the handler throws).
      await expect(
        handleOutboxMessage({ id }, new InvocationContext({ triggerMetadata: { dequeueCount: 4 } }), brokenPacer(r)),
      ).rejects.toThrow(/unreachable/);
      expect((await r.store.get(id))!.record.status).toBe('queued');

      await handleOutboxMessage({ id }, tryFive(), brokenPacer(r));
      const { record } = (await r.store.get(id))!;
      expect(record.status).toBe('failed');
      expect(record.problem?.type).toMatch(/outbox-retries-exhausted$/);
      expect(record.problem?.detail).toContain('Table storage unreachable');
      expect(env.cloud.graph.sendsAccepted(SENDER)).toBe(before);
      const events = await eventsOf(r.events);
      expect(events.map((e) => [e.type, e.data.id])).toEqual([['mail.failed', id]]);
    });

    it('says the outcome is unknown when the failing try had started an attempt (its marker is still there)', async () => {
      const r = rig();
      const { id } = await accept(r);
      const stored = (await r.store.get(id))!;
      await r.store.update(
        { ...stored.record, status: 'sending', attempts: 1, attemptStartedAt: Date.now() },
        stored.etag,
      );
      expect((await failAfterRetries(id, 5, 'the outcome could not be stored', r.deps)).outcome).toBe('failed');
      const { record } = (await r.store.get(id))!;
      expect(record.problem?.type).toMatch(/outcome-unknown$/);
      expect(record.problem?.detail).toContain('not sent again');
    });
  });

  it('fails a mail older than its max age without calling Graph', async () => {
    const r = rig({ maxAgeMs: 60_000 });
    const { id } = await accept(r, {}, Date.now() - 120_000);
    const before = env.cloud.graph.sendsAccepted(SENDER);

    expect((await processOutboxMail(id, r.deps)).outcome).toBe('failed');
    expect(env.cloud.graph.sendsAccepted(SENDER)).toBe(before);
    expect((await r.store.get(id))!.record.problem?.type).toMatch(/outbox-expired$/);
    expect((await eventsOf(r.events)).map((e) => e.type)).toEqual(['mail.failed']);
  });

  it.each([2, 7])(
    'sends a mail scheduled %i days ahead at its sendAt, counting its max age from then, not from its acceptance',
    async (days) => {
      const t0 = Date.now();
      let clock = t0;
      const r = rig({ now: () => clock }); // OUTBOX_MAX_AGE_HOURS' default, 24 h
      const sendAt = t0 + days * 86_400_000;
      const { id } = await accept(r, {}, t0, sendAt);
      expect((await r.store.get(id))!.record).toMatchObject({ status: 'scheduled', sendAt });
      const before = env.cloud.graph.sendsAccepted(SENDER);

      // Early (a message seen before its time): back on the queue, not failed.
      clock = sendAt - 60_000;
      expect((await processOutboxMail(id, r.deps)).outcome).toBe('requeued');
      // At its time, days after its acceptance: sent.
      clock = sendAt + 1000;
      const { outcome, record } = await processOutboxMail(id, r.deps);
      expect(record?.problem).toBeUndefined();
      expect(outcome).toBe('sent');
      expect(env.cloud.graph.sendsAccepted(SENDER) - before).toBe(1);
    },
  );

  it('fails a scheduled mail once its max age has passed since its sendAt', async () => {
    const t0 = Date.now();
    let clock = t0;
    const r = rig({ now: () => clock, maxAgeMs: 3_600_000 });
    const sendAt = t0 + 2 * 86_400_000;
    const { id } = await accept(r, {}, t0, sendAt);
    const before = env.cloud.graph.sendsAccepted(SENDER);

    clock = sendAt + 3_600_000 + 1000;
    expect((await processOutboxMail(id, r.deps)).outcome).toBe('failed');
    expect(env.cloud.graph.sendsAccepted(SENDER)).toBe(before);
    const { problem } = (await r.store.get(id))!.record;
    expect(problem?.type).toMatch(/outbox-expired$/);
    expect(problem?.detail).toContain('of being due');
  });

  it('waits in the process for a lease when all 4 are held: sent as soon as this process releases one, else re-queued after the wait', async () => {
    const r = rig();
    const held: PacerLease[] = [];
    for (let i = 0; i < 4; i++) {
      const grant = await r.deps.pacer.reserve(SENDER, 1);
      if (grant.kind !== 'granted') throw new Error(`lease ${i}: ${grant.kind}`);
      held.push(grant.lease);
    }
    const { id } = await accept(r);
    const started = Date.now();
    setTimeout(() => void r.deps.pacer.release(held.pop()!), 300);
    expect((await processOutboxMail(id, r.deps)).outcome).toBe('sent');
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(300);
    expect(took).toBeLessThan(3_000);

    // Nobody releases: after the wait the mail goes back on the queue, unsent.
    const other = await accept(r);
    const grant = await r.deps.pacer.reserve(SENDER, 1);
    if (grant.kind !== 'granted') throw new Error(grant.kind);
    const before = env.cloud.graph.sendsAccepted(SENDER);
    const waited = Date.now();
    expect((await processOutboxMail(other.id, { ...r.deps, leaseWaitMs: 600 })).outcome).toBe('requeued');
    expect(Date.now() - waited).toBeGreaterThanOrEqual(600);
    expect(env.cloud.graph.sendsAccepted(SENDER)).toBe(before);
  });

  it('puts a mail the pacer holds back on the queue again instead of sending it', async () => {
    const r = rig({ messagesPerMinute: 1 });
    const first = await accept(r);
    const second = await accept(r);
    const before = env.cloud.graph.sendsAccepted(SENDER);

    expect((await processOutboxMail(first.id, r.deps)).outcome).toBe('sent');
    expect((await processOutboxMail(second.id, r.deps)).outcome).toBe('requeued');
    expect(env.cloud.graph.sendsAccepted(SENDER) - before).toBe(1);
    const { record } = (await r.store.get(second.id))!;
    // Its status says when its slot is (61.5 s after the first at 1 per minute) and why it waits.
    expect(record).toMatchObject({ status: 'queued', attempts: 0, reason: 'rate' });
    expect(record.notBefore! - record.createdAt).toBeGreaterThan(60_000);
    expect(record.notBefore! - record.createdAt).toBeLessThan(63_000);
  });

  describe('when the decision to send is stale by the time the mail would reach Graph (a slow store, a long upload)', () => {
    /** Makes the stored request take `ms` of simulated time to read, running `meanwhile` in it. */
    function slowPayload(r: Rig, advance: (ms: number) => void, ms: number, meanwhile = async () => {}): void {
      const read = r.store.readRequest.bind(r.store);
      r.store.readRequest = async (record: OutboxRecord) => {
        advance(ms);
        await meanwhile();
        return read(record);
      };
    }

    it('counts the mail when it went to Graph, not when it was let go (renewed before submitting, moved at release)', async () => {
      const t0 = Date.now();
      let clock = t0;
      const r = rig({ messagesPerMinute: 1, now: () => clock });
      const { id } = await accept(r, {}, clock);
      slowPayload(r, (ms) => (clock += ms), 40_000);
      const before = env.cloud.graph.sendsAccepted(SENDER);

      expect((await processOutboxMail(id, r.deps)).outcome).toBe('sent');
      expect(env.cloud.graph.sendsAccepted(SENDER) - before).toBe(1);
      // Counted at t0 the minute would free at t0 + 61.5 s; counted at t0 + 40 s it frees 40 s later.
      const next = await r.deps.pacer.reserve(SENDER, 1, t0 + 61_600, t0 + 61_600);
      expect(next).toMatchObject({ kind: 'wait', reason: 'rate' });
      if (next.kind === 'wait') expect(t0 + 61_600 + next.retryAfterMs).toBeGreaterThanOrEqual(t0 + 40_000 + 61_000);
      expect((await r.deps.pacer.reserve(SENDER, 1, t0 + 102_000, t0 + 102_000)).kind).toBe('granted');
    });

    it('keeps a sent mail counted when its release fails, until its lease expires (the 31st mail in 60 s)', async () => {
      const t0 = Date.now();
      let clock = t0;
      const r = rig({ messagesPerMinute: 1, now: () => clock });
      // The release's writes all lose (or storage is away): the row keeps the grant as it was decided at t0.
      const pacer = Object.create(r.deps.pacer) as MailboxPacer;
      pacer.release = () => Promise.reject(new PacerContentionError(SENDER, 10));
      const { id } = await accept(r, {}, clock);
      // Graph accepts the mail 20 s after the decision (a slow read of the stored request).
      slowPayload(r, (ms) => (clock += ms), 20_000);

      expect((await processOutboxMail(id, { ...r.deps, pacer })).outcome).toBe('sent');
      // 62 s after the decision its count has left the sliding minute, but Graph's minute since the acceptance has
      // not: the lease still stands for the mail, so nothing more goes until it expires.
      const next = await r.deps.pacer.reserve(SENDER, 1, t0 + 62_000, t0 + 62_000);
      expect(next).toMatchObject({ kind: 'wait', reason: 'rate' });
      expect((await r.deps.pacer.reserve(SENDER, 1, t0 + r.deps.pacer.limits.leaseMs, t0)).kind).toBe('granted');
    });

    it('gives the attempt back, unsent, when renewing the stale decision loses to other instances every time', async () => {
      const t0 = Date.now();
      let clock = t0;
      const r = rig({ now: () => clock });
      // The renewal's read-decide-write rounds all lose (what a burst from the mailbox on other hosts does).
      const pacer = Object.create(r.deps.pacer) as MailboxPacer;
      pacer.renew = () => Promise.reject(new PacerContentionError(SENDER, 10));
      const deps = { ...r.deps, pacer, random: () => 0.5 };
      const { id } = await accept(r, {}, clock);
      slowPayload(r, (ms) => (clock += ms), 40_000);
      const before = env.cloud.graph.sendsAccepted(SENDER);

      expect((await processOutboxMail(id, deps)).outcome).toBe('requeued');
      expect(env.cloud.graph.sendsAccepted(SENDER) - before).toBe(0);
      const { record } = (await r.store.get(id))!;
      expect(record).toMatchObject({ status: 'queued', attempts: 0 });
      expect(record.attemptStartedAt).toBeUndefined();
    });

    it('gives the attempt back, unsent, when the minute filled up meanwhile', async () => {
      const t0 = Date.now();
      let clock = t0;
      // A 60 s lease: while it lives the pacer counts the stale grant as in flight, so the minute can only fill
      // without it once the lease has expired (an instance stalled for over a minute).
      const r = rig({ messagesPerMinute: 2, leaseMs: 60_000, now: () => clock });
      const { id } = await accept(r, {}, clock);
      // Another instance sends two mails once the first grant has left the minute, while this one is still busy.
      slowPayload(
        r,
        (ms) => (clock += ms),
        70_000,
        async () => {
          for (const at of [t0 + 65_000, t0 + 66_000]) {
            expect((await r.deps.pacer.reserve(SENDER, 1, at, at)).kind).toBe('granted');
          }
        },
      );
      const before = env.cloud.graph.sendsAccepted(SENDER);

      expect((await processOutboxMail(id, r.deps)).outcome).toBe('requeued');
      expect(env.cloud.graph.sendsAccepted(SENDER) - before).toBe(0);
      const { record } = (await r.store.get(id))!;
      expect(record).toMatchObject({ status: 'queued', attempts: 0 });
      expect(record.attemptStartedAt).toBeUndefined();
      // Its lease went back with it: only the other instance's two are held.
      expect((await r.deps.pacer.peek(SENDER, clock)).activeLeases).toBe(2);
    });
  });

  it('defers a mail over the daily recipient budget (status, notBefore, mail.deferred), sends no NDR, and sends it once capacity returns', async () => {
    let clock = Date.now();
    const r = rig({ recipientsPerDay: 3, maxAgeMs: 72 * 3_600_000, now: () => clock });
    const first = await accept(r, { to: ['someone@contoso.com', 'it@contoso.com'] }, clock);
    const second = await accept(r, { to: ['someone@contoso.com', 'support@contoso.com'] }, clock);
    const before = env.cloud.graph.sendsAccepted(SENDER);
    const ndrs = env.cloud.graph.ndrs.length;

    expect((await processOutboxMail(first.id, r.deps)).outcome).toBe('sent');
    clock += 3000; // past the first mail's message slot: the recipients are what holds the second back
    expect((await processOutboxMail(second.id, r.deps)).outcome).toBe('deferred');
    const deferred = (await r.store.get(second.id))!.record;
    expect(deferred).toMatchObject({ status: 'deferred', reason: 'dailyRecipients', attempts: 0 });
    // The first mail's two recipients leave the 24 h window a day after it went.
    expect(deferred.notBefore).toBeGreaterThan(clock + 23 * 3_600_000);
    expect(deferred.notBefore).toBeLessThanOrEqual(clock + 25 * 3_600_000);
    const events = await eventsOf(r.events);
    expect(events.map((e) => [e.type, e.data.id])).toEqual([
      ['mail.sent', first.id],
      ['mail.deferred', second.id],
    ]);
    expect(env.cloud.graph.sendsAccepted(SENDER) - before).toBe(1);

    // Too early: put back on the queue, not sent.
    expect((await processOutboxMail(second.id, r.deps)).outcome).toBe('requeued');
    clock = deferred.notBefore! + 1;
    expect((await processOutboxMail(second.id, r.deps)).outcome).toBe('sent');
    expect(env.cloud.graph.sendsAccepted(SENDER) - before).toBe(2);
    expect(env.cloud.graph.ndrs.length).toBe(ndrs);
    expect((await r.store.get(second.id))!.record).toMatchObject({ status: 'sent', attempts: 1 });
  });

  it("defers an external mail past the tenant's budget (reason tenantExternalRecipients, mail.deferred) while internal mail goes, and gives the count back when the mailbox holds a mail", async () => {
    let clock = Date.now();
    const r = rig({ messagesPerMinute: 2, now: () => clock });
    const tenant = new TenantBudget(
      TableClient.fromConnectionString(env.settings.AzureWebJobsStorage, `tenant${r.suffix}`, {
        allowInsecureConnection: true,
      }),
      2,
    );
    const deps = { ...r.deps, tenantBudget: tenant };
    const before = env.cloud.graph.sendsAccepted(SENDER);

    const external = await accept(r, { to: ['a@fabrikam.example', 'b@fabrikam.example'] }, clock, undefined, 2);
    const internal = await accept(r, { to: ['someone@contoso.com'] }, clock, undefined, 0);
    expect((await processOutboxMail(external.id, deps)).outcome).toBe('sent');
    expect((await processOutboxMail(internal.id, deps)).outcome).toBe('sent');
    expect(await tenant.used(clock)).toBe(2);

    clock += 61_000; // the mailbox's minute has room again: only the tenant holds the next one back
    const over = await accept(r, { to: ['c@fabrikam.example'] }, clock, undefined, 1);
    expect((await processOutboxMail(over.id, deps)).outcome).toBe('deferred');
    const deferred = (await r.store.get(over.id))!.record;
    expect(deferred).toMatchObject({ status: 'deferred', reason: 'tenantExternalRecipients', attempts: 0 });
    expect(deferred.notBefore).toBeGreaterThan(clock + 22 * 3_600_000);
    const events = await eventsOf(r.events);
    expect(events.filter((e) => e.type === 'mail.deferred').map((e) => [e.data.id, e.data.reason])).toEqual([
      [over.id, 'tenantExternalRecipients'],
    ]);
    expect(env.cloud.graph.sendsAccepted(SENDER) - before).toBe(2);

    // A day on the budget has room; a mail the mailbox's pace holds back gives its count back until it goes.
    clock += 24 * 3_600_000 + 10 * 60_000;
    const a = await accept(r, { to: ['d@fabrikam.example'] }, clock, undefined, 1);
    const b = await accept(r, { to: ['someone@contoso.com'] }, clock, undefined, 0);
    const c = await accept(r, { to: ['f@fabrikam.example'] }, clock, undefined, 1);
    expect((await processOutboxMail(a.id, deps)).outcome).toBe('sent');
    expect((await processOutboxMail(b.id, deps)).outcome).toBe('sent');
    expect((await processOutboxMail(c.id, deps)).outcome).toBe('requeued');
    expect(await tenant.used(clock)).toBe(1);
  });
});

describe('the outbox trigger', () => {
  /**
   * Runs the trigger's handler for mail `id`, counting the store reads, collecting the log lines and the visibility
   * delays of the messages it put back on the queue.
   */
  async function trigger(
    r: Rig,
    id: string,
    deps: Partial<OutboxProcessorDependencies> = {},
  ): Promise<{ lines: string[]; reads: number; delays: number[] }> {
    const lines: string[] = [];
    const delays: number[] = [];
    let reads = 0;
    const store = Object.create(r.store) as OutboxStore;
    store.get = (...args) => {
      reads += 1;
      return r.store.get(...args);
    };
    store.enqueue = (mailId, delayMs, slotAt) => {
      delays.push(delayMs);
      return r.store.enqueue(mailId, delayMs, slotAt);
    };
    const context = new InvocationContext({
      logHandler: (level, ...args) => lines.push(`${level}: ${args.map(String).join(' ')}`),
    });
    await handleOutboxMessage({ id }, context, { ...r.deps, ...deps, store });
    return { lines, reads, delays };
  }

  /**
   * A pacer whose row another instance changes after every read: every If-Match write fails with a real 412. The row
   * must exist for a read to be meddled with: another instance's reservation creates it, so that this pacer keeps no
   * row of its own and reads before each decision.
   */
  async function contendedPacer(): Promise<MailboxPacer> {
    const cs = env.settings.AzureWebJobsStorage;
    const name = `pacing${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    const client = () => TableClient.fromConnectionString(cs, name, { allowInsecureConnection: true });
    const limits = { messagesPerMinute: 30, recipientsPerDay: 10_000, maxAttempts: 2 };
    expect((await new MailboxPacer(client(), limits).reserve(SENDER, 1)).kind).toBe('granted');
    return new MailboxPacer(meddledTableClient(client), limits);
  }

  it('requeues a mail whose pacer row other instances keep changing, with jitter and one info line: no failure, no error', async () => {
    const r = rig();
    const pacer = await contendedPacer();
    const { id } = await accept(r);
    const before = env.cloud.graph.sendsAccepted(SENDER);

    const low = await trigger(r, id, { pacer, random: () => 0 });
    const high = await trigger(r, id, { pacer, random: () => 0.999 });

    for (const { lines } of [low, high]) {
      expect(lines).toEqual([
        expect.stringMatching(
          new RegExp(
            `^information: outbox mail ${id} for ${SENDER}: requeued; status queued, attempts 0, 1 recipient\\(s\\); waiting: pacer row busy .*$`,
          ),
        ),
      ]);
      expect(lines[0].length).toBeLessThan(300);
    }
    // Put back with a visibility delay of 1 s plus jitter, different for the two.
    expect(low.delays).toEqual([1000]);
    expect(high.delays).toHaveLength(1);
    expect(high.delays[0]).toBeGreaterThan(4000);
    expect(high.delays[0]).toBeLessThan(5000);
    const queue = new QueueClient(env.settings.AzureWebJobsStorage, `outbox-${r.suffix}`);
    // The accept's message and the two requeued ones; the requeued ones are hidden.
    expect((await queue.getProperties()).approximateMessagesCount).toBe(3);
    expect((await queue.peekMessages({ numberOfMessages: 32 })).peekedMessageItems).toHaveLength(1);
    // Nothing about the mail changed, and nothing was sent.
    expect((await r.store.get(id))!.record).toMatchObject({ status: 'queued', attempts: 0 });
    expect(env.cloud.graph.sendsAccepted(SENDER)).toBe(before);
  });

  it('logs the outcome from the record the processing left, reading the record once', async () => {
    const r = rig();
    const { id } = await accept(r);
    const { lines, reads } = await trigger(r, id);
    const { record } = (await r.store.get(id))!;
    expect(reads).toBe(1);
    expect(lines).toEqual([
      `information: outbox mail ${id} for ${SENDER}: sent; status sent, attempts 1, 1 recipient(s), request-id ${record.requestIds[0]}`,
    ]);
  });

  it('logs a requeue with what the mail waits for', async () => {
    const r = rig({ messagesPerMinute: 1 });
    await trigger(r, (await accept(r)).id);
    const { id } = await accept(r);
    const { lines, reads } = await trigger(r, id);
    expect(reads).toBe(1);
    expect(lines).toEqual([
      expect.stringMatching(
        new RegExp(
          `^information: outbox mail ${id} for ${SENDER}: requeued; status queued, attempts 0, .*; waiting: rate$`,
        ),
      ),
    ]);
  });

  it('logs a failure with its problem, as a warning for a 4xx', async () => {
    const r = rig();
    const { id } = await accept(r, { from: 'nobody@contoso.com' });
    const { lines, reads } = await trigger(r, id);
    expect(reads).toBe(1);
    expect(lines).toEqual([
      expect.stringMatching(
        new RegExp(`^warning: send failed for nobody@contoso.com: 422 mailbox-not-found; .* \\(outbox mail ${id}\\)$`),
      ),
    ]);
  });
});
