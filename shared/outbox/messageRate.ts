/**
 * A mailbox's send schedule: GCRA (the generic cell rate algorithm of redis-cell and Stripe's limiters) with no
 * burst tolerance, used to hand out slots, in whole microseconds so that the row holds an integer.
 *
 * The row keeps one number, the theoretical arrival time TAT. A mail asking at time t gets the slot
 * s = max(TAT, t) and sets TAT to s + T. When s = t it may go now; otherwise it comes back at s, holding it (its
 * queue message hidden until then), so that each waiting mail has its own slot: nobody wakes only to find the slot
 * taken. The schedule orders mails; the limit itself is enforced by the sliding 60-second count
 * (messageWindow.ts), which holds however late a holder comes back. T matches that count's worst case, so that a
 * mail back at its slot normally finds room.
 */
import { MESSAGE_BUCKET_MS, MESSAGE_WINDOW_MS } from './messageWindow';

/** Microseconds in a millisecond. */
export const US_PER_MS = 1000;

/** The interval T between slots in microseconds for `messagesPerMinute` (N): (61 s + one count bucket) / N. */
export function emissionIntervalUs(messagesPerMinute: number): number {
  return Math.ceil(((MESSAGE_WINDOW_MS + MESSAGE_BUCKET_MS) * US_PER_MS) / messagesPerMinute);
}

/** The first slot free at `nowUs` given the stored `tatUs` (`nowUs` itself when free now), and the TAT after it. */
export function messageSlot(tatUs: number, nowUs: number, intervalUs: number): { slotUs: number; nextTatUs: number } {
  const slotUs = Math.max(tatUs, nowUs);
  return { slotUs, nextTatUs: slotUs + intervalUs };
}
