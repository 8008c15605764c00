/**
 * The emulator's notion of "now" for things that live for days (subscriptions, the 4-hour retry window): real time
 * plus an offset tests move forward, so a week of subscription lifetime takes no wall-clock time.
 */

/** Emulated time as tests see it. */
export interface EmulatedClock {
  /** Emulated now: real time plus every {@link advance} so far. */
  now(): Date;
  /** Moves emulated time forward by `ms` (non-negative) and lets the emulator act on it (expiry sweeps). */
  advance(ms: number): void;
  /**
   * Back to real time. What expired meanwhile stays gone: a test can let subscriptions expire, then have the product
   * (whose clock never moved) repair them with requests Graph judges at the same time the product does.
   */
  reset(): void;
}

/** A clock whose advances notify a listener (the emulator sweeps expired subscriptions there). */
export class OffsetClock implements EmulatedClock {
  private offsetMs = 0;

  constructor(private readonly onAdvance: () => void = () => undefined) {}

  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }

  advance(ms: number): void {
    if (!(ms >= 0) || !Number.isFinite(ms)) throw new Error('clock.advance(ms) needs a finite, non-negative ms');
    this.offsetMs += ms;
    this.onAdvance();
  }

  reset(): void {
    this.offsetMs = 0;
  }
}
