/**
 * A mailbox's messages over a sliding minute (Exchange Online's message rate limit), kept as per-bucket counts so the
 * row stays small: at most 123 half-second buckets.
 *
 * The pacer decides when a mail goes; Graph accepts it a little later (the record update, the stored request, the
 * call itself), and by a varying amount. So the count covers 61 s, not 60: a one-second margin for that delay, since
 * Exchange counts from Graph's acceptance.
 *
 * Bound: no half-open window of W = 61 s holds more than the limit N. A message sent at time s is recorded in bucket
 * ⌊s / b⌋ (b = 500 ms, n = W / b = 122). A check at time t counts every recorded bucket j ≥ ⌊t / b⌋ − n, whole: any
 * s in (t − W, t] has ⌊s / b⌋ ≥ ⌊t / b⌋ − n. A message goes only if fewer than N are counted. Take any window
 * [a, a + W) and its last message g, at t_g: every other message in it went in (t_g − W, t_g] and was recorded before
 * g (the row's ETag orders the writes, and commit order is time order), so g's check counted them and the window
 * holds at most N. Counting whole buckets costs at most one bucket: N per 61.5 s in the worst case.
 */

/** Width of one message bucket. */
export const MESSAGE_BUCKET_MS = 500;

/** The sliding window Exchange counts messages in, plus the margin for the time from decision to Graph. */
export const MESSAGE_WINDOW_MS = 61_000;

const BUCKETS_PER_WINDOW = MESSAGE_WINDOW_MS / MESSAGE_BUCKET_MS;

/** Message counts per bucket index (⌊time / MESSAGE_BUCKET_MS⌋), ascending by index, no zero counts. */
export type MessageBuckets = readonly (readonly [bucket: number, messages: number])[];

function bucketOf(nowMs: number): number {
  return Math.floor(nowMs / MESSAGE_BUCKET_MS);
}

function counted(buckets: MessageBuckets, nowMs: number): MessageBuckets {
  const oldest = bucketOf(nowMs) - BUCKETS_PER_WINDOW;
  return buckets.filter(([bucket]) => bucket >= oldest);
}

/**
 * The earliest time (epoch ms, ≥ `nowMs`) at which one more message fits under `limit`, if nothing else goes
 * meanwhile: bucket j stops counting when the current bucket passes j + n, at (j + n + 1)·b.
 */
export function messageCapacityAt(buckets: MessageBuckets, nowMs: number, limit: number): number {
  const window = counted(buckets, nowMs);
  let used = window.reduce((sum, [, count]) => sum + count, 0);
  if (used < limit) return nowMs;
  for (const [bucket, count] of window) {
    used -= count;
    if (used < limit) return (bucket + BUCKETS_PER_WINDOW + 1) * MESSAGE_BUCKET_MS;
  }
  return nowMs; // unreachable for limit ≥ 1
}

/** `buckets` at `nowMs` with one message added to the current bucket and the uncounted buckets dropped. */
export function addMessage(buckets: MessageBuckets, nowMs: number): MessageBuckets {
  const current = bucketOf(nowMs);
  const kept = counted(buckets, nowMs).map(([bucket, count]) => [bucket, count] as [number, number]);
  const existing = kept.find(([bucket]) => bucket === current);
  if (existing) existing[1] += 1;
  else kept.push([current, 1]);
  return kept.sort((x, y) => x[0] - y[0]);
}
