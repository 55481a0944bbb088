/**
 * Replay window for forwarded-stream headers (issue 5: "a timestamp and nonce against replay").
 *
 * A header is accepted once: its timestamp must lie within ±windowMs of this node's clock and its
 * (origin, nonce) pair must not have been seen while the timestamp is inside the window. An entry
 * older than the window can be forgotten, because the timestamp check alone refuses its replay.
 *
 * Memory is bounded (maxEntries). When the cache is full the oldest entry is evicted and the
 * origin's *floor* rises to that entry's timestamp: from then on a header of that origin must be
 * strictly newer than the floor. So eviction never opens a replay hole; under a sustained rate
 * above maxEntries / windowMs it only narrows the accepted window for old timestamps, which honest
 * senders never use (they stamp a header just before sending it). Floors are kept per origin
 * (ingress node) because each node's timestamps are monotonic on its own clock, while clocks of
 * two nodes may be seconds apart: one shared floor would refuse a node whose clock runs behind.
 *
 * Storage is one Map<string, number> (origin + NUL + nonce as latin1 → timestamp): insertion order
 * gives the eviction order and no per-entry object is allocated. Only headers whose MAC verified
 * reach this cache, so only cluster members can fill it.
 */

export type ReplayVerdict = 'ok' | 'stale' | 'replay';

export interface ReplayCacheOptions {
  /** Accepted clock difference either way, ms. Default 30 000. */
  readonly windowMs?: number;
  /** Maximum remembered nonces. Default 100 000. */
  readonly maxEntries?: number;
  /** Maximum origins with a floor; origins are node ids, so this is never reached in practice. */
  readonly maxOrigins?: number;
}

export interface ReplayStats {
  readonly size: number;
  readonly evicted: number;
}

export class ReplayCache {
  readonly #windowMs: number;
  readonly #maxEntries: number;
  readonly #maxOrigins: number;
  readonly #seen = new Map<string, number>();
  readonly #floor = new Map<string, number>();
  #evicted = 0;

  constructor(opts: ReplayCacheOptions = {}) {
    this.#windowMs = opts.windowMs ?? 30_000;
    this.#maxEntries = Math.max(1, opts.maxEntries ?? 100_000);
    this.#maxOrigins = Math.max(1, opts.maxOrigins ?? 1024);
  }

  get windowMs(): number {
    return this.#windowMs;
  }

  get stats(): ReplayStats {
    return { size: this.#seen.size, evicted: this.#evicted };
  }

  /**
   * Checks a header's timestamp and nonce and, when accepted, remembers the nonce. Atomic: two
   * arrivals of the same header get 'ok' once.
   */
  check(origin: string, timestampMs: number, nonce: Uint8Array, now: number = Date.now()): ReplayVerdict {
    if (!Number.isFinite(timestampMs) || Math.abs(now - timestampMs) > this.#windowMs) return 'stale';
    const floor = this.#floor.get(origin);
    if (floor !== undefined && timestampMs <= floor) return 'stale';
    this.#expire(now);
    const id = origin + '\u0000' + Buffer.from(nonce.buffer, nonce.byteOffset, nonce.byteLength).toString('latin1');
    if (this.#seen.has(id)) return 'replay';
    while (this.#seen.size >= this.#maxEntries) this.#evictOldest();
    this.#seen.set(id, timestampMs);
    return 'ok';
  }

  clear(): void {
    this.#seen.clear();
    this.#floor.clear();
  }

  /** Drops entries from the front while they are outside the window (amortised O(1)). */
  #expire(now: number): void {
    const limit = now - this.#windowMs;
    for (const [id, ts] of this.#seen) {
      if (ts >= limit) break;
      this.#seen.delete(id);
    }
  }

  #evictOldest(): void {
    const first = this.#seen.entries().next();
    if (first.done) return;
    const [id, ts] = first.value;
    this.#seen.delete(id);
    this.#evicted++;
    const origin = id.slice(0, id.indexOf('\u0000'));
    const floor = this.#floor.get(origin);
    if (floor === undefined || ts > floor) {
      // Delete then set keeps the most recently raised floors last; the bound drops the oldest.
      this.#floor.delete(origin);
      if (this.#floor.size >= this.#maxOrigins) {
        const oldest = this.#floor.keys().next();
        if (!oldest.done) this.#floor.delete(oldest.value);
      }
      this.#floor.set(origin, ts);
    }
  }
}
