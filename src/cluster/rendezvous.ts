/**
 * Weighted rendezvous (highest-random-weight) hashing: which node is a flow's primary owner and
 * which its backup (docs/design.md §2).
 *
 * Method. Every node gets a pseudorandom score per flow key and the nodes are ranked by score.
 * This is HRW hashing, D. G. Thaler and C. V. Ravishankar, "Using name-based mappings to increase
 * hit rates", IEEE/ACM Transactions on Networking 6(1), 1998. Its properties are why the cluster
 * uses it: removing a node changes only the flows it owned (they move to their second choice,
 * which is exactly the backup), and adding a node takes only the flows it now wins. The weighted
 * score −w / ln(u), u uniform in (0, 1), gives node i a share w_i / Σw of keys: it is the logarithmic
 * method of C. Schindelhauer and G. Schomaker, "Weighted Distributed Hash Tables" (SPAA 2005), also
 * in J. Resch, "New Hashing Algorithms for Data Storage" (SNIA SDC 2015). Taking the top two of the
 * ranking as primary and secondary is what GitHub's glb-director does for its forwarding table
 * (github.com/github/glb-director, docs/development/glb-hashing.md).
 *
 * Byte-level definition (enough to reimplement it elsewhere):
 *
 *   K      = first 16 bytes of HMAC-SHA256(key = secret, message = ASCII "tandem/rendezvous/v1"),
 *            the secret taken as its UTF-8 bytes when it is a string.
 *   H(m)   = SipHash-2-4 under K of the byte string m, as an unsigned 64-bit integer (siphash.ts).
 *   kh     = H(UTF-8(flow key)). Strings are encoded as by TextEncoder: a lone surrogate becomes
 *            U+FFFD, so such keys share a hash with keys holding a real U+FFFD.
 *   seed_n = H(0xFF || UTF-8(node id)). The byte 0xFF never occurs in UTF-8, so the bytes of a
 *            flow key never equal a seed's input (domain separation: a key named like a node
 *            would otherwise give kh = seed_n, x = fmix64(0) = 0).
 *   x      = fmix64(kh XOR seed_n), the 64-bit finaliser of Austin Appleby's MurmurHash3:
 *              x ^= x >> 33; x *= 0xff51afd7ed558ccd; x ^= x >> 33;
 *              x *= 0xc4ceb9fe1a85ec53; x ^= x >> 33          (all mod 2^64)
 *            fmix64 is a bijection with full avalanche, so each node's x is uniform and the x of
 *            different nodes are unrelated in practice; SipHash already makes kh unpredictable.
 *   h      = x >> 11 (the top 53 bits, exact in a double).
 *   u      = (h + 0.5) / 2^53, strictly inside (0, 1), so ln(u) is finite and negative.
 *   score  = −weight / ln(u), an IEEE-754 double computed as `-weight / Math.log(u)`.
 *   Order  = score descending; equal scores break on node id ascending (JavaScript string
 *            comparison, i.e. by UTF-16 code units). Two nodes tie only with (nearly) equal
 *            53-bit h, odds of about 2^-53 per pair, so the rule exists for determinism alone.
 *   Eligible nodes have a finite weight > 0; others are never ranked. Ids are expected to be
 *   unique; a repeated id counts once, with its best score.
 *
 * Hashing the flow key once and combining it per node with a cheap mixer, rather than one SipHash
 * per (key, node) pair, follows glb-director, which derives one seed per table row with SipHash and
 * then combines it with each server. It keeps a 16-node decision under a microsecond.
 *
 * Caveat for other implementations: Math.log is not guaranteed to be correctly rounded, so a libm
 * that differs in the last bit could, very rarely, order two nearly equal scores differently.
 * Within Node (one V8) the order is exactly reproducible.
 */
import { createHmac } from 'node:crypto';
import { TandemError, ErrorCodes } from '../errors.js';
import { sipKey, siphash24Into, type SipKey } from './siphash.js';

export interface RendezvousNode {
  readonly id: string;
  readonly weight: number;
}

export interface NodeScore {
  readonly id: string;
  readonly weight: number;
  readonly score: number;
}

const KEY_LABEL = 'tandem/rendezvous/v1';
/** 2^-53: scales a 53-bit integer into [0, 1). */
const TWO_POW_M53 = 1 / 9007199254740992;
/** Flow keys up to this many UTF-16 units are encoded into a reused buffer; longer ones allocate. */
const SCRATCH_CHARS = 256;
/** Node ids come from configuration, so this bound is never reached in practice; it only stops
 * callers that pass arbitrary ids to score() from growing the cache without limit. */
const MAX_CACHED_SEEDS = 4096;

// fmix64 multipliers split into 32-bit halves.
const C1_HI = 0xff51afd7 | 0, C1_LO = 0xed558ccd | 0;
const C2_HI = 0xc4ceb9fe | 0, C2_LO = 0x1a85ec53 | 0;

const encoder = new TextEncoder();

/** The 16-byte SipHash key of a cluster: HMAC-SHA256(secret, "tandem/rendezvous/v1") truncated. */
export function deriveRendezvousKey(secret: string | Uint8Array): Uint8Array {
  const mac = createHmac('sha256', secret).update(KEY_LABEL).digest();
  return new Uint8Array(mac.subarray(0, 16));
}

/** High 32 bits of the unsigned 64-bit product a * b, from 16-bit limbs so that every partial
 * product stays exact in a double (Math.imul only yields the low half). */
function umulhi(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const t = a0 * b0;
  const m1 = a1 * b0 + (t >>> 16);
  const m2 = a0 * b1 + (m1 & 0xffff);
  return a1 * b1 + (m1 >>> 16) + (m2 >>> 16);
}

/**
 * fmix64 (MurmurHash3) of the 64-bit value hi:lo, returning its top 53 bits as an integer-valued
 * double. Exported so that tests can check it against a BigInt reference.
 */
export function mix64Top53(hi: number, lo: number): number {
  let nhi: number;
  lo ^= hi >>> 1; // x ^= x >> 33 only touches the low word
  nhi = (umulhi(lo, C1_LO) + Math.imul(hi, C1_LO) + Math.imul(lo, C1_HI)) | 0;
  lo = Math.imul(lo, C1_LO);
  hi = nhi;
  lo ^= hi >>> 1;
  nhi = (umulhi(lo, C2_LO) + Math.imul(hi, C2_LO) + Math.imul(lo, C2_HI)) | 0;
  lo = Math.imul(lo, C2_LO);
  hi = nhi;
  lo ^= hi >>> 1;
  return (hi >>> 0) * 2097152 + (lo >>> 11); // hi * 2^21 + top 21 bits of lo
}

function eligible(weight: number): boolean {
  return weight > 0 && weight < Infinity; // also false for NaN
}

/** True when (s, id) ranks strictly before (bestS, bestId). */
function before(s: number, id: string, bestS: number, bestId: string): boolean {
  return s > bestS || (s === bestS && id < bestId);
}

/** The ranking order as a sort comparator: higher score first, equal scores by id ascending. */
export function compareScores(a: NodeScore, b: NodeScore): number {
  return before(a.score, a.id, b.score, b.id) ? -1 : before(b.score, b.id, a.score, a.id) ? 1 : 0;
}

/** Score of a node whose seed is shi:slo for a key whose hash is khi:klo (see the header). */
function scoreFrom(khi: number, klo: number, shi: number, slo: number, weight: number): number {
  const h = mix64Top53(khi ^ shi, klo ^ slo);
  return -weight / Math.log((h + 0.5) * TWO_POW_M53);
}

class NodeSeed {
  constructor(readonly hi: number, readonly lo: number) {}
}

export class Rendezvous {
  readonly #key: SipKey;
  readonly #seeds = new Map<string, NodeSeed>();
  // Seeds by position in the last node list seen: callers pass the same ids in the same order on
  // nearly every call, and one string comparison is several times cheaper than a Map lookup.
  #posIds: (string | null)[] = new Array<string | null>(16).fill(null);
  #posHi = new Int32Array(16);
  #posLo = new Int32Array(16);
  readonly #scratch = new Uint8Array(SCRATCH_CHARS * 3);
  /** SipHash of the current flow key, [hi, lo], written by #hashKey. */
  readonly #kh = new Uint32Array(2);

  constructor(secret: string | Uint8Array) {
    this.#key = sipKey(deriveRendezvousKey(secret));
  }

  /** The score of one node for a flow key; 0 for a node that is not eligible (weight <= 0). */
  score(key: string, node: RendezvousNode): number {
    if (!eligible(node.weight)) return 0;
    this.#hashKey(key);
    const seed = this.#seed(node.id);
    return scoreFrom(this.#kh[0] | 0, this.#kh[1] | 0, seed.hi, seed.lo, node.weight);
  }

  /** Eligible nodes with their scores, best first; for the dashboard and `tandem flow`. */
  scores(key: string, nodes: readonly RendezvousNode[]): NodeScore[] {
    this.#hashKey(key);
    const khi = this.#kh[0] | 0, klo = this.#kh[1] | 0;
    const out: NodeScore[] = [];
    for (const n of nodes) {
      if (!eligible(n.weight)) continue;
      const seed = this.#seed(n.id);
      out.push({ id: n.id, weight: n.weight, score: scoreFrom(khi, klo, seed.hi, seed.lo, n.weight) });
    }
    out.sort(compareScores);
    // A duplicated id keeps its best-ranked entry only, as in owners().
    const seen = new Set<string>();
    const unique: NodeScore[] = [];
    for (const s of out) {
      if (seen.has(s.id)) continue;
      seen.add(s.id);
      unique.push(s);
    }
    return unique;
  }

  /** Ids of all eligible nodes, best first. Empty when none is eligible. */
  rank(key: string, nodes: readonly RendezvousNode[]): string[] {
    return this.scores(key, nodes).map((s) => s.id);
  }

  /**
   * The two best-ranked eligible nodes. One pass, no sort and no allocation besides the result,
   * because this runs for every new flow. Throws TandemError(NO_ALIVE_NODE) when no node is eligible.
   */
  owners(key: string, nodes: readonly RendezvousNode[]): { primary: string; backup: string | null } {
    this.#hashKey(key);
    const khi = this.#kh[0] | 0, klo = this.#kh[1] | 0;
    const n = nodes.length;
    if (n > this.#posHi.length) this.#growPositions(n);
    const posIds = this.#posIds, posHi = this.#posHi, posLo = this.#posLo;
    let bestId: string | null = null;
    let bestS = 0;
    let secondId: string | null = null;
    let secondS = 0;
    for (let i = 0; i < n; i++) {
      const node = nodes[i];
      const w = node.weight;
      if (!eligible(w)) continue;
      const id = node.id;
      if (posIds[i] !== id) {
        const seed = this.#seed(id);
        posIds[i] = id;
        posHi[i] = seed.hi;
        posLo[i] = seed.lo;
      }
      const s = scoreFrom(khi, klo, posHi[i], posLo[i], w);
      if (bestId === null || before(s, id, bestS, bestId)) {
        // A repeated id must not end up as both owners.
        if (bestId !== id) {
          secondId = bestId;
          secondS = bestS;
        }
        bestId = id;
        bestS = s;
      } else if (id !== bestId && (secondId === null || before(s, id, secondS, secondId))) {
        secondId = id;
        secondS = s;
      }
    }
    if (bestId === null) {
      throw new TandemError(ErrorCodes.NO_ALIVE_NODE, `no eligible node among ${n} to own flow`);
    }
    return { primary: bestId, backup: secondId };
  }

  /** Writes SipHash of the key's UTF-8 bytes into #kh, without allocating for usual keys. */
  #hashKey(key: string): void {
    const n = key.length;
    const buf = this.#scratch;
    let len = -1;
    if (n <= SCRATCH_CHARS) {
      // Flow keys are nearly always ASCII (addresses, ports, header values); a plain loop beats a
      // call into TextEncoder for them.
      len = n;
      for (let i = 0; i < n; i++) {
        const c = key.charCodeAt(i);
        if (c > 0x7f) {
          len = encoder.encodeInto(key, buf).written; // 3 bytes per unit always fit
          break;
        }
        buf[i] = c;
      }
    }
    if (len >= 0) {
      siphash24Into(this.#key, buf, len, this.#kh);
    } else {
      const bytes = encoder.encode(key);
      siphash24Into(this.#key, bytes, bytes.length, this.#kh);
    }
  }

  #growPositions(n: number): void {
    for (let i = this.#posIds.length; i < n; i++) this.#posIds.push(null);
    const hi = new Int32Array(n), lo = new Int32Array(n);
    hi.set(this.#posHi);
    lo.set(this.#posLo);
    this.#posHi = hi;
    this.#posLo = lo;
  }

  #seed(id: string): NodeSeed {
    const cached = this.#seeds.get(id);
    if (cached !== undefined) return cached;
    const utf8 = encoder.encode(id);
    const input = new Uint8Array(utf8.length + 1);
    input[0] = 0xff;
    input.set(utf8, 1);
    const out = new Uint32Array(2);
    siphash24Into(this.#key, input, input.length, out);
    const seed = new NodeSeed(out[0] | 0, out[1] | 0);
    if (this.#seeds.size >= MAX_CACHED_SEEDS) this.#seeds.clear();
    this.#seeds.set(id, seed);
    return seed;
  }
}
