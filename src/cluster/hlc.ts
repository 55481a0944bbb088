/**
 * Hybrid logical clock (Kulkarni, Demirbas, Madappa, Avva, Leone, "Logical Physical Clocks",
 * OPODIS 2014), packed into ONE JS number: version = wallMs * 1024 + logical.
 *
 * Why one number: a FlowEntry carries its version in every replication message and in every row
 * of the table; a single double costs no extra object, compares with `>` and encodes as 8 bytes.
 * Number.MAX_SAFE_INTEGER / 1024 ms is about 8.8e12 ms after 1970, i.e. the year ~2248, so the
 * packing stays exact far beyond any deployment.
 *
 * The paper keeps (l, c) apart; packing them means that more than 1024 events inside one
 * millisecond carry into the wall part. That only makes this clock run slightly ahead of physical
 * time (by 1 ms per extra 1024 events), which preserves monotonicity and the HLC guarantee that
 * causally later events get higher versions; at the rates one node sees (< ~1M writes/s) it does
 * not happen.
 */

/** Versions per millisecond: 10 bits of logical counter. */
export const HLC_LOGICAL_PER_MS = 1024;

/**
 * Clock skew between nodes. The HLC needs no synchronised clocks (paper, section 3): a node whose
 * clock runs behind orders its writes after everything it has observed (l = max(l, remote l)), so
 * a write that follows an observed one always wins the merge; a node whose clock runs ahead drags
 * every other node's l forward to its clock as soon as they observe one of its versions, and their
 * versions then advance by logical ticks (+1 per write) until their own wall clocks catch up. The
 * paper's bound holds: l − pt never exceeds the largest skew in the cluster. No node's writes lose
 * for being stamped by a slow or fast clock; which of two *concurrent* writes wins is decided by
 * the larger l, as with any last-writer-wins register.
 *
 * The paper (section 4) also notes that one runaway clock can drag everybody's l arbitrarily far,
 * and suggests refusing remote values beyond pt + ε. ε is 24 h here: wider than any clock error of
 * a host that still works (NTP down for weeks drifts by minutes; an RTC kept in local time is off
 * by hours), narrow enough to refuse a clock set years ahead, which would otherwise pin every
 * version in that future for good. Refused entries are counted (tandem_hlc_refused_total) and
 * logged by the replication layer. Nothing in tandem compares the wall part of a version with a
 * wall clock any more (tombstones and idle expiry count from lastActive, which each node stamps
 * in its own clock: flow-table.ts, replication.ts), so the drag costs nothing but the meaning of
 * that wall part; tandem_hlc_ahead_seconds shows how far it runs ahead of this node's clock.
 */
export const DEFAULT_MAX_AHEAD_MS = 24 * 3_600_000;

/** The wall-clock milliseconds part of a packed version. */
export function hlcWallMs(version: number): number {
  return Math.floor(version / HLC_LOGICAL_PER_MS);
}

/** The smallest version at a given wall-clock millisecond (logical 0). Handy for tests and cutoffs. */
export function hlcFromWallMs(wallMs: number): number {
  return Math.floor(wallMs) * HLC_LOGICAL_PER_MS;
}

export interface HlcOptions {
  /** Remote versions whose wall part is more than this far ahead of ours are ignored. */
  maxAheadMs?: number;
}

export class Hlc {
  readonly #clock: () => number;
  readonly #maxAheadMs: number;
  #last = 0;
  #rejectedFuture = 0;
  #rejectedInvalid = 0;

  constructor(now: () => number = Date.now, options: HlcOptions = {}) {
    this.#clock = now;
    this.#maxAheadMs = options.maxAheadMs ?? DEFAULT_MAX_AHEAD_MS;
  }

  /** Tick for a local event (a write): strictly greater than every version seen or issued. */
  now(): number {
    const wall = this.#wallMs() * HLC_LOGICAL_PER_MS;
    const next = this.#last + 1;
    this.#last = wall > next ? wall : next;
    return this.#last;
  }

  /**
   * Take a remote version into account so that our next local write orders after it (the
   * paper's receive rule; the +1 happens in the next now()). Returns false, and leaves the
   * clock untouched, when the value is not a non-negative safe integer or lies too far in the
   * future: a bad peer must not poison the clock. Callers should then also refuse the entry,
   * or it would sit in the table unbeatable by any local write until real time catches up.
   */
  observe(remote: number): boolean {
    if (!Number.isSafeInteger(remote) || remote < 0) {
      this.#rejectedInvalid++;
      return false;
    }
    if (hlcWallMs(remote) - this.#wallMs() > this.#maxAheadMs) {
      this.#rejectedFuture++;
      return false;
    }
    if (remote > this.#last) this.#last = remote;
    return true;
  }

  /** The last version issued or observed, without ticking. */
  peek(): number {
    return this.#last;
  }

  /**
   * How far the clock runs ahead of this node's wall clock, in ms (0 when it does not): a peer's
   * clock ahead of ours, or more than 1024 writes in a millisecond. A metric.
   */
  aheadMs(): number {
    return Math.max(0, hlcWallMs(this.#last) - this.#wallMs());
  }

  /** Remote versions ignored for being more than maxAheadMs ahead (a metric). */
  get rejectedFuture(): number {
    return this.#rejectedFuture;
  }

  /** Remote versions ignored for being NaN, infinite, negative, fractional or unsafe. */
  get rejectedInvalid(): number {
    return this.#rejectedInvalid;
  }

  #wallMs(): number {
    const t = Math.floor(this.#clock());
    // A broken clock source must not make the version NaN: fall back to pure logical ticking.
    return Number.isFinite(t) && t > 0 ? t : 0;
  }
}
