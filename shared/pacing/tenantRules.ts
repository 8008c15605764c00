/**
 * The tenant's external recipient budget (Exchange Online's tenant external recipient rate limit, TERRL): external
 * recipients of every mailbox of the tenant over a true sliding 24 h, counted in the same five-minute buckets as a
 * mailbox's recipients (recipientWindow.ts, whose bound holds here too: no 24 h ever holds more than the budget).
 * Past TERRL Exchange turns every external mail of the tenant into an NDR, so a mail that would pass it waits instead.
 */
import { positiveInteger } from './pacingRules';
import { addRecipients, capacityReturnsAt, removeRecipients, type RecipientBuckets } from './recipientWindow';

/** The answer to one request to count a mail's external recipients. */
export type TenantDecision =
  /** Counted at `countedAt` (give them back with `giveBackExternal` at that time if the mail does not go). */
  | { kind: 'granted'; countedAt: number }
  /** The budget has room for them again at `notBefore` (epoch ms). */
  | { kind: 'deferred'; notBefore: number; reason: 'tenantExternalRecipients' }
  /** The mail alone has more external recipients than the budget: it could never go. */
  | { kind: 'tooManyExternalRecipients'; externalRecipientsPerDay: number };

/** A decision and, when it changes the row, the buckets to write. */
export interface TenantStep {
  result: TenantDecision;
  next?: RecipientBuckets;
}

/** The domain of an address, lower-cased (addresses compare case-insensitively). */
function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return address
    .slice(at + 1)
    .trim()
    .toLowerCase();
}

/**
 * How many of `addresses` are external: outside the tenant's accepted `domains` (compared exactly, case-insensitive;
 * Exchange counts a recipient in a subdomain that is not itself accepted as external too).
 */
export function countExternal(addresses: readonly string[], domains: ReadonlySet<string>): number {
  return addresses.filter((address) => !domains.has(domainOf(address))).length;
}

/**
 * Counts `external` recipients at `nowMs` if the last 24 h leave room for them under `perDay`; a mail with none is
 * granted without changing the row (internal mail never counts).
 */
export function decideTenantExternal(
  buckets: RecipientBuckets,
  perDay: number,
  external: number,
  nowMs: number,
): TenantStep {
  positiveInteger('externalRecipientsPerDay', perDay);
  if (external === 0) return { result: { kind: 'granted', countedAt: nowMs } };
  positiveInteger('external', external);
  if (external > perDay) return { result: { kind: 'tooManyExternalRecipients', externalRecipientsPerDay: perDay } };
  const notBefore = capacityReturnsAt(buckets, nowMs, external, perDay);
  if (notBefore > nowMs) return { result: { kind: 'deferred', notBefore, reason: 'tenantExternalRecipients' } };
  return { result: { kind: 'granted', countedAt: nowMs }, next: addRecipients(buckets, nowMs, external) };
}

/** `buckets` without `external` recipients counted at `countedAt`: a grant whose mail never reached Graph. */
export function giveBackExternal(buckets: RecipientBuckets, countedAt: number, external: number): RecipientBuckets {
  return external === 0 ? buckets : removeRecipients(buckets, countedAt, external);
}
