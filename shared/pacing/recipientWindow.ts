/**
 * A mailbox's recipients over a true sliding 24 hours (Exchange Online's recipient rate limit), counted in five-minute
 * buckets (slidingCount.ts, which states the bound; at most 290 in the row, a few kilobytes of JSON).
 *
 * The count spans 24 h and 5 minutes: a mail is counted at its decision until its release moves it to when Graph
 * answered, and a release that never lands (a failed write, an instance that died) leaves it at the decision, while
 * Exchange counts it from its acceptance, at most a lease's lifetime (5 minutes) later. The extra bucket keeps such a
 * mail counted for the whole of Exchange's 24 hours; it delays the budget's return by 5 minutes a day at most.
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
export const EXCHANGE_RECIPIENT_WINDOW_MS = 24 * 60 * 60_000;

/** The window the pacer counts recipients in: Exchange's and one bucket (a lease's lifetime) as a margin. */
export const RECIPIENT_WINDOW_MS = EXCHANGE_RECIPIENT_WINDOW_MS + RECIPIENT_BUCKET_MS;

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
