/**
 * A rate limit that holds for the whole tier (pure: time comes in, messages go out as values).
 * docs/rate-limits.md explains the algorithm and its error bound; in short:
 *
 * Every node keeps its own view of one token bucket per key — capacity `burst`, refilled at
 * `rate` per second — for the whole tier. A node spends from the bucket only up to its
 * *allowance*: its share of the bucket, where its share is its part of the key's demand (requests
 * seen, admitted or not) in the last sync period. Every `syncMs` each node sends, per active key,
 * how many it admitted and how many it saw; a receiver takes the admitted ones off its bucket and
 * keeps the seen ones for the next shares. At each sync a node's allowance becomes
 * share × bucket, and between syncs the refill is split the same way.
 *
 * Since the shares of all nodes sum to 1, the nodes together spend at most one bucket per sync
 * period plus the refill — the limit holds for the tier instead of per node (HAProxy's stick
 * tables with peers overwrite remote counters, so N nodes admit up to N× the limit; sharing only
 * the counts without the allowance would also admit N× under even load, since every node would
 * spend the same refill before hearing of the others). What is left is the staleness of the
 * shares: when demand moves between nodes, the node it moved to is held at its old share for one
 * period (under-admission), and views that differ by messages in flight (at most one period)
 * over-admit by at most the refill of one period.
 */

export interface RateLimitSpec {
  readonly requestsPerSecond: number;
  readonly burst: number;
}

export interface LimiterOptions {
  readonly spec: RateLimitSpec;
  /** How often the counts are shared (the tier's error bound scales with it). */
  readonly syncMs: number;
  /** Keys held at most; the least recently used is forgotten beyond it (counted). */
  readonly maxKeys: number;
}

/** One key's counts for one sync period, as sent to the peers. */
export interface KeyCounts {
  readonly key: string;
  readonly admitted: number;
  readonly seen: number;
}

export interface Decision {
  readonly ok: boolean;
  /** When refused: seconds until a retry may pass (for Retry-After), at least 1. */
  readonly retryAfterS: number;
}

const ADMIT: Decision = Object.freeze({ ok: true, retryAfterS: 0 });

interface KeyState {
  /** This node's view of the tier's bucket. */
  tokens: number;
  /** What this node may still spend of it. */
  allowance: number;
  /** This node's share of the key's demand. */
  share: number;
  at: number;
  /** Counts of this period, to send. */
  admitted: number;
  seen: number;
  /** Demand seen by the other nodes in their last report, by node. */
  remote: Map<string, number> | null;
}

export class ClusterRateLimiter {
  readonly #o: LimiterOptions;
  readonly #rate: number;
  readonly #keys = new Map<string, KeyState>();
  #nodes = 1;
  /** Keys forgotten because of maxKeys (a metric). */
  evicted = 0;

  constructor(o: LimiterOptions) {
    this.#o = o;
    this.#rate = o.spec.requestsPerSecond / 1000;
  }

  get size(): number {
    return this.#keys.size;
  }

  /** The number of nodes taking traffic (alive), for the share of a key nobody reported yet. */
  set nodes(n: number) {
    this.#nodes = Math.max(1, n);
  }

  /** One request of `key` at `now` (ms). */
  take(key: string, now: number): Decision {
    let s = this.#keys.get(key);
    if (s === undefined) s = this.#create(key, now);
    else {
      // LRU: most recently used last.
      this.#keys.delete(key);
      this.#keys.set(key, s);
      this.#refill(s, now);
    }
    s.seen++;
    if (s.allowance >= 1 && s.tokens >= 1) {
      s.allowance -= 1;
      s.tokens -= 1;
      s.admitted++;
      return ADMIT;
    }
    // Until the tier's bucket has a token again; at least a second (Retry-After is in seconds).
    const waitMs = Math.max(0, 1 - s.tokens) / Math.max(this.#rate, 1e-9);
    return { ok: false, retryAfterS: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  /** Counts another node sent. */
  receive(from: string, counts: readonly KeyCounts[], now: number): void {
    for (const c of counts) {
      let s = this.#keys.get(c.key);
      if (s === undefined) {
        if (c.admitted === 0 && c.seen === 0) continue;
        s = this.#create(c.key, now);
      } else this.#refill(s, now);
      s.tokens -= c.admitted;
      (s.remote ??= new Map()).set(from, c.seen);
    }
  }

  /**
   * The sync tick: returns this period's counts to send to every peer and resets the allowances
   * from the new shares. Keys idle long enough to be full again are forgotten (a full bucket is
   * what a new key gets anyway), which bounds memory by the active keys.
   */
  sync(now: number): KeyCounts[] {
    const out: KeyCounts[] = [];
    const burst = this.#o.spec.burst;
    for (const [key, s] of this.#keys) {
      this.#refill(s, now);
      if (s.admitted > 0 || s.seen > 0) out.push({ key, admitted: s.admitted, seen: s.seen });
      let others = 0;
      let reporters = 0;
      if (s.remote !== null) {
        for (const v of s.remote.values()) {
          others += v;
          reporters++;
        }
      }
      const total = s.seen + others;
      // A node that saw none of the key's demand gets a newcomer's 1/N, not 0: a client that moves
      // here (a failover, an ECMP rehash) far below its limit must not be refused for a period.
      // That over-admits by at most a bucket's 1/N per idle node for one period (rate-limits.md).
      // Nobody saw it anywhere: keep the split (a quiet key keeps its last shares).
      if (s.seen > 0) s.share = s.seen / total;
      else if (others > 0 || reporters === 0) s.share = 1 / this.#nodes;
      s.allowance = Math.max(0, s.tokens) * s.share;
      if (s.seen === 0 && others === 0 && s.tokens >= burst) {
        this.#keys.delete(key);
        continue;
      }
      s.admitted = 0;
      s.seen = 0;
      s.remote?.clear();
    }
    return out;
  }

  #create(key: string, now: number): KeyState {
    const burst = this.#o.spec.burst;
    const share = 1 / this.#nodes;
    const s: KeyState = { tokens: burst, allowance: burst * share, share, at: now, admitted: 0, seen: 0, remote: null };
    this.#keys.set(key, s);
    if (this.#keys.size > this.#o.maxKeys) {
      const oldest = this.#keys.keys().next().value as string;
      this.#keys.delete(oldest);
      this.evicted++;
    }
    return s;
  }

  #refill(s: KeyState, now: number): void {
    const dt = now - s.at;
    if (dt <= 0) return;
    s.at = now;
    const add = dt * this.#rate;
    const cap = this.#o.spec.burst;
    const before = s.tokens;
    s.tokens = Math.min(cap, s.tokens + add);
    // The refill is split like the bucket: this node may spend its share of what came in.
    s.allowance = Math.min(s.allowance + (s.tokens - before) * s.share, Math.max(0, s.tokens));
  }
}
