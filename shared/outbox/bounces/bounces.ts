/**
 * Bounces: a non-delivery report that arrived in a sending mailbox and refers to a mail of the outbox becomes
 * `mail.bounced` (once per report: the event id derives from the report's message id, through the event ledger) and
 * an entry in the mail's `bounces`. The outbox gave every mail a Message-ID that holds its id
 * (`<{id without dashes}.outbox@{domain}>`, see sendMailHandler.ts), so a report maps to its mail without an index;
 * the record must still exist, belong to the mailbox the report arrived in and carry that very Message-ID.
 */
import { mailboxEvent } from '../../events/cloudEvent';
import type { EventPublisher } from '../../events/eventPublisher';
import type { BounceHandler, ReceivedReport } from '../../watch/bounces/bounceCheck';
import { OutboxRecordChangedError, type MailBounce, type OutboxStore, type StoredRecord } from '../store/outboxStore';

/** Reports kept per mail (a record is one table entity; a mail bounced more often than this keeps the first ones). */
const MAX_BOUNCES = 20;
/** Tries of the read-modify-write when another invocation changes the record meanwhile. */
const MAX_WRITES = 5;

/** The data of `mail.bounced`. */
export interface MailBouncedData {
  /** The outbox id of the mail. */
  id: string;
  mailbox: string;
  internetMessageId: string;
  recipients: MailBounce['recipients'];
  ndrMessageId: string;
  receivedDateTime: string | null;
}

/** The mail has not been recorded as sent yet (the report overtook the processor): retry later. */
export class BounceTooEarlyError extends Error {
  constructor(id: string) {
    super(`a report refers to mail ${id}, which is not recorded as sent yet`);
    this.name = 'BounceTooEarlyError';
  }
}

/** The outbox id a Message-ID of the outbox holds, or undefined for any other Message-ID. */
export function outboxIdOf(internetMessageId: string): string | undefined {
  const match = /^<([0-9a-f]{32})\.outbox@[^<>\s]+>$/i.exec(internetMessageId.trim());
  if (!match) return undefined;
  const hex = match[1].toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Matches reports to outbox mails, records them and publishes `mail.bounced`. */
export class OutboxBounces implements BounceHandler {
  constructor(
    private readonly store: OutboxStore,
    private readonly publisher: EventPublisher,
  ) {}

  async handle(received: ReceivedReport): Promise<string> {
    const found = await this.findMail(received);
    if (!found) return 'report of a mail the gateway did not send';
    const { record } = found;
    if (record.status !== 'sent' && record.status !== 'failed') throw new BounceTooEarlyError(record.id);
    const bounce: MailBounce = {
      ndrMessageId: received.ndrMessageId,
      receivedDateTime: received.receivedDateTime,
      recipients: received.report.recipients,
    };
    await this.record(found, bounce);
    const data: MailBouncedData = {
      id: record.id,
      mailbox: record.mailbox,
      internetMessageId: record.internetMessageId,
      recipients: bounce.recipients,
      ndrMessageId: received.ndrMessageId,
      receivedDateTime: received.receivedDateTime,
    };
    const time = received.receivedDateTime ? new Date(received.receivedDateTime) : new Date();
    const outcome = await this.publisher.publish(
      mailboxEvent('mail.bounced', record.mailbox, received.ndrMessageId, data, time),
    );
    return `mail.bounced for ${record.id}: ${outcome}`;
  }

  /** The outbox mail the report refers to: the first of its Message-IDs that is one of ours and checks out. */
  private async findMail(received: ReceivedReport): Promise<StoredRecord | undefined> {
    for (const messageId of received.report.originalMessageIds) {
      const id = outboxIdOf(messageId);
      if (!id) continue;
      const stored = await this.store.get(id);
      if (!stored) continue;
      const { record } = stored;
      if (record.internetMessageId.toLowerCase() !== messageId.toLowerCase()) continue;
      if (record.mailbox.toLowerCase() !== received.mailbox) continue;
      return stored;
    }
    return undefined;
  }

  /** Adds the bounce to the record unless it is there (a retried report), re-reading when the record moved. */
  private async record(found: StoredRecord, bounce: MailBounce): Promise<void> {
    let current: StoredRecord | undefined = found;
    for (let attempt = 1; current; attempt++) {
      const bounces = current.record.bounces ?? [];
      if (bounces.some((b) => b.ndrMessageId === bounce.ndrMessageId) || bounces.length >= MAX_BOUNCES) return;
      try {
        await this.store.update({ ...current.record, bounces: [...bounces, bounce] }, current.etag);
        return;
      } catch (err) {
        if (!(err instanceof OutboxRecordChangedError) || attempt >= MAX_WRITES) throw err;
      }
      current = await this.store.get(found.record.id);
    }
  }
}
