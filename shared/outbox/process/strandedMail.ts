/**
 * Finds stored mail that no queue message leads to, and queues it again. An accept writes the mail's record first
 * and its queue message last; a process that dies between the two, or an enqueue that fails while the rollback that
 * follows fails too, leaves a record nothing will process. Without an `Idempotency-Key` that is as documented: the
 * caller got no 202 and no id, and its retry stores a new mail, so such a record is left alone (sending it would send
 * the mail twice). With a key, the caller's retry finds the record and is answered from it: that mail must be sent.
 *
 * A keyed record is taken for stranded when no processor ever touched it (no update, no attempt) although it has been
 * due for {@link STRANDED_AFTER_MS}. A mail that waits for its mailbox's minute goes back on the queue without
 * touching its record, so one behind a backlog longer than that (more than 1,800 mails of one mailbox at 30 a
 * minute) is mistaken for stranded and gets a second message: the record's conditional transitions let only one of
 * them send the mail, and the other one's outcome event repeats with the same id.
 */
import type { OutboxStore } from '../store/outboxStore';
import { OutboxRecordChangedError } from '../store/outboxStore';

/** How long a due keyed mail may go untouched before it is queued again. */
export const STRANDED_AFTER_MS = 60 * 60_000;

/** What the rescue needs of the outbox. */
export type StrandedMailStore = Pick<OutboxStore, 'untouchedDueBefore' | 'update' | 'enqueue'>;

/**
 * Queues every stranded mail again and marks its record touched, so that the next run leaves it alone; returns the
 * ids. The message goes first: a crash before the mark only queues the mail twice, never not at all.
 */
export async function requeueStrandedMail(store: StrandedMailStore, now: number = Date.now()): Promise<string[]> {
  const requeued: string[] = [];
  for await (const { record, etag } of store.untouchedDueBefore(now - STRANDED_AFTER_MS)) {
    if (record.idempotency === undefined) continue;
    await store.enqueue(record.id, 0);
    requeued.push(record.id);
    try {
      await store.update({ ...record, updatedAt: now }, etag);
    } catch (err) {
      // A processor (or another instance's housekeeping) got to it first: the record is no longer untouched.
      if (!(err instanceof OutboxRecordChangedError)) throw err;
    }
  }
  return requeued;
}
