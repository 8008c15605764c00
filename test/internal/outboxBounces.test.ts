/**
 * Matching reports to outbox mail (shared/outbox/bounces/bounces.ts) against real storage (Azurite through the Azure SDKs):
 * the Message-ID names the outbox id, but only a record of the same mailbox with that very Message-ID counts; a report
 * seen twice is recorded and published once; a report that overtakes the processor is retried.
 */
import { randomUUID } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import { ContainerClient } from '@azure/storage-blob';
import { QueueClient } from '@azure/storage-queue';
import { EventPublisher } from '../../shared/events/eventPublisher';
import { BounceTooEarlyError, OutboxBounces, outboxIdOf } from '../../shared/outbox/bounces/bounces';
import { OutboxStore } from '../../shared/outbox/store/outboxStore';
import type { ReceivedReport } from '../../shared/watch/bounces/bounceCheck';
import { azuriteConnectionString } from '../support/testEnv';

const live = azuriteConnectionString();

function rig() {
  const suffix = randomUUID().replace(/-/g, '').slice(0, 12);
  const table = (name: string) => TableClient.fromConnectionString(live, name, { allowInsecureConnection: true });
  const store = new OutboxStore(
    table(`outbox${suffix}`),
    new QueueClient(live, `outbox-${suffix}`),
    new ContainerClient(live, `outbox-${suffix}`),
  );
  const events = new QueueClient(live, `events-${suffix}`);
  const publisher = new EventPublisher(table(`events${suffix}`), events, undefined);
  return { store, events, bounces: new OutboxBounces(store, publisher) };
}

/** A mail accepted as the send handler does (its Message-ID holding its id), then moved to `status`. */
async function sentMail(store: OutboxStore, status: 'sent' | 'sending' = 'sent') {
  const id = randomUUID();
  const internetMessageId = `<${id.replace(/-/g, '')}.outbox@contoso.com>`;
  await store.accept(
    { id, mailbox: 'alerts@contoso.com', recipients: 1, internetMessageId, saveToSentItems: true },
    Buffer.from('{}'),
  );
  const stored = (await store.get(id))!;
  await store.update({ ...stored.record, status }, stored.etag);
  return { id, internetMessageId };
}

function report(internetMessageId: string, overrides: Partial<ReceivedReport> = {}): ReceivedReport {
  return {
    mailbox: 'alerts@contoso.com',
    ndrMessageId: `AAMkAG${randomUUID()}`,
    receivedDateTime: '2026-12-07T12:00:00Z',
    report: {
      originalMessageIds: [internetMessageId],
      recipients: [{ address: 'ghost@contoso.com', status: '5.1.1' }],
    },
    ...overrides,
  };
}

async function eventCount(events: QueueClient): Promise<number> {
  if (!(await events.exists())) return 0;
  return (await events.getProperties()).approximateMessagesCount ?? 0;
}

describe('outbox bounces', () => {
  it('reads the outbox id from its Message-ID and nothing from any other', () => {
    expect(outboxIdOf('<0123456789ABCDEF0123456789abcdef.outbox@contoso.com>')).toBe(
      '01234567-89ab-cdef-0123-456789abcdef',
    );
    expect(outboxIdOf('<0123456789abcdef.outbox@contoso.com>')).toBeUndefined();
    expect(outboxIdOf('<0123456789abcdef0123456789abcdef@contoso.com>')).toBeUndefined();
  });

  it('records and publishes a report once, however often it is seen', async () => {
    const { store, events, bounces } = rig();
    const mail = await sentMail(store);
    const seen = report(mail.internetMessageId);
    expect(await bounces.handle(seen)).toBe(`mail.bounced for ${mail.id}: published`);
    expect(await bounces.handle(seen)).toBe(`mail.bounced for ${mail.id}: duplicate`);
    expect((await store.get(mail.id))!.record.bounces).toEqual([
      { ndrMessageId: seen.ndrMessageId, receivedDateTime: seen.receivedDateTime, recipients: seen.report.recipients },
    ]);
    expect(await eventCount(events)).toBe(1);
  });

  it('ignores a report from another mailbox, or naming an outbox id whose record has another Message-ID', async () => {
    const { store, events, bounces } = rig();
    const mail = await sentMail(store);
    expect(await bounces.handle(report(mail.internetMessageId, { mailbox: 'billing@contoso.com' }))).toBe(
      'report of a mail the gateway did not send',
    );
    const forged = mail.internetMessageId.replace('@contoso.com', '@fabrikam.example');
    expect(await bounces.handle(report(forged))).toBe('report of a mail the gateway did not send');
    expect((await store.get(mail.id))!.record.bounces).toBeUndefined();
    expect(await eventCount(events)).toBe(0);
  });

  it('asks for a retry when the report overtakes the processor (the mail not yet recorded as sent)', async () => {
    const { store, bounces } = rig();
    const mail = await sentMail(store, 'sending');
    await expect(bounces.handle(report(mail.internetMessageId))).rejects.toBeInstanceOf(BounceTooEarlyError);
    expect((await store.get(mail.id))!.record.bounces).toBeUndefined();
  });
});
