/**
 * Concurrency leases of one mailbox: each granted message holds one while it talks to Graph (Outlook allows 4
 * concurrent requests per app and mailbox). A lease expires by itself, so a crashed instance's slot comes back.
 * A lease also stands for its mail in the message rate until it is released or expires (pacingRules.ts): while it is
 * held, Graph may accept its mail at any moment.
 */

/** One lease as the row stores it. */
export interface LeaseRecord {
  id: string;
  /** Epoch ms after which the lease no longer counts. */
  expiresAt: number;
  /**
   * Epoch ms its message is counted at in the sliding minute (the grant or its renewal); absent in rows written
   * before leases said so, where it is `expiresAt − leaseMs` (the lease was taken then).
   */
  countedAt?: number;
}

/** The leases still held at `nowMs`. */
export function liveLeases(leases: readonly LeaseRecord[], nowMs: number): LeaseRecord[] {
  return leases.filter((lease) => lease.expiresAt > nowMs);
}

/** Milliseconds from `nowMs` until the first of `leases` expires. */
export function msUntilFirstExpiry(leases: readonly LeaseRecord[], nowMs: number): number {
  return Math.max(0, Math.min(...leases.map((lease) => lease.expiresAt)) - nowMs);
}

/** When `lease`'s message was counted, for a lease of `leaseMs`. */
export function leaseCountedAt(lease: LeaseRecord, leaseMs: number): number {
  return lease.countedAt ?? lease.expiresAt - leaseMs;
}
