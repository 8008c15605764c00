/**
 * The events the outbox publishes about a mail, built from its record alone: a message that finds the record already
 * final (or deferred) rebuilds the very event the invocation that wrote it published, with the same CloudEvents id,
 * data and time, so a repeat is the same event and consumers drop it by id.
 */
import { mailboxEvent, type CloudEvent } from '../../events/cloudEvent';
import { threadFacts, type OutboxRecord } from '../store/outboxStore';

/** `mail.sent` or `mail.failed` for a record whose outcome is final (`sent` or `failed`). */
export function outcomeEvent(record: OutboxRecord): CloudEvent<Record<string, unknown>> {
  const time = new Date(record.updatedAt);
  if (record.status === 'sent') {
    return mailboxEvent(
      'mail.sent',
      record.mailbox,
      record.id,
      {
        id: record.id,
        status: 'sent',
        internetMessageId: record.internetMessageId,
        // Graph's request-id of the last call made for the mail: the submission's (as `Prefer: wait` answers).
        requestId: record.requestIds.at(-1) ?? null,
        ...threadFacts(record),
      },
      time,
    );
  }
  if (record.status !== 'failed') throw new Error(`outbox record ${record.id} is ${record.status}, not final`);
  return mailboxEvent(
    'mail.failed',
    record.mailbox,
    record.id,
    { id: record.id, status: 'failed', problem: record.problem, ...threadFacts(record) },
    time,
  );
}

/** `mail.deferred` for a `deferred` record: one event per deferral (its subject names the `notBefore`). */
export function deferredEvent(record: OutboxRecord): CloudEvent<Record<string, unknown>> {
  const notBefore = record.notBefore;
  if (record.status !== 'deferred' || notBefore === undefined) {
    throw new Error(`outbox record ${record.id} is ${record.status}, not deferred`);
  }
  return mailboxEvent(
    'mail.deferred',
    record.mailbox,
    `${record.id}/${notBefore}`,
    { id: record.id, status: 'deferred', notBefore: new Date(notBefore).toISOString(), reason: record.reason },
    new Date(record.updatedAt),
  );
}
