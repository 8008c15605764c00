/**
 * Stored mail that no queue message leads to (an accept interrupted between its record and its queue message) is
 * queued again by the housekeeping, against real storage (Azurite through the Azure SDKs).
 */
import { randomUUID } from 'node:crypto';
import { RestError, TableClient } from '@azure/data-tables';
import { ContainerClient } from '@azure/storage-blob';
import { QueueClient } from '@azure/storage-queue';
import type { InvocationContext } from '@azure/functions';
import { OutboxStore, type NewOutboxMail } from '../../shared/outbox/store/outboxStore';
import { requeueStrandedMail, STRANDED_AFTER_MS } from '../../shared/outbox/process/strandedMail';
import { requeueStranded } from '../../shared/app/housekeeping';
import { azuriteConnectionString } from '../support/testEnv';

const PAYLOAD = Buffer.from(JSON.stringify({ from: 'alerts@contoso.com', subject: 's', text: 't', to: ['a@b.c'] }));

/** A store on tables and queues of its own, and the raw clients under it. */
function rig(): { store: OutboxStore; table: TableClient; queue: QueueClient } {
  const live = azuriteConnectionString();
  const suffix = randomUUID().replace(/-/g, '').slice(0, 12);
  const table = TableClient.fromConnectionString(live, `outbox${suffix}`, {
    allowInsecureConnection: true,
    retryOptions: { maxRetries: 0 },
  });
  const queue = new QueueClient(live, `outbox-${suffix}`, { retryOptions: { maxTries: 1 } });
  const container = new ContainerClient(live, `outbox-${suffix}`, { retryOptions: { maxTries: 1 } });
  return { store: new OutboxStore(table, queue, container), table, queue };
}

function mail(overrides: Partial<NewOutboxMail> = {}): NewOutboxMail {
  return {
    id: randomUUID(),
    mailbox: 'alerts@contoso.com',
    recipients: 1,
    internetMessageId: `<${randomUUID()}@mail-gateway>`,
    saveToSentItems: true,
    ...overrides,
  };
}

/** Ids of the visible queue messages (hidden again for a second). */
async function queued(queue: QueueClient): Promise<string[]> {
  const { receivedMessageItems } = await queue.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 1 });
  return receivedMessageItems.map(
    (m) => (JSON.parse(Buffer.from(m.messageText, 'base64').toString()) as { id: string }).id,
  );
}

/**
 * Accepts `accepted` as an accept cut off after its record: the queue message cannot be written and neither can the
 * rollback's delete, which is what a process dying between the two leaves behind.
 */
async function interruptedAccept(
  r: ReturnType<typeof rig>,
  accepted: NewOutboxMail,
  at: number,
  keyed = true,
): Promise<void> {
  const send = r.queue.sendMessage.bind(r.queue);
  const remove = r.table.deleteEntity.bind(r.table);
  r.queue.sendMessage = () => Promise.reject(new RestError('connect ECONNREFUSED', { code: 'ECONNREFUSED' }));
  r.table.deleteEntity = () => Promise.reject(new RestError('connect ECONNREFUSED', { code: 'ECONNREFUSED' }));
  try {
    const claim = keyed ? { requestHash: randomUUID(), ttlMs: 86_400_000 } : undefined;
    await expect(r.store.acceptClaiming(accepted, PAYLOAD, at, claim)).rejects.toThrow('ECONNREFUSED');
  } finally {
    r.queue.sendMessage = send;
    r.table.deleteEntity = remove;
  }
}

describe('stranded outbox mail', () => {
  it('with an Idempotency-Key is queued again once due for STRANDED_AFTER_MS, once; the next run leaves it alone', async () => {
    const r = rig();
    const acceptedAt = Date.now() - STRANDED_AFTER_MS - 60_000;
    const stranded = mail();
    await interruptedAccept(r, stranded, acceptedAt);
    expect((await r.store.get(stranded.id))?.record.status).toBe('queued');
    expect(await queued(r.queue)).toEqual([]);

    // Not yet: a minute after the accept it may still be waiting behind its mailbox's backlog.
    expect(await requeueStrandedMail(r.store, acceptedAt + 60_000)).toEqual([]);
    expect(await queued(r.queue)).toEqual([]);

    const now = Date.now();
    expect(await requeueStrandedMail(r.store, now)).toEqual([stranded.id]);
    expect(await queued(r.queue)).toEqual([stranded.id]);
    expect((await r.store.get(stranded.id))?.record).toMatchObject({ status: 'queued', updatedAt: now });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(await requeueStrandedMail(r.store, Date.now())).toEqual([]);
  });

  it('leaves alone mail stored without an Idempotency-Key: its caller got an error, and its retry is another mail', async () => {
    const r = rig();
    const unkeyed = mail();
    await interruptedAccept(r, unkeyed, Date.now() - STRANDED_AFTER_MS - 60_000, false);
    expect((await r.store.get(unkeyed.id))?.record.status).toBe('queued');

    expect(await requeueStrandedMail(r.store, Date.now())).toEqual([]);
    expect(await queued(r.queue)).toEqual([]);
  });

  it('leaves alone mail a processor touched, mail scheduled for later, and finished mail', async () => {
    const r = rig();
    const longAgo = Date.now() - STRANDED_AFTER_MS - 60_000;
    const touched = mail();
    await r.store.acceptClaiming(touched, PAYLOAD, longAgo, { requestHash: 'h', ttlMs: 86_400_000 });
    const stored = (await r.store.get(touched.id))!;
    await r.store.update({ ...stored.record, updatedAt: longAgo + 1_000, notBefore: longAgo + 5_000 }, stored.etag);
    const later = mail({ notBefore: Date.now() + 3_600_000 });
    await interruptedAccept(r, later, longAgo);
    const finished = mail();
    await interruptedAccept(r, finished, longAgo);
    const done = (await r.store.get(finished.id))!;
    await r.store.update({ ...done.record, status: 'sent', attempts: 1, updatedAt: longAgo + 2_000 }, done.etag);

    expect(await requeueStrandedMail(r.store, Date.now())).toEqual([]);
  });

  it('is named in a warning by the housekeeping, which never throws when storage fails', async () => {
    const r = rig();
    const stranded = mail();
    await interruptedAccept(r, stranded, Date.now() - STRANDED_AFTER_MS - 60_000);
    const warnings: string[] = [];
    const context = { warn: (m: string) => warnings.push(m) } as unknown as InvocationContext;

    expect(await requeueStranded(context, r.store)).toBe(1);
    expect(warnings).toEqual([
      `outbox: mail ${stranded.id} had no queue message (its accept was interrupted after storing it); queued again`,
    ]);

    r.table.listEntities = () => {
      throw new RestError('connect ECONNREFUSED', { code: 'ECONNREFUSED' });
    };
    expect(await requeueStranded(context, r.store)).toBe(0);
    expect(warnings.at(-1)).toMatch(/^looking for outbox mail without a queue message failed: connect ECONNREFUSED/);
  });
});
