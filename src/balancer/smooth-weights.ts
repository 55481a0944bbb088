/**
 * The smooth weighted round-robin step of nginx, shared by the round-robin and least-connections
 * policies. From ngx_http_upstream_get_peer() in src/http/ngx_http_upstream_round_robin.c: every
 * candidate adds its effective weight to its current weight, the candidate with the highest current
 * weight wins (the first one on ties, by the strict `>`), and the winner gives back the sum of the
 * weights. Over any window of sum(weights) picks each backend is chosen exactly `weight` times, and
 * the picks of a heavy backend are spread out instead of bunched (5,1,1 gives a a b a c a a).
 *
 * nginx keeps current_weight inside each peer and resets it on reload. Here the backend list is
 * handed in afresh on every call and may change between calls, so current weights are kept in a map
 * keyed by address: a backend keeps its position while it stays in the list (even while it is
 * unavailable, as nginx's down peers keep theirs), starts at 0 when it appears, and is forgotten
 * when it leaves the list.
 */
import type { BackendView } from './selector.js';

interface Slot {
  current: number;
  seen: number;
}

export class SmoothWeights {
  #slots = new Map<string, Slot>();
  #epoch = 0;
  /** Addresses of the list last seen by begin(), and their slots by index. */
  #listed: string[] = [];
  #aligned: Slot[] = [];

  /** Starts a pick over `backends`: aligns the slots with the list, creating and pruning. */
  begin(backends: readonly BackendView[]): void {
    if (this.#sameList(backends)) return;
    const epoch = ++this.#epoch;
    const aligned: Slot[] = new Array<Slot>(backends.length);
    for (let i = 0; i < backends.length; i++) {
      const address = backends[i].address;
      let slot = this.#slots.get(address);
      if (slot) slot.seen = epoch;
      else this.#slots.set(address, (slot = { current: 0, seen: epoch }));
      aligned[i] = slot;
    }
    // Only walk the map when something left the list.
    if (this.#slots.size > backends.length) {
      for (const [address, slot] of this.#slots) if (slot.seen !== epoch) this.#slots.delete(address);
    }
    this.#listed = backends.map((b) => b.address);
    this.#aligned = aligned;
  }

  // Most calls see the same list as the previous one; comparing addresses (usually the very same
  // string objects) is much cheaper than a map lookup per backend.
  #sameList(backends: readonly BackendView[]): boolean {
    const listed = this.#listed;
    if (listed.length !== backends.length) return false;
    for (let i = 0; i < listed.length; i++) if (listed[i] !== backends[i].address) return false;
    return true;
  }

  /**
   * One nginx step over the candidates `indices` of `backends`, which must all be pickable and
   * must be the list last given to begin(). Returns the chosen index in `backends`.
   */
  step(backends: readonly BackendView[], indices: readonly number[]): number {
    let best = -1;
    let bestSlot: Slot | undefined;
    let total = 0;
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k];
      const b = backends[i];
      const slot = this.#aligned[i];
      slot.current += b.weight;
      total += b.weight;
      if (bestSlot === undefined || slot.current > bestSlot.current) {
        best = i;
        bestSlot = slot;
      }
    }
    if (bestSlot) bestSlot.current -= total;
    return best;
  }

  /** Tracked addresses (for tests: state must not grow with churn). */
  get size(): number {
    return this.#slots.size;
  }
}
