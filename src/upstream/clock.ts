/**
 * Time as the upstream modules see it. Health checks and outlier detection are all about time
 * (intervals, back-offs, ramps); injecting the clock lets tests drive hours of it in microseconds
 * and makes rise/fall and back-off tests deterministic instead of sleep-based.
 */

/** An opaque timer handle: whatever `setTimeout` returned (never null), given back to `clearTimeout`. */
export type TimerHandle = NonNullable<unknown>;

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/**
 * The process clock. Timers are NOT unref'd: a caller awaiting a health transition must not see
 * the process exit under it; HealthChecker.stop() clears every timer.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};
