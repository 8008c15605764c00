/**
 * Concurrency leases of one mailbox: each granted message holds one while it talks to Graph (Outlook allows 4
 * concurrent requests per app and mailbox). A lease expires by itself, so a crashed instance's slot comes back.
 */

/** One lease as the row stores it. */
export interface LeaseRecord {
  id: string;
  /** Epoch ms after which the lease no longer counts. */
  expiresAt: number;
}

/** The leases still held at `nowMs`. */
export function liveLeases(leases: readonly LeaseRecord[], nowMs: number): LeaseRecord[] {
  return leases.filter((lease) => lease.expiresAt > nowMs);
}

/** Milliseconds from `nowMs` until the first of `leases` expires. */
export function msUntilFirstExpiry(leases: readonly LeaseRecord[], nowMs: number): number {
  return Math.max(0, Math.min(...leases.map((lease) => lease.expiresAt)) - nowMs);
}
