/**
 * A mailbox's recipients over a true sliding 24 hours (Exchange Online's recipient rate limit), counted in five-minute
 * buckets (slidingCount.ts, which states the bound; at most 289 in the row, a few kilobytes of JSON).
 *
 * GCRA with cost = recipients is not enough: after a full burst its TAT lies a day ahead and then drains
 * continuously, so it admits recipients again well before the burst's 24 hours are over.
 */
import {
  addToWindow,
  capacityAt,
  countInWindow,
  removeFromWindow,
  type SlidingBuckets,
  type SlidingWindow,
} from './slidingCount';

/** Width of one recipient bucket. */
export const RECIPIENT_BUCKET_MS = 5 * 60_000;

/** The sliding window Exchange counts recipients in. */
export const RECIPIENT_WINDOW_MS = 24 * 60 * 60_000;

const RECIPIENT_WINDOW: SlidingWindow = { bucketMs: RECIPIENT_BUCKET_MS, windowMs: RECIPIENT_WINDOW_MS };

/** Recipient counts per bucket index (⌊time / RECIPIENT_BUCKET_MS⌋), ascending by index, no zero counts. */
export type RecipientBuckets = SlidingBuckets;

/** Recipients counted against the budget at `nowMs`. */
export function recipientsInWindow(buckets: RecipientBuckets, nowMs: number): number {
  return countInWindow(RECIPIENT_WINDOW, buckets, nowMs);
}

/** The earliest time (epoch ms, ≥ `nowMs`) at which `recipients` more fit in `budget`, if nothing else is granted. */
export function capacityReturnsAt(
  buckets: RecipientBuckets,
  nowMs: number,
  recipients: number,
  budget: number,
): number {
  return capacityAt(RECIPIENT_WINDOW, buckets, nowMs, recipients, budget);
}

/** `buckets` at `nowMs` with `recipients` added to the current bucket and the uncounted buckets dropped. */
export function addRecipients(buckets: RecipientBuckets, nowMs: number, recipients: number): RecipientBuckets {
  return addToWindow(RECIPIENT_WINDOW, buckets, nowMs, recipients);
}

/** `buckets` without `recipients` counted at `atMs` (a grant given back before anything reached Graph). */
export function removeRecipients(buckets: RecipientBuckets, atMs: number, recipients: number): RecipientBuckets {
  return removeFromWindow(RECIPIENT_WINDOW, buckets, atMs, recipients);
}
