/**
 * Read buffers for the byte pipes (pipe.ts), recycled across connections.
 *
 * Node's default socket read path allocates a fresh 64 KiB backing store for every read and lets
 * the garbage collector free it: at 1 GB/s that is 16 000 external allocations a second, which
 * drives V8's external-memory heuristics into frequent full collections whose cost grows with
 * whatever else the heap holds (the HTTP service's pools, the flow table). A pipe instead reads
 * into buffers it owns (`onread`, pipe.ts) and hands them back here when their writes are done.
 *
 * Two sizes: a small one that every connection holds while it is idle or carries small messages,
 * and a large one that a direction switches to once a read fills the small one (bulk transfer).
 * The free lists are bounded: beyond them a returned buffer is left to the garbage collector, so
 * the pool never holds more than `maxSmall × SMALL + maxLarge × LARGE` bytes of idle memory.
 */

/** Held by every open direction: small enough for ten thousand idle connections. */
export const SMALL_BUFFER = 4 * 1024;
/** libuv's own read size suggestion, and what Node reads per call by default. */
export const LARGE_BUFFER = 64 * 1024;

export interface BufferPoolOptions {
  /** Free small buffers kept. Default 1024 (4 MiB). */
  readonly maxSmall?: number;
  /** Free large buffers kept. Default 64 (4 MiB). */
  readonly maxLarge?: number;
}

export class BufferPool {
  readonly #small: Buffer[] = [];
  readonly #large: Buffer[] = [];
  readonly #maxSmall: number;
  readonly #maxLarge: number;
  /** Buffers made because the free list was empty (for tests and tuning). */
  allocated = 0;

  constructor(opts: BufferPoolOptions = {}) {
    this.#maxSmall = opts.maxSmall ?? 1024;
    this.#maxLarge = opts.maxLarge ?? 64;
  }

  get free(): number {
    return this.#small.length + this.#large.length;
  }

  take(large: boolean): Buffer {
    const b = large ? this.#large.pop() : this.#small.pop();
    if (b !== undefined) return b;
    this.allocated++;
    // Unpooled: each buffer owns its memory, so returning one never pins a slab of others.
    return Buffer.allocUnsafeSlow(large ? LARGE_BUFFER : SMALL_BUFFER);
  }

  /**
   * Returns a buffer nobody reads into or writes from any more. The caller guarantees that: a
   * buffer lent to a pending write comes back only from that write's callback.
   */
  give(b: Buffer): void {
    if (b.length === LARGE_BUFFER) {
      if (this.#large.length < this.#maxLarge) this.#large.push(b);
    } else if (b.length === SMALL_BUFFER) {
      if (this.#small.length < this.#maxSmall) this.#small.push(b);
    }
  }
}
