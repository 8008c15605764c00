/**
 * The watching half of the `renewSubscriptions` timer: renews what expires within `RENEWAL_WINDOW_HOURS`, recreates
 * and catches up what Graph lost. Logs one line per mailbox that did not simply renew; the caller writes the summary
 * (the same timer also runs the app's housekeeping).
 */
import type { InvocationContext } from '@azure/functions';
import { DEFAULT_FOLDER } from '../watchFolders';
import type { RenewalReport, WatchService } from '../watchService';

/** What the renewal needs. */
export interface RenewalDependencies {
  /** Undefined when WEBHOOK_BASE_URL is unset: nothing can be renewed or recreated then. */
  service: WatchService | undefined;
  renewalWindowMs: number;
}

/** One renewal run: a report per mailbox due, and how many Graph batch requests it took. */
export interface RenewalRun {
  reports: RenewalReport[];
  graphRequests: number;
}

/** Renews, recreates and catches up every subscription due; logs the mailboxes that needed more than a renewal. */
export async function runRenewal(context: InvocationContext, deps: RenewalDependencies): Promise<RenewalRun> {
  const stats = { graphRequests: 0 };
  if (!deps.service) {
    context.warn('WEBHOOK_BASE_URL is not set: subscriptions are not renewed');
    return { reports: [], graphRequests: 0 };
  }
  const reports = await deps.service.renewDue(deps.renewalWindowMs, stats);
  for (const report of reports.filter((r) => r.outcome !== 'renewed')) {
    const where =
      (report.folder ?? DEFAULT_FOLDER) === DEFAULT_FOLDER ? report.mailbox : `${report.mailbox} (${report.folder})`;
    const line = `${where}: ${report.outcome}${report.error ? ` (${report.error})` : ''}${report.catchUp ? `, caught up ${report.catchUp.published} event(s)` : ''}`;
    if (report.outcome === 'failed' || report.error) context.warn(line);
    else context.info(line);
  }
  return { reports, graphRequests: stats.graphRequests };
}

/** `renewal: 3 renewed, 0 recreated, 0 failed with 1 batch request(s)`: the run's outcome in one phrase. */
export function renewalSummary(run: RenewalRun): string {
  const count = (outcome: string) => run.reports.filter((r) => r.outcome === outcome).length;
  return `renewal: ${count('renewed')} renewed, ${count('recreated')} recreated, ${count('failed')} failed with ${run.graphRequests} batch request(s)`;
}
