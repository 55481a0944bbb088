/**
 * `consistent-hash`: the flow key picks the backend through a Maglev table (maglev.ts) over the
 * available backends. The same key gives the same backend on every node and across restarts, and
 * when one of N backends becomes unavailable only about 1/N of keys move (those it served).
 *
 * In tandem the flow table already gives a flow affinity once its backend is recorded; this policy
 * adds affinity for what the flow table does not remember: flows that expired and come back,
 * several flows of one user (flowKey header:/cookie:), and backend caches that like a stable
 * key-to-backend mapping.
 *
 * Building a table costs O(M log M); picking costs one hash and one array read. The table is
 * rebuilt only when the set of available addresses or their (quantised) weights changes: the
 * signature is `address*weight` of the available backends sorted by address, so a reordered list
 * or a change in an unavailable backend, `active` counts included, costs no rebuild. A cheaper
 * check, element-wise equality with the previous call's list, short-cuts even the signature.
 */
import { TandemError, ErrorCodes } from '../errors.js';
import { fmix32, fnv1a32, keyHash } from './hash.js';
import { buildMaglevTable, DEFAULT_TABLE_SIZE, isPrime, quantizeWeights, type MaglevMember } from './maglev.js';
import type { BackendView, PickContext, Selector } from './selector.js';
import { isPickable } from './selector.js';

export interface ConsistentHashOptions {
  /** Maglev table size, a prime; default 65537. Smaller primes are for tests. */
  readonly tableSize?: number;
}

// Two independent hashes of the backend address for offset and skip (Maglev section 3.4 uses h1,
// h2); the second FNV basis is an arbitrary odd constant.
const MEMBER_HASHES = {
  h1: (s: string): number => fmix32(fnv1a32(s)),
  h2: (s: string): number => fmix32(fnv1a32(s, 0x9747b28c)),
};

const EMPTY = new Int32Array(0);

export class ConsistentHashSelector implements Selector {
  readonly name = 'consistent-hash';
  readonly tableSize: number;
  #table: Int32Array = EMPTY;
  #signature = '';
  /** Sorted member index → index in the caller's list of the previous call. */
  #toInput: Int32Array = EMPTY;
  #seenAddress: string[] = [];
  /** Weight of each listed backend as seen last call; -1 when not pickable. */
  #seenWeight: number[] = [];
  #builds = 0;

  constructor(options: ConsistentHashOptions = {}) {
    const size = options.tableSize ?? DEFAULT_TABLE_SIZE;
    if (!isPrime(size) || size > 16_777_213) {
      throw new TandemError(ErrorCodes.CONFIG_INVALID, `consistent-hash tableSize must be a prime up to 16777213, got ${size}`);
    }
    this.tableSize = size;
  }

  pick(backends: readonly BackendView[], ctx: PickContext): number {
    if (!this.#sameAsLastCall(backends)) this.#refresh(backends);
    if (this.#table.length === 0) return -1;
    return this.#toInput[this.#table[keyHash(ctx.key) % this.tableSize]];
  }

  /** Number of Maglev tables built so far (tests check that stable input does not rebuild). */
  get builds(): number {
    return this.#builds;
  }

  #sameAsLastCall(backends: readonly BackendView[]): boolean {
    if (backends.length !== this.#seenAddress.length) return false;
    for (let i = 0; i < backends.length; i++) {
      const b = backends[i];
      if (b.address !== this.#seenAddress[i] || (isPickable(b) ? b.weight : -1) !== this.#seenWeight[i]) return false;
    }
    return true;
  }

  #refresh(backends: readonly BackendView[]): void {
    this.#seenAddress = backends.map((b) => b.address);
    this.#seenWeight = backends.map((b) => (isPickable(b) ? b.weight : -1));
    const listed: number[] = [];
    for (let i = 0; i < backends.length; i++) if (isPickable(backends[i])) listed.push(i);
    // Sort by address so that every node (and every list order) builds the same table.
    listed.sort((x, y) => (backends[x].address < backends[y].address ? -1 : backends[x].address > backends[y].address ? 1 : x - y));
    const weights = quantizeWeights(listed.map((i) => backends[i].weight));
    const members: MaglevMember[] = listed.map((i, k) => ({ address: backends[i].address, weight: weights[k] }));
    const signature = members.map((m) => `${m.address}*${m.weight}`).join('\n');
    if (signature !== this.#signature) {
      this.#table = buildMaglevTable(members, this.tableSize, MEMBER_HASHES);
      this.#signature = signature;
      if (members.length > 0) this.#builds++;
    }
    this.#toInput = Int32Array.from(listed);
  }
}
