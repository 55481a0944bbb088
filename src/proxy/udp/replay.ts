/**
 * Anti-replay for the UDP data plane, per sending node: a sliding window over a 64-bit sequence
 * number, as IPsec ESP does (RFC 4303 section 3.4.3), kept as a ring of 32-bit words so that
 * advancing the window clears whole words instead of shifting a bitmap (RFC 6479). A datagram is
 * accepted once; one older than the window or already seen is refused. The window admits
 * reordering up to WINDOW_BITS datagrams, far more than a LAN reorders.
 *
 * Sequence numbers are a plain per-process counter from 1; what makes them unambiguous across
 * restarts is the pair of incarnations every datagram carries (encap.ts): a window belongs to one
 * incarnation of the sender, and the receiver accepts only the incarnation the sender announced
 * on its authenticated control link, addressed to the receiver's own current incarnation
 * (DatagramFreshness). No clock is read: two nodes whose clocks disagree by hours still accept
 * each other's datagrams, and a datagram captured before either end restarted is refused.
 */

const WORDS = 32; // a power of two
const WORD_MASK = BigInt(WORDS - 1);
/** RFC 6479 keeps one word of the ring spare, so the usable window is (WORDS - 1) × 32. */
export const WINDOW_BITS = (WORDS - 1) * 32;
const WINDOW = BigInt(WINDOW_BITS);

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

/**
 * The receiver's checks, per sending peer: the datagram is addressed to this incarnation of the
 * receiver, comes from the incarnation the sender last announced on its control link, and its
 * counter is new to that incarnation's window. Call only after the MAC verified.
 */
export class DatagramFreshness {
  readonly #self: Uint8Array;
  readonly #byPeer = new Map<string, { incarnation: Buffer; window: ReplayWindow }>();

  constructor(selfIncarnation: Uint8Array) {
    this.#self = selfIncarnation;
  }

  /**
   * Whether the datagram belongs to the current pair of incarnations: its receiver incarnation
   * is ours and its sender incarnation is `announced` (null: the sender announced none yet).
   */
  current(announced: Uint8Array | null, senderIncarnation: Uint8Array, receiverIncarnation: Uint8Array): boolean {
    return announced !== null && Buffer.compare(senderIncarnation, announced) === 0 && Buffer.compare(receiverIncarnation, this.#self) === 0;
  }

  /**
   * Accepts a counter of `peer`'s incarnation `incarnation` (checked current()) once. A new
   * incarnation of the peer starts a new window: its counter starts again from 1.
   */
  accept(peer: string, incarnation: Uint8Array, counter: bigint): boolean {
    let w = this.#byPeer.get(peer);
    if (w === undefined || Buffer.compare(w.incarnation, incarnation) !== 0) {
      w = { incarnation: Buffer.from(incarnation), window: new ReplayWindow(0n) };
      this.#byPeer.set(peer, w);
    }
    return w.window.accept(counter);
  }
}
