/**
 * A mailbox's recipients over a true sliding 24 hours (Exchange Online's recipient rate limit), kept as per-bucket
 * counts so the row stays small: at most 289 five-minute buckets, a few kilobytes of JSON.
 *
 * GCRA with cost = recipients is not enough: after a full burst its TAT lies a day ahead and then drains
 * continuously, so it admits recipients again well before the burst's 24 hours are over.
 *
 * Bound: no closed 24-hour window holds more than the daily budget B. A grant at time s is recorded in bucket
 * ⌊s / b⌋ (b = 5 min, n = 24 h / b = 288). A check at time t, in bucket k = ⌊t / b⌋, counts every recorded bucket
 * j ≥ k − n, whole: any s in [t − 24 h, t] has ⌊s / b⌋ ≥ ⌊(t − n·b) / b⌋ = k − n, so every grant of the last 24 h is
 * counted (and up to one bucket more, the conservative part). A grant happens only if counted + r ≤ B. Take any
 * window [a, a + 24 h] and its last grant g, at t_g: every other grant in the window was decided in
 * [t_g − 24 h, t_g] and committed before g (commit order is time order, see messageRate.ts), so g's check counted
 * all of them and the window holds at most B. Buckets ahead of k (a clock running ahead) are counted too.
 */

/** Width of one recipient bucket. */
export const RECIPIENT_BUCKET_MS = 5 * 60_000;

/** The sliding window Exchange counts recipients in. */
export const RECIPIENT_WINDOW_MS = 24 * 60 * 60_000;

const BUCKETS_PER_WINDOW = RECIPIENT_WINDOW_MS / RECIPIENT_BUCKET_MS;

/** Recipient counts per bucket index (⌊time / RECIPIENT_BUCKET_MS⌋), ascending by index, no zero counts. */
export type RecipientBuckets = readonly (readonly [bucket: number, recipients: number])[];

function bucketOf(nowMs: number): number {
  return Math.floor(nowMs / RECIPIENT_BUCKET_MS);
}

/** The buckets a check at `nowMs` still counts (the others can be dropped from the row). */
export function countedBuckets(buckets: RecipientBuckets, nowMs: number): RecipientBuckets {
  const oldest = bucketOf(nowMs) - BUCKETS_PER_WINDOW;
  return buckets.filter(([bucket]) => bucket >= oldest);
}

/** Recipients counted against the budget at `nowMs`. */
export function recipientsInWindow(buckets: RecipientBuckets, nowMs: number): number {
  return countedBuckets(buckets, nowMs).reduce((sum, [, recipients]) => sum + recipients, 0);
}

/**
 * The earliest time (epoch ms, ≥ `nowMs`) at which `recipients` more fit in `budget`, if nothing else is granted
 * meanwhile: bucket j stops counting when the current bucket passes j + n, at (j + n + 1)·b.
 */
export function capacityReturnsAt(
  buckets: RecipientBuckets,
  nowMs: number,
  recipients: number,
  budget: number,
): number {
  const counted = countedBuckets(buckets, nowMs);
  let used = counted.reduce((sum, [, count]) => sum + count, 0);
  if (used + recipients <= budget) return nowMs;
  for (const [bucket, count] of counted) {
    used -= count;
    if (used + recipients <= budget) return (bucket + BUCKETS_PER_WINDOW + 1) * RECIPIENT_BUCKET_MS;
  }
  // Only reached when recipients alone exceed the budget; callers refuse that before asking.
  throw new RangeError(`${recipients} recipients can never fit a daily budget of ${budget}`);
}

/** `buckets` at `nowMs` with `recipients` added to the current bucket and the uncounted buckets dropped. */
export function addRecipients(buckets: RecipientBuckets, nowMs: number, recipients: number): RecipientBuckets {
  const current = bucketOf(nowMs);
  const kept = countedBuckets(buckets, nowMs).map(([bucket, count]) => [bucket, count] as [number, number]);
  const existing = kept.find(([bucket]) => bucket === current);
  if (existing) existing[1] += recipients;
  else kept.push([current, recipients]);
  return kept.sort((x, y) => x[0] - y[0]);
}
