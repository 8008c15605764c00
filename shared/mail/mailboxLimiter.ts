/**
 * Keeps at most N Graph requests in flight per mailbox from this instance. Outlook allows 4 concurrent requests
 * per app and mailbox and answers the fifth with 429; queueing here costs nothing, a 429 costs a Retry-After wait.
 */

/** Graph's per app+mailbox concurrency limit. */
const GRAPH_CONCURRENCY_PER_MAILBOX = 4;

interface Gate {
  active: number;
  waiting: (() => void)[];
}

/** A per-key counting semaphore (FIFO). */
export class MailboxLimiter {
  private readonly gates = new Map<string, Gate>();

  constructor(readonly limit: number = GRAPH_CONCURRENCY_PER_MAILBOX) {}

  /** Runs `work` once fewer than `limit` calls for `mailbox` are running. */
  async run<T>(mailbox: string, work: () => Promise<T>): Promise<T> {
    const key = mailbox.toLowerCase();
    const gate = this.gates.get(key) ?? { active: 0, waiting: [] };
    this.gates.set(key, gate);
    if (gate.active >= this.limit) {
      await new Promise<void>((resolve) => gate.waiting.push(resolve));
    } else {
      gate.active++;
    }
    try {
      return await work();
    } finally {
      const next = gate.waiting.shift();
      // The slot passes straight to the next waiter, so `active` only drops when nobody waits.
      if (next) next();
      else if (--gate.active === 0) this.gates.delete(key);
    }
  }

  /** Calls running for `mailbox` now (for tests and diagnostics). */
  inFlight(mailbox: string): number {
    return this.gates.get(mailbox.toLowerCase())?.active ?? 0;
  }
}
