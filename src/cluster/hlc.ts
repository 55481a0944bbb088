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
 * Default bound on how far ahead of our wall clock a remote version may be. The paper (section 4)
 * notes that HLC lets a peer with a runaway clock drag every node's l forward; rejecting messages
 * whose l exceeds pt + epsilon is its suggested guard. 60 s tolerates NTP-level skew with a wide
 * margin while still refusing a peer set years into the future.
 */
export const DEFAULT_MAX_AHEAD_MS = 60_000;

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
