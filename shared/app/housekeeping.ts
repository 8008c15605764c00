/**
 * Housekeeping of the records that outlive a request: expired event-ledger entries, idempotency records and the
 * records of mails that finished more than the retention period ago; and the stored mail an interrupted accept left
 * without a queue message, queued again. Run by the `renewSubscriptions` timer after
 * the renewal, so the app has one schedule; a purge that fails is logged and retried at the next run (the records
 * only take space meanwhile).
 */
import type { InvocationContext } from '@azure/functions';
import type { TableClient } from '@azure/data-tables';
import type { EventPublisher } from '../events/eventPublisher';
import type { OutboxStore } from '../outbox/store/outboxStore';
import { requeueStrandedMail, type StrandedMailStore } from '../outbox/process/strandedMail';
import { purgeExpired } from '../platform/storage/tables';
import { renewalSummary, runRenewal, type RenewalDependencies } from '../watch/subscriptions/renewalTimer';

/** What the purge needs. */
export interface HousekeepingDependencies {
  publisher: Pick<EventPublisher, 'purgeExpired'>;
  idempotencyTable: TableClient;
  /**
   * Purges the records of mails that finished more than the retention period ago, and queues again the mail an
   * interrupted accept left without a queue message.
   */
  outbox: Pick<OutboxStore, 'purgeExpired'> & StrandedMailStore;
}

/** Records purged by one run, per kind (0 where the purge failed). */
export interface PurgeCounts {
  events: number;
  idempotencyKeys: number;
  finishedMails: number;
}

/** Purges everything expired by `now`, the three kinds in parallel; never throws. */
export async function purgeExpiredRecords(
  context: InvocationContext,
  deps: HousekeepingDependencies,
  now = new Date(),
): Promise<PurgeCounts> {
  const [events, idempotencyKeys, finishedMails] = await Promise.all([
    deps.publisher.purgeExpired(now).catch((err: unknown) => fail(context, 'event ledger', err)),
    purgeExpired(deps.idempotencyTable, now).catch((err: unknown) => fail(context, 'idempotency records', err)),
    deps.outbox.purgeExpired(now).catch((err: unknown) => fail(context, 'outbox records', err)),
  ]);
  return { events, idempotencyKeys, finishedMails };
}

/**
 * Queues again the stored mail no queue message leads to (strandedMail.ts), naming each in a warning; never throws.
 * Returns how many.
 */
export async function requeueStranded(
  context: InvocationContext,
  outbox: StrandedMailStore,
  now = Date.now(),
): Promise<number> {
  try {
    const ids = await requeueStrandedMail(outbox, now);
    for (const id of ids) {
      context.warn(
        `outbox: mail ${id} had no queue message (its accept was interrupted after storing it); queued again`,
      );
    }
    return ids.length;
  } catch (err) {
    context.warn(
      `looking for outbox mail without a queue message failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`,
    );
    return 0;
  }
}

/** One run of the `renewSubscriptions` timer: the renewal, then the purge, then one summary line. */
export async function runScheduledMaintenance(
  context: InvocationContext,
  deps: { renewal: RenewalDependencies; housekeeping: HousekeepingDependencies },
): Promise<void> {
  const started = Date.now();
  const renewal = await runRenewal(context, deps.renewal);
  const purged = await purgeExpiredRecords(context, deps.housekeeping);
  const requeued = await requeueStranded(context, deps.housekeeping.outbox);
  context.info(
    `${renewalSummary(renewal)}; purged ${purged.events} event and ${purged.idempotencyKeys} idempotency record(s), ${purged.finishedMails} finished outbox record(s); ${requeued} stranded mail(s) queued again in ${Date.now() - started} ms`,
  );
}

function fail(context: InvocationContext, what: string, err: unknown): number {
  context.warn(`purging expired ${what} failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  return 0;
}
