/**
 * A mailbox's message rate: GCRA (the generic cell rate algorithm of redis-cell and Stripe's limiters) with NO
 * burst tolerance, used as a scheduler: in whole microseconds so that the row holds an integer.
 *
 * The row keeps one number, the theoretical arrival time TAT. A message asking at time t gets the slot
 * s = max(TAT, t) and sets TAT to s + T. When s = t it may go now; otherwise its slot is s and it comes back then
 * (its queue message hidden until s), so that each waiting mail has its own slot: nobody wakes only to find the slot
 * taken, and no slot goes unused because its holder lost a race.
 *
 * Bound: no half-open 60-second window holds more than messagesPerMinute (N) sends. Slots are handed out in the
 * order their writes commit (the row's ETag serialises them), each at least T after the previous one, so slot k + N
 * lies at least N·T after slot k. A send happens in [its slot, its slot + L] (a later holder asks again), so sends
 * k and k + N are at least N·T − L apart, and T = (60 s + L) / N makes that 60 s. A burst tolerance τ > 0 would break
 * it, as would a smaller T: an idle mailbox would then send N + 1 within 60 s.
 *
 * Times are the deciding instance's clock: instances whose clocks disagree by d can place two slots T − d apart in
 * real time, so hosts should keep NTP time (Azure's do).
 */

/** Microseconds in a millisecond. */
export const US_PER_MS = 1000;

/**
 * How late after its slot a mail may still start its Graph call. A slot handed out for later is kept by a queue
 * message that becomes visible at the slot; the queue trigger polls at most every 2 s (host.json's
 * maxPollingInterval), so that is how late a holder can normally be. A holder later than this gives its slot up and
 * asks again, which keeps the bound below.
 */
export const SLOT_LATENESS_MS = 2_000;

/**
 * The emission interval T in microseconds for `messagesPerMinute` (N): (60 s + L) / N, where L is the lateness a
 * slot allows. Sends happen in [slot, slot + L] and slots are at least T apart, so N + 1 consecutive sends span at
 * least N·T − L = 60 s: no 60-second window holds more than N, whenever within its slot each one went. The price is
 * L / 60 s of the rate (0.968 of it for L = 2 s).
 */
export function emissionIntervalUs(messagesPerMinute: number, latenessMs: number = SLOT_LATENESS_MS): number {
  return Math.ceil(((60_000 + latenessMs) * US_PER_MS) / messagesPerMinute);
}

/** The first slot free at `nowUs` given the stored `tatUs` (`nowUs` itself when free now), and the TAT after it. */
export function messageSlot(tatUs: number, nowUs: number, intervalUs: number): { slotUs: number; nextTatUs: number } {
  const slotUs = Math.max(tatUs, nowUs);
  return { slotUs, nextTatUs: slotUs + intervalUs };
}
