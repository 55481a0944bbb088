/**
 * Anti-replay for the UDP data plane, per sending node: a sliding window over a 64-bit sequence
 * number, as IPsec ESP does (RFC 4303 section 3.4.3), kept as a ring of 32-bit words so that
 * advancing the window clears whole words instead of shifting a bitmap (RFC 6479). A datagram is
 * accepted once; one older than the window or already seen is refused. The window admits
 * reordering up to WINDOW_BITS datagrams, far more than a LAN reorders.
 *
 * Sequence numbers are made by `SequenceSource`: max(previous + 1, now_ms × 2^20). Tying them to
 * the clock keeps them increasing across a sender's restart (no persisted state), and lets a
 * receiver that restarts refuse everything stamped before its own start (`floor`), so that
 * datagrams captured before the restart cannot be replayed into the new process either.
 */

const WORDS = 32; // a power of two
const WORD_MASK = BigInt(WORDS - 1);
/** RFC 6479 keeps one word of the ring spare, so the usable window is (WORDS - 1) × 32. */
export const WINDOW_BITS = (WORDS - 1) * 32;
const WINDOW = BigInt(WINDOW_BITS);
/** Low bits of a sequence number that count datagrams within one millisecond. */
export const SEQ_SHIFT = 20n;

export class ReplayWindow {
  #top: bigint;
  readonly #floor: bigint;
  readonly #bits = new Uint32Array(WORDS);

  /** Sequence numbers at or below `floor` are refused. */
  constructor(floor = 0n) {
    this.#floor = floor;
    this.#top = floor;
  }

  /** The highest accepted sequence number (the floor before any). */
  get top(): bigint {
    return this.#top;
  }

  /**
   * Accepts `seq` (and remembers it) or refuses it. Call only after the datagram's MAC verified:
   * a forged sequence number must not move the window.
   */
  accept(seq: bigint): boolean {
    if (seq <= this.#floor) return false;
    if (seq > this.#top) {
      // Clear the words the window slides over; at most the whole ring.
      const cur = this.#top >> 5n;
      let diff = (seq >> 5n) - cur;
      if (diff > BigInt(WORDS)) diff = BigInt(WORDS);
      for (let i = 1n; i <= diff; i++) this.#bits[Number((cur + i) & WORD_MASK)] = 0;
      this.#top = seq;
    } else if (this.#top - seq >= WINDOW) {
      return false;
    }
    const w = Number((seq >> 5n) & WORD_MASK);
    const bit = (1 << Number(seq & 31n)) >>> 0;
    if ((this.#bits[w]! & bit) !== 0) return false;
    this.#bits[w] = (this.#bits[w]! | bit) >>> 0;
    return true;
  }
}

/** The sender's side: strictly increasing sequence numbers tied to the wall clock. */
export class SequenceSource {
  #last = 0n;
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  next(): bigint {
    const t = BigInt(this.#now()) << SEQ_SHIFT;
    this.#last = t > this.#last ? t : this.#last + 1n;
    return this.#last;
  }
}

/** The floor for a receiver started at `startMs`: refuse what was stamped before it, less a grace for clock skew. */
export function replayFloor(startMs: number, graceMs: number): bigint {
  return BigInt(Math.max(0, startMs - graceMs)) << SEQ_SHIFT;
}
