/**
 * The outbox store against real storage (Azurite's table, queue and blob services through the Azure SDKs): what an
 * accepted mail leaves behind, scheduling through the queue's visibility delay, ETag-guarded updates, and that a
 * storage failure at any of the three writes leaves nothing behind.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { RestError, TableClient } from '@azure/data-tables';
import { ContainerClient } from '@azure/storage-blob';
import { QueueClient } from '@azure/storage-queue';
import { freePort, azuriteConnectionString as connectionStringFor } from '../emulators/azurite';
import {
  OUTBOX_RECORD_RETENTION_MS,
  OutboxRecordChangedError,
  INLINE_REQUEST_MAX_BYTES,
  OutboxStore,
  type NewOutboxMail,
  type RequestToStore,
} from '../../shared/outbox/store/outboxStore';
import { mailIdForKey } from '../../shared/outbox/accept/requestHash';
import { azuriteConnectionString } from '../support/testEnv';

/** Fresh names per test: nothing else reads these queues, and no test sees another's rows. */
function names(): { table: string; queue: string; container: string } {
  const suffix = randomUUID().replace(/-/g, '').slice(0, 12);
  return { table: `outbox${suffix}`, queue: `outbox-${suffix}`, container: `outbox-${suffix}` };
}

function table(connectionString: string, name: string): TableClient {
  return TableClient.fromConnectionString(connectionString, name, {
    allowInsecureConnection: true,
    retryOptions: { maxRetries: 0 },
  });
}

function queue(connectionString: string, name: string): QueueClient {
  return new QueueClient(connectionString, name, { retryOptions: { maxTries: 1 } });
}

function container(connectionString: string, name: string): ContainerClient {
  return new ContainerClient(connectionString, name, { retryOptions: { maxTries: 1 } });
}

function mail(overrides: Partial<NewOutboxMail> = {}): NewOutboxMail {
  return {
    id: randomUUID(),
    mailbox: 'alerts@contoso.com',
    recipients: 2,
    internetMessageId: `<${randomUUID()}@mail-gateway>`,
    saveToSentItems: true,
    ...overrides,
  };
}

async function queued(client: QueueClient): Promise<string[]> {
  const { receivedMessageItems } = await client.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 1 });
  return receivedMessageItems.map(
    (m) => (JSON.parse(Buffer.from(m.messageText, 'base64').toString()) as { id: string }).id,
  );
}

/** Stages `data` as mail `id`'s first large attachment, as the body reader does; returns the request to store. */
async function withAttachment(store: OutboxStore, id: string, data: Buffer): Promise<RequestToStore> {
  const attachments = store.stageAttachments(id);
  const sink = attachments.open();
  const base64 = Buffer.from(data.toString('base64'));
  // In pieces that cut base64 groups, flushed after each as the reader does after each body chunk.
  for (let i = 0; i < base64.length; i += 65_537) {
    sink.write(base64.subarray(i, i + 65_537));
    await attachments.flush();
  }
  const reference = sink.end();
  const json = { from: 'alerts@contoso.com', to: ['a@b.c'], text: 't', attachments: [{ contentBase64: reference }] };
  return { json: Buffer.from(JSON.stringify(json)), attachments };
}

/** Names of every blob in `name` (uncommitted ones too). */
async function blobNames(connectionString: string, name: string): Promise<string[]> {
  const names: string[] = [];
  const client = container(connectionString, name);
  if (!(await client.exists())) return names;
  for await (const blob of client.listBlobsFlat({ includeUncommitedBlobs: true })) names.push(blob.name);
  return names.sort();
}

const PAYLOAD = Buffer.from(JSON.stringify({ from: 'alerts@contoso.com', subject: 's', text: 't', to: ['a@b.c'] }));

describe('the outbox store', () => {
  const live = azuriteConnectionString();

  it('keeps a small request in the record itself: no blob, the record in its table, a message naming the mail', async () => {
    const n = names();
    const store = new OutboxStore(table(live, n.table), queue(live, n.queue), container(live, n.container));
    const accepted = mail();
    const now = Date.now();
    const record = await store.accept(accepted, PAYLOAD, now);

    expect(record).toMatchObject({ status: 'queued', attempts: 0, requestIds: [], createdAt: now });
    expect(record.inlineRequest).toBe(PAYLOAD.toString());
    expect(await blobNames(live, n.container)).toEqual([]);
    expect((await store.readPayload(accepted.id)).equals(PAYLOAD)).toBe(true);
    expect(await store.readRequest(record)).toEqual(JSON.parse(PAYLOAD.toString()));
    const stored = await store.get(accepted.id);
    expect(stored?.record).toEqual(record);
    expect(await queued(queue(live, n.queue))).toEqual([accepted.id]);
    expect(await store.get(randomUUID())).toBeUndefined();
  });

  it('stores a request over INLINE_REQUEST_MAX_BYTES as a blob, and reads it back as it downloads', async () => {
    const n = names();
    const store = new OutboxStore(table(live, n.table), queue(live, n.queue), container(live, n.container));
    const accepted = mail();
    const big = { from: 'alerts@contoso.com', to: ['a@b.c'], html: `<p>${'x'.repeat(INLINE_REQUEST_MAX_BYTES)}</p>` };
    const payload = Buffer.from(JSON.stringify(big));
    const record = await store.accept(accepted, payload);

    expect(record.inlineRequest).toBeUndefined();
    expect(await store.blobsOf(accepted.id)).toEqual([`${accepted.id}.json`]);
    expect(await store.readRequest(record)).toEqual(big);
  });

  it('schedules a mail with notBefore: status scheduled, and its queue message stays hidden until then', async () => {
    const n = names();
    const store = new OutboxStore(table(live, n.table), queue(live, n.queue), container(live, n.container));
    const accepted = mail({ notBefore: Date.now() + 3_600_000 });
    const record = await store.accept(accepted, PAYLOAD);

    expect(record).toMatchObject({ status: 'scheduled', reason: 'sendAt', notBefore: accepted.notBefore });
    expect(await queued(queue(live, n.queue))).toEqual([]);
    const peeked = await queue(live, n.queue).getProperties();
    expect(peeked.approximateMessagesCount).toBe(1);
  });

  it('updates a record only at the ETag it was read with, and a Replace clears fields left out', async () => {
    const n = names();
    const store = new OutboxStore(table(live, n.table), queue(live, n.queue), container(live, n.container));
    const accepted = mail({ notBefore: Date.now() + 60_000 });
    await store.accept(accepted, PAYLOAD);
    const first = (await store.get(accepted.id))!;
    const rest = { ...first.record };
    delete rest.notBefore;
    delete rest.reason;
    await store.update(
      { ...rest, status: 'sending', attempts: 1, attemptStartedAt: 5, requestIds: ['r1'] },
      first.etag,
    );

    await expect(store.update({ ...first.record, status: 'failed' }, first.etag)).rejects.toBeInstanceOf(
      OutboxRecordChangedError,
    );
    const now = (await store.get(accepted.id))!.record;
    expect(now).toMatchObject({ status: 'sending', attempts: 1, attemptStartedAt: 5, requestIds: ['r1'] });
    expect(now.notBefore).toBeUndefined();
    expect(now.reason).toBeUndefined();
  });

  it('keeps a finished record for the retention period after it finished, and never purges a mail on its way', async () => {
    const n = names();
    const store = new OutboxStore(table(live, n.table), queue(live, n.queue), container(live, n.container));
    const accepted = Date.now() - 30 * 86_400_000;
    const finishedAt = accepted + 60_000;
    const [sent, failed, waiting] = [mail(), mail(), mail()];
    for (const m of [sent, failed, waiting]) await store.accept(m, PAYLOAD, accepted);
    const finish = async (id: string, status: 'sent' | 'failed') => {
      const { record, etag } = (await store.get(id))!;
      await store.update({ ...record, status, updatedAt: finishedAt }, etag);
    };
    await finish(sent.id, 'sent');
    await finish(failed.id, 'failed');
    const rows = table(live, n.table);
    const expiry = async (id: string) =>
      (await rows.getEntity<{ expiresAt?: Date }>(encodeURIComponent(id), '')).expiresAt?.getTime();
    expect(await expiry(sent.id)).toBe(finishedAt + OUTBOX_RECORD_RETENTION_MS);
    expect(await expiry(waiting.id)).toBeUndefined();

    // A moment before the period is over nothing goes; after it the finished ones go, the waiting one (a month old)
    // stays.
    expect(await store.purgeExpired(new Date(finishedAt + OUTBOX_RECORD_RETENTION_MS - 1000))).toBe(0);
    expect(await store.purgeExpired(new Date(finishedAt + OUTBOX_RECORD_RETENTION_MS + 1000))).toBe(2);
    expect(await store.get(sent.id)).toBeUndefined();
    expect(await store.get(failed.id)).toBeUndefined();
    expect((await store.get(waiting.id))?.record.status).toBe('queued');
  });

  it('fails at once, writing nothing, when storage is unreachable', async () => {
    const n = names();
    const closed = await freePort();
    const down = connectionStringFor(closed, closed, closed);
    const store = new OutboxStore(table(down, n.table), queue(down, n.queue), container(down, n.container));
    await expect(store.accept(mail(), PAYLOAD)).rejects.toThrow();
  });

  // The outage starts between two of the three writes: the failing SDK call is made to reject as it would when
  // the service stops answering, and the other writes go to Azurite for real.
  it('removes the blob again when the record cannot be written', async () => {
    const n = names();
    const records = table(live, n.table);
    const store = new OutboxStore(records, queue(live, n.queue), container(live, n.container));
    await store.accept(mail(), PAYLOAD);
    records.createEntity = () => Promise.reject(new RestError('connect ECONNREFUSED', { code: 'ECONNREFUSED' }));
    const accepted = mail();

    await expect(store.accept(accepted, PAYLOAD)).rejects.toThrow('ECONNREFUSED');
    expect(await store.hasPayload(accepted.id)).toBe(false);
    expect(await store.get(accepted.id)).toBeUndefined();
    expect(await queued(queue(live, n.queue))).toHaveLength(1);
  });

  it('removes the record and the blob again when the queue message cannot be written', async () => {
    const n = names();
    const messages = queue(live, n.queue);
    const store = new OutboxStore(table(live, n.table), messages, container(live, n.container));
    await store.accept(mail(), PAYLOAD);
    messages.sendMessage = () => Promise.reject(new RestError('connect ECONNREFUSED', { code: 'ECONNREFUSED' }));
    const accepted = mail();

    await expect(store.accept(accepted, PAYLOAD)).rejects.toThrow('ECONNREFUSED');
    expect(await store.get(accepted.id)).toBeUndefined();
    expect(await store.hasPayload(accepted.id)).toBe(false);
    expect(await queued(queue(live, n.queue))).toHaveLength(1);
  });

  it('claims an Idempotency-Key with the record insert alone: a second accept of the id finds the first, writing nothing', async () => {
    const n = names();
    const records = table(live, n.table);
    const store = new OutboxStore(records, queue(live, n.queue), container(live, n.container));
    const id = mailIdForKey(`key-${randomUUID()}`);
    const claim = { requestHash: 'hash-a', ttlMs: 60_000 };
    const now = Date.now();
    // Count the table writes of a keyed accept: one, the insert.
    const writes: string[] = [];
    for (const method of ['createEntity', 'updateEntity', 'upsertEntity', 'deleteEntity'] as const) {
      const original = records[method].bind(records) as (...args: unknown[]) => Promise<unknown>;
      (records as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
        writes.push(method);
        return original(...args);
      };
    }
    const first = await store.acceptClaiming(mail({ id }), PAYLOAD, now, claim);
    expect(first.kind).toBe('stored');
    expect(writes).toEqual(['createEntity']);
    expect((await store.get(id))?.record.idempotency).toEqual({ requestHash: 'hash-a', expiresAt: now + 60_000 });

    const again = await store.acceptClaiming(mail({ id }), Buffer.from('{"other":1}'), now + 1, claim);
    expect(again).toMatchObject({ kind: 'taken', existing: { id, idempotency: { requestHash: 'hash-a' } } });
    expect(writes).toEqual(['createEntity', 'createEntity']); // the second insert was refused (409)
    expect(await queued(queue(live, n.queue))).toEqual([id]);
    expect((await store.readPayload(id)).equals(PAYLOAD)).toBe(true);
  });

  it('frees a key whose accept failed, and lets a finished mail whose key expired give the key to a new one', async () => {
    const n = names();
    const messages = queue(live, n.queue);
    const store = new OutboxStore(table(live, n.table), messages, container(live, n.container));
    const id = mailIdForKey(`key-${randomUUID()}`);
    const claim = { requestHash: 'h', ttlMs: 1_000 };
    const send = messages.sendMessage.bind(messages);
    messages.sendMessage = () => Promise.reject(new RestError('connect ECONNREFUSED', { code: 'ECONNREFUSED' }));
    await expect(store.acceptClaiming(mail({ id }), PAYLOAD, Date.now(), claim)).rejects.toThrow('ECONNREFUSED');
    expect(await store.get(id)).toBeUndefined();
    messages.sendMessage = send;

    const now = Date.now();
    expect((await store.acceptClaiming(mail({ id }), PAYLOAD, now, claim)).kind).toBe('stored');
    // Expired but still on its way: the key stays with the mail.
    expect((await store.acceptClaiming(mail({ id }), PAYLOAD, now + 2_000, claim)).kind).toBe('taken');
    const stored = (await store.get(id))!;
    await store.update({ ...stored.record, status: 'sent', sentAt: now, updatedAt: now }, stored.etag);
    const replaced = await store.acceptClaiming(mail({ id }), PAYLOAD, now + 2_000, {
      requestHash: 'h2',
      ttlMs: 1_000,
    });
    expect(replaced.kind).toBe('stored');
    expect((await store.get(id))?.record).toMatchObject({ status: 'queued', idempotency: { requestHash: 'h2' } });
  });

  it('commits a staged attachment blob with the request; it reads back by range and whole', async () => {
    const n = names();
    const store = new OutboxStore(table(live, n.table), queue(live, n.queue), container(live, n.container));
    const accepted = mail();
    const data = randomBytes(5 * 1024 * 1024 + 3);
    await store.accept(accepted, await withAttachment(store, accepted.id, data));

    const blobName = `${accepted.id}.attachment-0`;
    expect(await blobNames(live, n.container)).toEqual([blobName, `${accepted.id}.json`]);
    expect((await store.readAttachment(blobName)).equals(data)).toBe(true);
    const into = Buffer.alloc(4 * 1024 * 1024);
    const range = await store.readAttachmentRange(blobName, 4 * 1024 * 1024 - 1, 5 * 1024 * 1024 + 3, into);
    expect(range.equals(data.subarray(4 * 1024 * 1024 - 1))).toBe(true);
    expect(JSON.parse((await store.readPayload(accepted.id)).toString())).toMatchObject({
      attachments: [{ contentBase64: { $blob: blobName, size: data.length } }],
    });
  });

  it('removes committed attachment blobs again when the record cannot be written', async () => {
    const n = names();
    const records = table(live, n.table);
    const store = new OutboxStore(records, queue(live, n.queue), container(live, n.container));
    records.createEntity = () => Promise.reject(new RestError('connect ECONNREFUSED', { code: 'ECONNREFUSED' }));
    const accepted = mail();

    await expect(
      store.accept(accepted, await withAttachment(store, accepted.id, randomBytes(3 * 1024 * 1024))),
    ).rejects.toThrow('ECONNREFUSED');
    expect(await blobNames(live, n.container)).toEqual([]);
    expect(await queued(queue(live, n.queue))).toEqual([]);
  });

  it("purges a finished mail's leftover attachment blobs with its record, and keeps those of a mail on its way", async () => {
    const n = names();
    const store = new OutboxStore(table(live, n.table), queue(live, n.queue), container(live, n.container));
    const accepted = Date.now() - 30 * 86_400_000;
    const [finished, waiting] = [mail(), mail()];
    for (const m of [finished, waiting])
      await store.accept(m, await withAttachment(store, m.id, randomBytes(200_000)), accepted);
    // Finished, but its blobs are still there (the processor's delete failed).
    const { record, etag } = (await store.get(finished.id))!;
    await store.update({ ...record, status: 'sent', updatedAt: accepted + 60_000 }, etag);
    expect(await store.blobsOf(finished.id)).toHaveLength(2);

    expect(await store.purgeExpired(new Date(accepted + 60_000 + OUTBOX_RECORD_RETENTION_MS + 1000))).toBe(1);
    expect(await store.get(finished.id)).toBeUndefined();
    expect(await blobNames(live, n.container)).toEqual([`${waiting.id}.attachment-0`, `${waiting.id}.json`]);
  });
});
