/**
 * A fake Clock for the upstream modules: time moves only when a test calls `advance`, timers fire
 * in due order, and the promise jobs a fired timer starts (a fake probe's continuation) run before
 * the next timer, so a probe that "takes no time" schedules its successor as it would for real.
 */
import type { Clock, TimerHandle } from '../../src/upstream/clock.js';

interface Timer {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
}

/** Let pending promise jobs and I/O callbacks run. */
export const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  #timers = new Map<number, Timer>();
  /** Every delay ever passed to setTimeout, in call order (for the jitter tests). */
  readonly delays: number[] = [];

  /** Start well after 0: BackendState.healthySince uses 0 for "never". */
  constructor(start = 1_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.#seq;
    this.delays.push(ms);
    this.#timers.set(id, { id, at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as number);
  }

  get pending(): number {
    return this.#timers.size;
  }

  /** Move time forward by `ms`, firing due timers in order (ties in creation order). */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      let next: Timer | undefined;
      for (const t of this.#timers.values()) if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && t.id < next.id))) next = t;
      if (!next) break;
      this.#timers.delete(next.id);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
      await flush();
    }
    this.#now = end;
    await flush();
  }
}
