/**
 * A mailbox's send schedule: GCRA (the generic cell rate algorithm of redis-cell and Stripe's limiters) with a burst
 * tolerance of N − 1 slots, used to hand out slots, in whole microseconds so that the row holds an integer.
 *
 * The row keeps one number, the theoretical arrival time TAT. With interval T and tolerance τ = (N − 1)·T, a mail
 * asking at time t gets the slot s = max(TAT − τ, t) and sets TAT to max(TAT, s) + T. When s = t it may go now; a
 * mailbox that sent nothing for a while (TAT ≤ t) therefore lets N mails go at once, as Exchange would take them.
 * Otherwise the mail comes back at s, holding it (its queue message hidden until then), so that each waiting mail has
 * its own slot: nobody wakes only to find the slot taken. The schedule orders mails; the limit itself is enforced by
 * the sliding 61-second count (messageWindow.ts), which holds however late a holder comes back and whatever the
 * tolerance: GCRA alone would admit N + 60 s / T − 1 mails in a minute after a quiet spell, the count never more
 * than N. T is that count's worst case plus a second of slack, so that a mail back at its slot finds room even when
 * it is up to a second less late than the mail N slots before it was: holders come back late by varying amounts (the
 * queue hides messages for whole seconds, polls come every so often). Without the slack such a mail finds the minute
 * full, waits, and holders bunch up: the 4-host benchmark then sent in bursts of N a minute apart, a few seconds
 * lost each time. After a burst, the next mail's slot is one T later, but the count holds it until the burst leaves
 * the window: the (N + 1)th mail of a burst goes about 61 s after the first.
 */
import { MESSAGE_BUCKET_MS, MESSAGE_WINDOW_MS } from './messageWindow';

/** Microseconds in a millisecond. */
export const US_PER_MS = 1000;

/** How much less late a holder may be than the holder N slots before it and still find room (see above). */
const SLOT_SLACK_MS = 1000;

/**
 * The interval T between slots in microseconds for `messagesPerMinute` (N): (61 s + one count bucket + the slack) / N,
 * 62.1 s / N: 96.6 % of Exchange's rate at most in a steady stream.
 */
export function emissionIntervalUs(messagesPerMinute: number): number {
  return Math.ceil(((MESSAGE_WINDOW_MS + MESSAGE_BUCKET_MS + SLOT_SLACK_MS) * US_PER_MS) / messagesPerMinute);
}

/** The burst tolerance τ in microseconds: N − 1 intervals, so that N mails may go at once after a quiet spell. */
export function burstToleranceUs(messagesPerMinute: number): number {
  return (messagesPerMinute - 1) * emissionIntervalUs(messagesPerMinute);
}

/**
 * The first slot free at `nowUs` given the stored `tatUs` (`nowUs` itself when free now), and the TAT after it:
 * s = max(TAT − τ, now), TAT' = max(TAT, s) + T.
 */
export function messageSlot(
  tatUs: number,
  nowUs: number,
  intervalUs: number,
  toleranceUs = 0,
): { slotUs: number; nextTatUs: number } {
  const slotUs = Math.max(tatUs - toleranceUs, nowUs);
  return { slotUs, nextTatUs: Math.max(tatUs, slotUs) + intervalUs };
}
