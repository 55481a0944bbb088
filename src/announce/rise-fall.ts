/**
 * The verdict of a series of readiness checks, with hysteresis as in HAProxy's and keepalived's
 * health checks: `rise` successes in a row make a node up, `fall` failures in a row make it down.
 * The verdict starts unknown, and the first settled run decides it either way — so a watchdog that
 * starts beside a dead node withdraws a route that an earlier run may have left announced.
 */
export type Verdict = 'up' | 'down';

export class RiseFall {
  readonly #rise: number;
  readonly #fall: number;
  #verdict: Verdict | null = null;
  /** Consecutive results equal to the last one. */
  #run = 0;
  #last: boolean | null = null;

  constructor(rise: number, fall: number) {
    if (!(Number.isInteger(rise) && rise >= 1 && Number.isInteger(fall) && fall >= 1)) throw new RangeError('rise and fall must be integers ≥ 1');
    this.#rise = rise;
    this.#fall = fall;
  }

  get verdict(): Verdict | null {
    return this.#verdict;
  }

  /** Feed one check's result; returns the new verdict when this result changed it, else null. */
  observe(ok: boolean): Verdict | null {
    this.#run = this.#last === ok ? this.#run + 1 : 1;
    this.#last = ok;
    const next: Verdict = ok ? 'up' : 'down';
    if (next === this.#verdict) return null;
    if (this.#run < (ok ? this.#rise : this.#fall)) return null;
    this.#verdict = next;
    return next;
  }
}
