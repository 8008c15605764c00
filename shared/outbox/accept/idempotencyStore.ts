/**
 * The `idempotency` table: where Idempotency-Keys were claimed before the outbox record itself became the claim
 * (issue 18; see `OutboxStore.acceptClaiming` and `mailIdForKey`). It stays for the rows written before that, which a
 * keyed accept consults while unexpired ones remain (legacyIdempotency.ts) and the renewal timer purges once expired,
 * and for the storage probe of `/api/health` (a one-entity read).
 */

/** The table's name. */
export const IDEMPOTENCY_TABLE = 'idempotency';

/** The first answer to a keyed request, what a repeat falls back to when the mail's record is gone. */
export interface StoredResult {
  status: number;
  body: string;
}
