/**
 * Timer triggers: each schedule is armed with setTimeout for its next UTC occurrence. Like the host's timer
 * listener, a function never overlaps itself: the next occurrence is computed once the current invocation ends.
 */
import type { Timer } from '@azure/functions';
import type { HostLogger } from './invoker';
import type { FunctionEntry } from './registry';

/** setTimeout's ceiling (about 24.8 days); longer waits are chained. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** An invocation later than this after its scheduled time reports `isPastDue`. */
const PAST_DUE_TOLERANCE_MS = 1000;

/** Builds the timer trigger input for an occurrence. */
export function timerInput(entry: FunctionEntry, scheduled: Date, last: Date | undefined, isPastDue: boolean): Timer {
  const next = entry.schedule?.next(scheduled) ?? scheduled;
  return {
    isPastDue,
    schedule: { adjustForDST: false },
    scheduleStatus: {
      last: (last ?? scheduled).toISOString(),
      next: next.toISOString(),
      lastUpdated: new Date().toISOString(),
    },
  };
}

interface TimerState {
  entry: FunctionEntry;
  handle: NodeJS.Timeout | undefined;
  lastScheduled: Date | undefined;
  running: Promise<void> | undefined;
}

/** Schedules every timer function of a host. */
export class TimerScheduler {
  readonly #states: TimerState[];
  readonly #fire: (entry: FunctionEntry, timer: Timer) => Promise<void>;
  readonly #logger: HostLogger;
  #stopped = false;

  /** `fire` invokes the function; it should log its own failures (a rejection is only reported). */
  constructor(
    entries: readonly FunctionEntry[],
    fire: (entry: FunctionEntry, timer: Timer) => Promise<void>,
    logger: HostLogger,
  ) {
    this.#states = entries
      .filter((e) => e.schedule)
      .map((entry) => ({ entry, handle: undefined, lastScheduled: undefined, running: undefined }));
    this.#fire = fire;
    this.#logger = logger;
  }

  /** Runs `runOnStartup` functions once, then arms every schedule. */
  start(): void {
    for (const state of this.#states) {
      if (state.entry.info.triggerType === 'timer' && state.entry.info.runOnStartup) {
        this.#run(state, new Date(), false);
      } else {
        this.#arm(state, new Date());
      }
    }
  }

  /** Cancels pending occurrences and waits for running ones. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const state of this.#states) clearTimeout(state.handle);
    await Promise.all(this.#states.flatMap((s) => (s.running ? [s.running] : [])));
  }

  #arm(state: TimerState, after: Date): void {
    if (this.#stopped || !state.entry.schedule) return;
    const scheduled = state.entry.schedule.next(after);
    this.#logger('debug', `[${state.entry.info.name}] Next occurrence ${scheduled.toISOString()}`);
    const wait = (): void => {
      const remaining = scheduled.getTime() - Date.now();
      if (remaining > 0) {
        state.handle = setTimeout(wait, Math.min(remaining, MAX_TIMEOUT_MS));
        return;
      }
      this.#run(state, scheduled, -remaining > PAST_DUE_TOLERANCE_MS);
    };
    wait();
  }

  #run(state: TimerState, scheduled: Date, isPastDue: boolean): void {
    if (this.#stopped) return;
    const timer = timerInput(state.entry, scheduled, state.lastScheduled, isPastDue);
    state.lastScheduled = scheduled;
    state.running = this.#fire(state.entry, timer)
      .catch(() => undefined)
      .finally(() => {
        state.running = undefined;
        // Strictly after this occurrence, even if the handler finished within the same second.
        this.#arm(state, new Date(Math.max(Date.now(), scheduled.getTime())));
      });
  }
}
