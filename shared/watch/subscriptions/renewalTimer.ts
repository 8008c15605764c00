/**
 * The watching half of the `renewSubscriptions` timer: renews what expires within `RENEWAL_WINDOW_HOURS`, recreates
 * and catches up what Graph lost. Logs one line per mailbox that did not simply renew; the caller writes the summary
 * (the same timer also runs the app's housekeeping).
 */
import type { InvocationContext } from '@azure/functions';
import { logValue } from '../../platform/logSafe';
import { DEFAULT_FOLDER } from '../watchFolders';
import type { RenewalReport, WatchService } from '../watchService';

/** What the renewal needs. */
export interface RenewalDependencies {
  /** Undefined when WEBHOOK_BASE_URL is unset: nothing can be renewed or recreated then. */
  service: WatchService | undefined;
  renewalWindowMs: number;
}

/** One renewal run: a report per mailbox due, how many Graph batch requests it took, the orphans it deleted. */
export interface RenewalRun {
  reports: RenewalReport[];
  graphRequests: number;
  orphansDeleted: number;
}

/** Renews, recreates and catches up every subscription due; logs the mailboxes that needed more than a renewal. */
export async function runRenewal(context: InvocationContext, deps: RenewalDependencies): Promise<RenewalRun> {
  const stats = { graphRequests: 0 };
  if (!deps.service) {
    context.warn('WEBHOOK_BASE_URL is not set: subscriptions are not renewed');
    return { reports: [], graphRequests: 0, orphansDeleted: 0 };
  }
  const reports = await deps.service.renewDue(deps.renewalWindowMs, stats);
  for (const report of reports.filter((r) => r.outcome !== 'renewed')) {
    const where =
      (report.folder ?? DEFAULT_FOLDER) === DEFAULT_FOLDER ? report.mailbox : `${report.mailbox} (${report.folder})`;
    const line = `${where}: ${report.outcome}${report.error ? ` (${report.error})` : ''}${report.catchUp ? `, caught up ${report.catchUp.published} event(s)` : ''}`;
    if (report.outcome === 'failed' || report.error) context.warn(line);
    else context.info(line);
  }
  let orphansDeleted = 0;
  try {
    const deleted = await deps.service.sweepOrphans();
    for (const id of deleted) context.info(`deleted Graph subscription ${id}: no watch holds it`);
    orphansDeleted = deleted.length;
  } catch (err) {
    // The renewals above are what matters; an orphan lives on until the next run (or its own expiry).
    context.warn(`orphan subscriptions not swept: ${logValue(err instanceof Error ? err.message : String(err))}`);
  }
  return { reports, graphRequests: stats.graphRequests, orphansDeleted };
}

/** `renewal: 3 renewed, 0 recreated, 0 failed with 1 batch request(s)`: the run's outcome in one phrase. */
export function renewalSummary(run: RenewalRun): string {
  const count = (outcome: string) => run.reports.filter((r) => r.outcome === outcome).length;
  const orphans = run.orphansDeleted > 0 ? `, ${run.orphansDeleted} orphan subscription(s) deleted` : '';
  return `renewal: ${count('renewed')} renewed, ${count('recreated')} recreated, ${count('failed')} failed with ${run.graphRequests} batch request(s)${orphans}`;
}
