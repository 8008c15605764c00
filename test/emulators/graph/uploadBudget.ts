/**
 * Outlook's upload limit: each (app, mailbox) pair may send 150 MB of request bodies (POST, PUT, PATCH, upload-session
 * chunks included) per 5-minute sliding window; beyond that Exchange answers 429 with Retry-After. A product that
 * sends large attachments to one mailbox in a burst meets this long before the request-count limit.
 */

/** Upload limits of one (app, mailbox) pair. */
export interface UploadLimits {
  /** Request-body bytes accepted per window (Exchange: 150 MB). */
  uploadBytesPerWindow: number;
  /** The sliding window (Exchange: 5 minutes). */
  uploadWindowMs: number;
}

/** Exchange Online's documented upload limit (concepts/throttling-limits.md, Outlook service limits). */
export const EXCHANGE_UPLOAD_LIMITS: Readonly<UploadLimits> = {
  uploadBytesPerWindow: 150 * 1024 * 1024,
  uploadWindowMs: 300_000,
};

/** Text of the 429 for an exhausted upload budget, in the style of Outlook's other per-mailbox limits. */
export const UPLOAD_THROTTLED_MESSAGE = 'Application is over its MailboxUploadSize limit.';

/** Methods whose bodies count as uploads. */
export const UPLOAD_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH']);

/** Outcome of {@link UploadBudget.check}. */
export type UploadAdmission = { ok: true } | { ok: false; retryAfterSeconds: number };

interface Charge {
  at: number;
  bytes: number;
}

interface PairLedger {
  charges: Charge[];
  total: number;
}

/** Upload-byte accounting for every (app, mailbox) pair. */
export class UploadBudget {
  private readonly pairs = new Map<string, PairLedger>();

  constructor(private readonly limits: UploadLimits) {}

  /**
   * Whether `bytes` more fit the pair's window now. Checking does not charge: the caller charges only once every other
   * limit admitted the request, so a request refused elsewhere costs no upload budget.
   */
  check(appId: string, mailboxId: string, bytes: number, now: number = Date.now()): UploadAdmission {
    if (bytes <= 0) return { ok: true };
    const ledger = this.ledger(appId, mailboxId, now);
    const excess = ledger.total + bytes - this.limits.uploadBytesPerWindow;
    if (excess <= 0) return { ok: true };
    // The earliest moment enough old charges have left the window for this body to fit.
    let freesAt = now + this.limits.uploadWindowMs;
    if (bytes <= this.limits.uploadBytesPerWindow) {
      let freed = 0;
      for (const charge of ledger.charges) {
        freed += charge.bytes;
        if (freed >= excess) {
          freesAt = charge.at + this.limits.uploadWindowMs;
          break;
        }
      }
    }
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((freesAt - now) / 1000)) };
  }

  /** Records `bytes` received from the pair. */
  charge(appId: string, mailboxId: string, bytes: number, now: number = Date.now()): void {
    if (bytes <= 0) return;
    const ledger = this.ledger(appId, mailboxId, now);
    ledger.charges.push({ at: now, bytes });
    ledger.total += bytes;
  }

  /** Bytes the pair has used in the current window. */
  used(appId: string, mailboxId: string, now: number = Date.now()): number {
    return this.ledger(appId, mailboxId, now).total;
  }

  /** Forgets every charge. */
  reset(): void {
    this.pairs.clear();
  }

  private ledger(appId: string, mailboxId: string, now: number): PairLedger {
    const key = `${appId}|${mailboxId}`;
    let ledger = this.pairs.get(key);
    if (!ledger) {
      ledger = { charges: [], total: 0 };
      this.pairs.set(key, ledger);
    }
    let expired = 0;
    while (expired < ledger.charges.length && ledger.charges[expired].at <= now - this.limits.uploadWindowMs) {
      ledger.total -= ledger.charges[expired].bytes;
      expired++;
    }
    if (expired > 0) ledger.charges.splice(0, expired);
    return ledger;
  }
}
