/**
 * The outbox store against real storage (Azurite's table, queue and blob services through the Azure SDKs): what an
 * accepted mail leaves behind, scheduling through the queue's visibility delay, ETag-guarded updates, and that a
 * storage failure at any of the three writes leaves nothing behind.
 */
import { randomUUID } from 'node:crypto';
import { RestError, TableClient } from '@azure/data-tables';
import { ContainerClient } from '@azure/storage-blob';
import { QueueClient } from '@azure/storage-queue';
import { freePort, azuriteConnectionString as connectionStringFor } from '../emulators/azurite';
import {
  OUTBOX_RECORD_RETENTION_MS,
  OutboxRecordChangedError,
  OutboxStore,
  type NewOutboxMail,
} from '../../shared/outbox/outboxStore';
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

const PAYLOAD = Buffer.from(JSON.stringify({ from: 'alerts@contoso.com', subject: 's', text: 't', to: ['a@b.c'] }));

describe('the outbox store', () => {
  const live = azuriteConnectionString();

  it('stores the payload as a blob, the record in its table, and a message naming the mail on its queue', async () => {
    const n = names();
    const store = new OutboxStore(table(live, n.table), queue(live, n.queue), container(live, n.container));
    const accepted = mail();
    const now = Date.now();
    const record = await store.accept(accepted, PAYLOAD, now);

    expect(record).toMatchObject({ status: 'queued', attempts: 0, requestIds: [], createdAt: now });
    expect((await store.readPayload(accepted.id)).equals(PAYLOAD)).toBe(true);
    const stored = await store.get(accepted.id);
    expect(stored?.record).toEqual(record);
    expect(await queued(queue(live, n.queue))).toEqual([accepted.id]);
    expect(await store.get(randomUUID())).toBeUndefined();
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
});
