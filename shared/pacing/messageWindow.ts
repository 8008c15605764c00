/**
 * A mailbox's messages over a sliding minute (Exchange Online's message rate limit), counted in 100 ms buckets
 * (slidingCount.ts). Only buckets holding a message are stored, so the row keeps at most N of them whatever their
 * width; narrow buckets cost nothing and keep the count within 100 ms of exact.
 *
 * The pacer decides when a mail goes; Exchange counts it when Graph accepts it, a varying moment later. The mail is
 * counted at the decision, then moved to its release (pacingRules.ts, `releaseLease`), which bounds that delay; the
 * count covers 61 s, not 60, as a margin for what clocks and Exchange may add. Whole buckets cost at most one: N per
 * 61.1 s in the worst case.
 */
import {
  addToWindow,
  capacityAt,
  removeFromWindow,
  stillCounted,
  type SlidingBuckets,
  type SlidingWindow,
} from './slidingCount';

/** Width of one message bucket. */
export const MESSAGE_BUCKET_MS = 100;

/** The sliding window Exchange counts messages in, plus the margin for the time from decision to Graph. */
export const MESSAGE_WINDOW_MS = 61_000;

/**
 * How long a decision to send stays good. The pacer counts a mail at its decision until the mail is done with Graph,
 * then at that moment (`releaseLease`), so the count holds only if the release comes within the window of the
 * decision. A mail whose submission would start later than this after the decision (the uploads of a large draft, a
 * stalled instance) asks again just before submitting (`MailboxPacer.renew`), leaving the rest of the window for the
 * submission and the release.
 */
export const DECISION_VALID_MS = 30_000;

const MESSAGE_WINDOW: SlidingWindow = { bucketMs: MESSAGE_BUCKET_MS, windowMs: MESSAGE_WINDOW_MS };

/** Message counts per bucket index (⌊time / MESSAGE_BUCKET_MS⌋), ascending by index, no zero counts. */
export type MessageBuckets = SlidingBuckets;

/** The earliest time (epoch ms, ≥ `nowMs`) at which one more message fits under `limit`. */
export function messageCapacityAt(buckets: MessageBuckets, nowMs: number, limit: number): number {
  return capacityAt(MESSAGE_WINDOW, buckets, nowMs, 1, limit);
}

/** Whether a message counted at `atMs` is still in the window a check at `nowMs` counts. */
export function messageStillCounted(atMs: number, nowMs: number): boolean {
  return stillCounted(MESSAGE_WINDOW, atMs, nowMs);
}

/** `buckets` at `nowMs` with one message added to the current bucket and the uncounted buckets dropped. */
export function addMessage(buckets: MessageBuckets, nowMs: number): MessageBuckets {
  return addToWindow(MESSAGE_WINDOW, buckets, nowMs, 1);
}

/** `buckets` without the message counted at `atMs` (a grant given back before anything reached Graph). */
export function removeMessage(buckets: MessageBuckets, atMs: number): MessageBuckets {
  return removeFromWindow(MESSAGE_WINDOW, buckets, atMs, 1);
}
