/**
 * `renewSubscriptions`: renews what expires within `RENEWAL_WINDOW_HOURS`, recreates and catches up what Graph
 * lost, and purges expired idempotency, event-ledger and finished outbox records. Logs one line per mailbox that did not simply
 * renew, and a summary.
 */
import type { InvocationContext } from '@azure/functions';
import type { TableClient } from '@azure/data-tables';
import type { EventPublisher } from '../events/eventPublisher';
import type { OutboxStore } from '../outbox/outboxStore';
import { purgeExpired } from '../platform/tables';
import type { RenewalReport, WatchService } from './watchService';

/** What the timer needs. */
export interface RenewalDependencies {
  /** Undefined when WEBHOOK_BASE_URL is unset: nothing can be renewed or recreated then. */
  service: WatchService | undefined;
  publisher: EventPublisher;
  idempotencyTable: TableClient;
  /** Purges the records of mails that finished more than the retention period ago. */
  outbox: Pick<OutboxStore, 'purgeExpired'>;
  renewalWindowMs: number;
}

/** One run of the timer; the reports are returned for tests and benchmarks. */
export async function runRenewal(context: InvocationContext, deps: RenewalDependencies): Promise<RenewalReport[]> {
  const started = Date.now();
  const stats = { graphRequests: 0 };
  let reports: RenewalReport[] = [];
  if (deps.service) {
    reports = await deps.service.renewDue(deps.renewalWindowMs, stats);
    for (const report of reports.filter((r) => r.outcome !== 'renewed')) {
      const line = `${report.mailbox}: ${report.outcome}${report.error ? ` (${report.error})` : ''}${report.catchUp ? `, caught up ${report.catchUp.published} event(s)` : ''}`;
      if (report.outcome === 'failed' || report.error) context.warn(line);
      else context.info(line);
    }
  } else {
    context.warn('WEBHOOK_BASE_URL is not set: subscriptions are not renewed');
  }
  const now = new Date();
  const [events, keys, mails] = await Promise.all([
    deps.publisher.purgeExpired(now).catch((err: unknown) => fail(context, 'event ledger', err)),
    purgeExpired(deps.idempotencyTable, now).catch((err: unknown) => fail(context, 'idempotency records', err)),
    deps.outbox.purgeExpired(now).catch((err: unknown) => fail(context, 'outbox records', err)),
  ]);
  const count = (outcome: string) => reports.filter((r) => r.outcome === outcome).length;
  context.info(
    `renewal: ${count('renewed')} renewed, ${count('recreated')} recreated, ${count('failed')} failed with ${stats.graphRequests} batch request(s); purged ${events} event and ${keys} idempotency record(s), ${mails} finished outbox record(s) in ${Date.now() - started} ms`,
  );
  return reports;
}

function fail(context: InvocationContext, what: string, err: unknown): number {
  context.warn(`purging expired ${what} failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  return 0;
}
