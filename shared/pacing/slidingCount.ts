/**
 * A count over a true sliding window, kept as per-bucket totals so that a Table row stays small: the mechanism of
 * both the message rate's minute (messageWindow.ts) and the recipients' day (recipientWindow.ts).
 *
 * Bound: no window of width W holds more than the limit. An amount at time s is recorded in bucket ⌊s / b⌋
 * (n = W / b buckets per window). A check at time t counts every recorded bucket j ≥ ⌊t / b⌋ − n, whole: any s in
 * [t − W, t] has ⌊s / b⌋ ≥ ⌊t / b⌋ − n. An amount is admitted only if counted + amount ≤ limit. Take any window
 * [a, a + W] and its last admission g, at t_g: every other admission in it happened in [t_g − W, t_g] and was
 * recorded before g (the row's ETag orders the writes, and commit order is time order), so g's check counted them.
 * Buckets ahead of the current one (a clock running ahead) are counted too. Counting whole buckets costs at most one
 * bucket of capacity.
 */

/** Totals per bucket index (⌊time / bucketMs⌋), ascending by index, no zero totals. */
export type SlidingBuckets = readonly (readonly [bucket: number, amount: number])[];

/** A window's geometry; `windowMs` is a whole number of buckets. */
export interface SlidingWindow {
  bucketMs: number;
  windowMs: number;
}

function bucketOf(window: SlidingWindow, nowMs: number): number {
  return Math.floor(nowMs / window.bucketMs);
}

/** The buckets a check at `nowMs` still counts (the others can be dropped from the row). */
function countedBuckets(window: SlidingWindow, buckets: SlidingBuckets, nowMs: number): SlidingBuckets {
  const oldest = bucketOf(window, nowMs) - window.windowMs / window.bucketMs;
  return buckets.filter(([bucket]) => bucket >= oldest);
}

/** Whether an amount recorded at `atMs` is still counted by a check at `nowMs`. */
export function stillCounted(window: SlidingWindow, atMs: number, nowMs: number): boolean {
  return bucketOf(window, atMs) >= bucketOf(window, nowMs) - window.windowMs / window.bucketMs;
}

/** The total counted at `nowMs`. */
export function countInWindow(window: SlidingWindow, buckets: SlidingBuckets, nowMs: number): number {
  return countedBuckets(window, buckets, nowMs).reduce((sum, [, amount]) => sum + amount, 0);
}

/**
 * The earliest time (epoch ms, ≥ `nowMs`) at which `amount` more fit under `limit`, if nothing else is admitted
 * meanwhile: bucket j stops counting when the current bucket passes j + n, at (j + n + 1)·b.
 */
export function capacityAt(
  window: SlidingWindow,
  buckets: SlidingBuckets,
  nowMs: number,
  amount: number,
  limit: number,
): number {
  const counted = countedBuckets(window, buckets, nowMs);
  let used = counted.reduce((sum, [, count]) => sum + count, 0);
  if (used + amount <= limit) return nowMs;
  const perWindow = window.windowMs / window.bucketMs;
  for (const [bucket, count] of counted) {
    used -= count;
    if (used + amount <= limit) return (bucket + perWindow + 1) * window.bucketMs;
  }
  // Only reached when the amount alone exceeds the limit; callers refuse that before asking.
  throw new RangeError(`${amount} can never fit a limit of ${limit}`);
}

/** `buckets` at `nowMs` with `amount` added to the current bucket and the uncounted buckets dropped. */
export function addToWindow(
  window: SlidingWindow,
  buckets: SlidingBuckets,
  nowMs: number,
  amount: number,
): SlidingBuckets {
  const current = bucketOf(window, nowMs);
  const kept = countedBuckets(window, buckets, nowMs).map(([bucket, count]) => [bucket, count] as [number, number]);
  const existing = kept.find(([bucket]) => bucket === current);
  if (existing) existing[1] += amount;
  else kept.push([current, amount]);
  return kept.sort((x, y) => x[0] - y[0]);
}

/**
 * `buckets` with `amount` taken back from the bucket of `atMs` (an admission that turned out not to happen), floored
 * at zero; a bucket no longer held is left alone. Only safe for an admission known not to have taken effect.
 */
export function removeFromWindow(
  window: SlidingWindow,
  buckets: SlidingBuckets,
  atMs: number,
  amount: number,
): SlidingBuckets {
  const bucket = bucketOf(window, atMs);
  return buckets.flatMap(([b, count]) => {
    if (b !== bucket) return [[b, count] as const];
    const left = count - amount;
    return left > 0 ? [[b, left] as const] : [];
  });
}
