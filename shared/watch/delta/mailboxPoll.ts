/**
 * Polling and reconciliation, scaled out: the `pollMailboxes` timer only finds the mailbox folders whose delta read
 * is due (polled ones every POLL_INTERVAL_SECONDS, pushed ones every RECONCILE_INTERVAL_MINUTES), claims each by
 * moving its next read forward, and queues one small message per folder; `pollMailbox` runs that folder's delta
 * (the catch-up, publishing through the same event ledger as notifications). So the reads spread over every instance,
 * one slow mailbox delays nobody else, and Graph's throttling (429 + Retry-After) defers that mailbox alone: its next
 * read waits out the Retry-After instead of the queue retrying it.
 */
import type { InvocationContext } from '@azure/functions';
import { GraphError } from '@microsoft/microsoft-graph-client';
import type { QueueClient } from '@azure/storage-queue';
import { GraphFailure } from '../../graph/graphFailure';
import { forEachLimited } from '../../platform/concurrency';
import { logValue } from '../../platform/logSafe';
import { ensureQueue } from '../../platform/storage/tables';
import type { CatchUp } from './catchUp';
import { mailboxPollMessage } from './pollMessages';
import { DEFAULT_FOLDER } from '../watchFolders';
import type { WatchedMailbox, WatchStore } from '../watchStore';

/**
 * How far ahead the timer claims reads: three of its 5 s periods (at most half an interval, so a folder never has two
 * reads queued at once). A read due within it is queued now, invisible until its due time, so it starts on time even
 * when the tick that would have claimed it just in time runs late or is skipped (a tick that runs past the next
 * occurrence skips it); with a lookahead of one period, 1,000 mailboxes polled every 60 s on 4 hosts had gaps of up
 * to 69.6 s between reads (`npm run bench -- poll1000`).
 */
const LOOKAHEAD_MS = 15_000;
/** Queue and table writes in flight at once while claiming due folders. */
const CLAIM_CONCURRENCY = 16;
/** How long a throttled read waits when Graph names no Retry-After. */
const DEFAULT_RETRY_AFTER_SECONDS = 60;

/** What the timer needs. */
export interface PollSchedulerDependencies {
  store: WatchStore;
  /** `mailbox-poll`. */
  queue: QueueClient;
  pollIntervalMs: number;
  reconcileIntervalMs: number;
  now?: () => number;
}

/** What the queue trigger needs. */
export interface PollReaderDependencies {
  store: WatchStore;
  /** A catch-up whose Graph client never waits out throttling itself. */
  catchUp: CatchUp;
  now?: () => number;
}

/** The interval of a folder's reads: polls under poll, reconciliations under push. */
function intervalOf(record: WatchedMailbox, deps: PollSchedulerDependencies): number {
  return record.mode === 'poll' ? deps.pollIntervalMs : deps.reconcileIntervalMs;
}

/**
 * When the folder's next delta read is due. A polled folder without a next read is due at once; a pushed one that
 * never had a reconciliation is due one interval after its last catch-up (or creation).
 */
function dueAt(record: WatchedMailbox, now: number, deps: PollSchedulerDependencies): number {
  if (record.nextReadAt) return Date.parse(record.nextReadAt);
  if (record.mode === 'poll') return now;
  return Date.parse(record.deltaSyncedAt ?? record.createdAt) + deps.reconcileIntervalMs;
}

/**
 * Queues one message per folder due within the lookahead, visible at its due time; a folder is claimed (its next read
 * moved one interval on from its due time, so the rate does not drift with the tick; ETag guarded) before its
 * message is written, so two timer runs never queue it twice. Returns how many were queued.
 */
export async function scheduleDueReads(context: InvocationContext, deps: PollSchedulerDependencies): Promise<number> {
  const now = (deps.now ?? Date.now)();
  const horizon = now + Math.min(LOOKAHEAD_MS, deps.pollIntervalMs / 2, deps.reconcileIntervalMs / 2);
  const due = (await deps.store.list()).filter((r) => dueAt(r, now, deps) <= horizon);
  if (due.length === 0) return 0;
  await ensureQueue(deps.queue);
  let queued = 0;
  await forEachLimited(due, CLAIM_CONCURRENCY, async (record) => {
    let claimedAt: number | undefined;
    await deps.store.update(
      record.mailbox,
      (r) => {
        const at = dueAt(r, now, deps);
        claimedAt = at <= horizon ? at : undefined;
        if (claimedAt === undefined) return r;
        // A folder that fell behind (a long outage, a throttled read) starts a new rhythm instead of catching up.
        const next = Math.max(at + intervalOf(r, deps), now + intervalOf(r, deps) / 2);
        return { ...r, nextReadAt: new Date(next).toISOString() };
      },
      record.folder,
    );
    if (claimedAt === undefined) return;
    await deps.queue.sendMessage(
      mailboxPollMessage.encode({ mailbox: record.mailbox, folder: record.folder ?? DEFAULT_FOLDER }),
      // From now, not from the tick's start: claiming the earlier folders took time.
      { visibilityTimeout: Math.max(0, Math.round((claimedAt - (deps.now ?? Date.now)()) / 1000)) },
    );
    queued++;
  });
  context.info(`poll: ${queued} mailbox folder(s) due`);
  return queued;
}

/**
 * Reads one folder by delta and publishes what is new. Under push, what it publishes arrived without a notification
 * and is counted as `reconciled`. Throttled: the folder's next read waits out Graph's Retry-After (the message is
 * done, not retried). Other failures are thrown for the queue to retry.
 */
export async function readDueFolder(
  message: unknown,
  context: InvocationContext,
  deps: PollReaderDependencies,
): Promise<string> {
  const parsed = mailboxPollMessage.schema.safeParse(message);
  if (!parsed.success) {
    context.error(`mailbox-poll: not a poll message (${logValue(parsed.error.issues[0]?.message ?? 'invalid')})`);
    return 'ignored';
  }
  const { mailbox, folder } = parsed.data;
  const record = await deps.store.get(mailbox, folder);
  if (!record) return 'ignored (no longer watched)';
  const where = folder === DEFAULT_FOLDER ? mailbox : `${mailbox} (${folder})`;
  const kind = record.mode === 'poll' ? 'poll' : 'reconcile';
  try {
    const result = await deps.catchUp.run(record);
    if (kind === 'reconcile' && result.published > 0) {
      await deps.store.update(mailbox, (r) => ({ ...r, reconciled: (r.reconciled ?? 0) + result.published }), folder);
      context.warn(`reconcile ${where}: ${result.published} mail(s) arrived without a notification and were published`);
    }
    const outcome = `${result.published} published, ${result.duplicates} already published${result.resynced ? ', resynced' : ''}`;
    context.info(`${kind} ${where}: ${outcome}`);
    return outcome;
  } catch (err) {
    if (!(err instanceof GraphError) || (err.statusCode !== 429 && err.statusCode !== 503)) throw err;
    const seconds = GraphFailure.of(err).retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS;
    const next = new Date((deps.now ?? Date.now)() + seconds * 1000).toISOString();
    await deps.store.update(mailbox, (r) => ({ ...r, nextReadAt: next }), folder);
    context.warn(`${kind} ${where}: Graph answered ${err.statusCode}; next read after ${seconds} s (${next})`);
    return 'throttled';
  }
}
