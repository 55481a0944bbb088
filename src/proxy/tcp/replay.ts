/**
 * Duplicate guard for forwarded-stream headers (stream-header.ts).
 *
 * Freshness of a TCP forward comes from its stream, not from a clock: every data-plane stream is a
 * connection of its own that starts with the mutual challenge–response of the cluster transport
 * (fresh random nonces from both ends, docs/protocol.md), and the receiver reads exactly one
 * header, the stream's first bytes, before handing the stream over. A header captured from one
 * stream therefore cannot be offered again except by writing it into another authenticated stream
 * before that stream's own header — which only an on-path attacker of an unencrypted peer network
 * can do, and who could then just as well alter the client bytes that follow (`cluster.tls`
 * closes both). What stays is defence in depth against exactly that: each header carries a
 * random 16-byte nonce, and a nonce seen recently from the same ingress node is refused.
 *
 * Earlier versions also refused headers whose timestamp lay more than ±30 s from the receiver's
 * clock; that made a node whose clock was off unable to forward or be forwarded to, and is gone.
 * The timestamp is still sent (diagnostics) and ignored here.
 *
 * Memory is bounded (maxEntries): one Map<string, true> (origin + NUL + nonce as latin1) whose
 * insertion order gives the eviction order; the oldest remembered nonce is forgotten first. Only
 * headers whose MAC verified reach this cache, so only cluster members can fill it.
 */

export type ReplayVerdict = 'ok' | 'replay';

export interface ReplayCacheOptions {
  /** Maximum remembered nonces. Default 100 000. */
  readonly maxEntries?: number;
}

export interface ReplayStats {
  readonly size: number;
  readonly evicted: number;
}

export class ReplayCache {
  readonly #maxEntries: number;
  readonly #seen = new Map<string, true>();
  #evicted = 0;

  constructor(opts: ReplayCacheOptions = {}) {
    this.#maxEntries = Math.max(1, opts.maxEntries ?? 100_000);
  }

  get stats(): ReplayStats {
    return { size: this.#seen.size, evicted: this.#evicted };
  }

  /** Remembers the (origin, nonce) pair and says 'ok' the first time, 'replay' after. */
  check(origin: string, nonce: Uint8Array): ReplayVerdict {
    const id = origin + '\u0000' + Buffer.from(nonce.buffer, nonce.byteOffset, nonce.byteLength).toString('latin1');
    if (this.#seen.has(id)) return 'replay';
    while (this.#seen.size >= this.#maxEntries) {
      const oldest = this.#seen.keys().next();
      if (oldest.done) break;
      this.#seen.delete(oldest.value);
      this.#evicted++;
    }
    this.#seen.set(id, true);
    return 'ok';
  }

  clear(): void {
    this.#seen.clear();
  }
}
