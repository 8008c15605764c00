/**
 * BOUNCE_TRACKING=on: before the outbox first sends from a mailbox (per process), the mailbox's Inbox is made sure to
 * be watched, for non-delivery reports only unless someone watches it already. Before, not after: a watch's first
 * delta link skips what the Inbox holds when it is taken, so an NDR that came back before the watch existed would
 * never be seen. The watch record is the shared state (one table read per mailbox and process, then remembered for
 * {@link REMEMBER_MS}, so that a watch someone deleted through the mailbox API comes back with the next mail after
 * that, not only after a restart); a failure never holds the mail up: it is logged and tried again with the next mail
 * of that mailbox.
 */
import { logValue } from '../../platform/logSafe';

/** What bounce tracking needs of watching (the WatchService). */
export interface BounceWatcher {
  watchForBounces(mailbox: string): Promise<string>;
}

/** How long a mailbox found watched is taken to stay so before its watch record is read again. */
export const REMEMBER_MS = 10 * 60_000;

/** Makes sure sending mailboxes are watched for bounces. */
export class BounceTracking {
  /** Mailbox → epoch ms until which it is taken to be watched. */
  private readonly watched = new Map<string, number>();
  private readonly pending = new Map<string, Promise<void>>();

  constructor(
    private readonly watcher: BounceWatcher,
    /** Where operator warnings go (the Functions worker turns `console.warn` into a warning log). */
    private readonly warn: (message: string) => void = (message) => console.warn(message),
    private readonly now: () => number = Date.now,
  ) {}

  /** Resolves once `mailbox` is watched for bounces, or the attempt failed (logged); never rejects. */
  ensure(mailbox: string): Promise<void> {
    const address = mailbox.toLowerCase();
    if ((this.watched.get(address) ?? 0) > this.now()) return Promise.resolve();
    // Concurrent mails of a new mailbox share one attempt.
    let running = this.pending.get(address);
    if (!running) {
      running = this.watcher
        .watchForBounces(address)
        .then(() => {
          this.watched.set(address, this.now() + REMEMBER_MS);
        })
        .catch((err: unknown) => {
          const reason = logValue(
            err instanceof Error ? `${err.name}: ${err.message.split('\n')[0]}` : String(err),
            300,
          );
          this.warn(
            `BOUNCE_TRACKING: could not watch ${address} for bounces (${reason.slice(0, 300)}); next mail retries`,
          );
        })
        .finally(() => this.pending.delete(address));
      this.pending.set(address, running);
    }
    return running;
  }
}
