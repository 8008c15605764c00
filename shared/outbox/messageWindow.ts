/**
 * A mailbox's messages over a sliding minute (Exchange Online's message rate limit), counted in half-second buckets
 * (slidingCount.ts; at most 123 in the row).
 *
 * The pacer decides when a mail goes; Graph accepts it a little later (the record update, the stored request, the
 * call itself), and by a varying amount. So the count covers 61 s, not 60: a one-second margin for that delay, since
 * Exchange counts from Graph's acceptance. Whole buckets cost at most one: N per 61.5 s in the worst case.
 */
import { addToWindow, capacityAt, removeFromWindow, type SlidingBuckets, type SlidingWindow } from './slidingCount';

/** Width of one message bucket. */
export const MESSAGE_BUCKET_MS = 500;

/** The sliding window Exchange counts messages in, plus the margin for the time from decision to Graph. */
export const MESSAGE_WINDOW_MS = 61_000;

/**
 * How long a decision to send stays good: a mail whose call to Graph would start later than this after the pacer
 * counted it asks again (`MailboxPacer.renew`), so that the time from decision to Graph's acceptance stays within the
 * window's one-second margin, leaving the other half for the call to reach Graph. Without it a slow instance (a
 * busy CPU, a slow store, a large upload) sends a mail counted long ago, and Exchange sees more than N in a minute.
 */
export const DECISION_VALID_MS = 500;

const MESSAGE_WINDOW: SlidingWindow = { bucketMs: MESSAGE_BUCKET_MS, windowMs: MESSAGE_WINDOW_MS };

/** Message counts per bucket index (⌊time / MESSAGE_BUCKET_MS⌋), ascending by index, no zero counts. */
export type MessageBuckets = SlidingBuckets;

/** The earliest time (epoch ms, ≥ `nowMs`) at which one more message fits under `limit`. */
export function messageCapacityAt(buckets: MessageBuckets, nowMs: number, limit: number): number {
  return capacityAt(MESSAGE_WINDOW, buckets, nowMs, 1, limit);
}

/** `buckets` at `nowMs` with one message added to the current bucket and the uncounted buckets dropped. */
export function addMessage(buckets: MessageBuckets, nowMs: number): MessageBuckets {
  return addToWindow(MESSAGE_WINDOW, buckets, nowMs, 1);
}

/** `buckets` without the message counted at `atMs` (a grant given back before anything reached Graph). */
export function removeMessage(buckets: MessageBuckets, atMs: number): MessageBuckets {
  return removeFromWindow(MESSAGE_WINDOW, buckets, atMs, 1);
}
