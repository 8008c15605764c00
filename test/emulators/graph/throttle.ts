/**
 * Exchange Online's per (app, mailbox) limits: concurrent requests and requests per sliding window. Each pair has its
 * own budget, so one busy mailbox never slows another, exactly as in Outlook's throttling. Over a limit the request
 * is refused at once (Exchange does not queue), and the refusal does not consume budget.
 */

/** Limits of one (app, mailbox) pair. */
export interface MailboxLimits {
  /** Requests in flight at once (Exchange: 4). */
  concurrentPerMailbox: number;
  /** Requests accepted per window (Exchange: 10,000). */
  requestsPerWindow: number;
  /** The sliding window (Exchange: 10 minutes). */
  windowMs: number;
}

/** Exchange Online's documented limits. */
export const EXCHANGE_LIMITS: Readonly<MailboxLimits> = {
  concurrentPerMailbox: 4,
  requestsPerWindow: 10_000,
  windowMs: 600_000,
};

/** Outcome of {@link MailboxThrottle.acquire}. */
export type Admission =
  { ok: true; release: () => void } | { ok: false; limit: 'concurrency' | 'requests'; retryAfterSeconds: number };

interface PairState {
  inFlight: number;
  peak: number;
  /** Acceptance times, oldest first; `start` skips the expired ones without shifting the array each time. */
  accepted: number[];
  start: number;
}

/** Concurrency and rate accounting for every (app, mailbox) pair. */
export class MailboxThrottle {
  private readonly pairs = new Map<string, PairState>();

  constructor(private readonly limits: MailboxLimits) {}

  /** Admits a request for (`appId`, `mailboxId`) or says which limit refused it and when to retry. */
  acquire(appId: string, mailboxId: string, now: number = Date.now()): Admission {
    const state = this.state(appId, mailboxId);
    if (state.inFlight >= this.limits.concurrentPerMailbox) {
      // Exchange does not say when a slot frees; a second is what the product should wait at least.
      return { ok: false, limit: 'concurrency', retryAfterSeconds: 1 };
    }
    while (state.start < state.accepted.length && state.accepted[state.start] <= now - this.limits.windowMs) {
      state.start++;
    }
    if (state.start > 1024 && state.start * 2 > state.accepted.length) {
      state.accepted = state.accepted.slice(state.start);
      state.start = 0;
    }
    if (state.accepted.length - state.start >= this.limits.requestsPerWindow) {
      const frees = state.accepted[state.start] + this.limits.windowMs;
      return { ok: false, limit: 'requests', retryAfterSeconds: Math.max(1, Math.ceil((frees - now) / 1000)) };
    }
    state.accepted.push(now);
    state.inFlight++;
    state.peak = Math.max(state.peak, state.inFlight);
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        state.inFlight--;
      },
    };
  }

  /** Highest in-flight count any app reached against `mailboxId`. */
  peak(mailboxId: string): number {
    let peak = 0;
    for (const [key, state] of this.pairs) {
      if (key.endsWith(`|${mailboxId}`)) peak = Math.max(peak, state.peak);
    }
    return peak;
  }

  /** Requests now in flight against `mailboxId`, over all apps. */
  inFlight(mailboxId: string): number {
    let total = 0;
    for (const [key, state] of this.pairs) {
      if (key.endsWith(`|${mailboxId}`)) total += state.inFlight;
    }
    return total;
  }

  /**
   * Forgets peaks and budgets. Requests still in flight keep their slots, so a reset during a test cannot let a pair
   * exceed its concurrency limit.
   */
  reset(): void {
    for (const [key, state] of this.pairs) {
      if (state.inFlight === 0) this.pairs.delete(key);
      else {
        state.peak = state.inFlight;
        state.accepted = [];
        state.start = 0;
      }
    }
  }

  private state(appId: string, mailboxId: string): PairState {
    const key = `${appId}|${mailboxId}`;
    let state = this.pairs.get(key);
    if (!state) {
      state = { inFlight: 0, peak: 0, accepted: [], start: 0 };
      this.pairs.set(key, state);
    }
    return state;
  }
}
