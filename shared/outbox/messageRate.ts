/**
 * A mailbox's message rate: GCRA (the generic cell rate algorithm of redis-cell and Stripe's limiters) with NO
 * burst tolerance, in whole microseconds so that a configured rate is met exactly and the row holds an integer.
 *
 * The row keeps one number, the theoretical arrival time TAT. A message deciding at time t may go when t ≥ TAT;
 * going sets TAT to max(TAT, t) + T, where T = ⌈60 s / messagesPerMinute⌉.
 *
 * Bound: no half-open 60-second window holds more than messagesPerMinute (N) grants. Let the grants be g₁, g₂, …
 * in the order their writes committed (the row's ETag serialises them), decided at times t₁, t₂, …. After gᵢ the
 * row holds TATᵢ = max(TATᵢ₋₁, tᵢ) + T ≥ tᵢ + T, and gᵢ₊₁ was granted only because tᵢ₊₁ ≥ TATᵢ, so
 * tᵢ₊₁ ≥ tᵢ + T and, by induction, tᵢ₊ₖ ≥ tᵢ + k·T. N + 1 grants gᵢ … gᵢ₊ₙ inside [a, a + 60 s) would need
 * tᵢ₊ₙ − tᵢ < 60 s, yet tᵢ₊ₙ − tᵢ ≥ N·T ≥ 60 s. (Commit order is also time order, which the recipient window
 * relies on.) Any burst tolerance τ > 0 breaks the bound: an idle mailbox would admit grants at t, t + T − τ, …,
 * putting N + 1 of them within N·T − τ < 60 s. Throughput is not lost: a sender retrying when told gets one grant
 * every T, i.e. N per minute less the sub-microsecond rounding of T.
 *
 * Times are the deciding instance's clock: instances whose clocks disagree by s can place two grants T − s apart
 * in real time, so hosts should keep NTP time (Azure's do).
 */

/** Microseconds in a millisecond. */
export const US_PER_MS = 1000;

/** The emission interval T in microseconds for `messagesPerMinute`. */
export function emissionIntervalUs(messagesPerMinute: number): number {
  return Math.ceil((60_000 * US_PER_MS) / messagesPerMinute);
}

/** What the message rate says at one moment. */
export type MessageSlot = { kind: 'open'; nextTatUs: number } | { kind: 'closed'; waitUs: number };

/** Whether a message may go at `nowUs` given the stored `tatUs`, and the TAT to store if it goes. */
export function messageSlot(tatUs: number, nowUs: number, intervalUs: number): MessageSlot {
  if (nowUs < tatUs) return { kind: 'closed', waitUs: tatUs - nowUs };
  return { kind: 'open', nextTatUs: nowUs + intervalUs };
}
