/**
 * The Maglev lookup table (D. E. Eisenbud et al., "Maglev: A Fast and Reliable Software Network
 * Load Balancer", NSDI 2016, section 3.4 "Consistent Hashing", Pseudocode 1).
 *
 * Each backend i has a preference list over the M table slots, permutation[i][j] =
 * (offset_i + j * skip_i) mod M with offset = h1(name) mod M and skip = h2(name) mod (M - 1) + 1;
 * M prime makes every such list a full permutation. Backends take turns claiming their next
 * preferred slot that is still empty until the table is full. Every backend ends up with about M/N
 * slots, and when one backend leaves, the others' preference lists are unchanged, so most slots
 * keep their owner: the paper's Figure 6 measures the disruption.
 *
 * Weights. The paper (section 3.4) notes that weights can be supported by changing how often a
 * backend takes its turn. The schedule used here is Envoy's (source/common/upstream/maglev_lb.cc):
 * rounds are numbered 1, 2, ...; backend i takes a turn in round r while r * w_i >= target_i and
 * then raises target_i by max(w). The heaviest backend claims a slot every round, one of half its
 * weight every other round, and so on, so shares are proportional to weight while the turns stay
 * interleaved (a backend never claims a run of slots in one go, which would bias the shape of the
 * table). Weights are small integers (see quantizeWeights), which keeps the arithmetic exact.
 */

/** Default table size: the paper's smaller production size, a prime well above 100 x backends. */
export const DEFAULT_TABLE_SIZE = 65537;

export interface MaglevMember {
  readonly address: string;
  /** A positive integer (see quantizeWeights). */
  readonly weight: number;
}

/** Deterministic trial division; table sizes are at most a few million. */
export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

// Fractional weights are rounded to steps of 1/WEIGHT_LEVELS of the heaviest one. A new table is
// built only when some rounded weight changes, so slow start (which nudges a weight on every tick)
// costs at most WEIGHT_LEVELS rebuilds per ramp instead of one per pick; a 0.1% step is well below
// the few-percent accuracy anyone expects of weighted shares.
export const WEIGHT_LEVELS = 1000;

/**
 * Positive integer weights for the table. Weights that are already integers no larger than
 * WEIGHT_LEVELS are kept as they are (exact shares for typical configs: 1, 2, 3); otherwise each
 * becomes round(w / max(w) * WEIGHT_LEVELS), at least 1.
 */
export function quantizeWeights(weights: readonly number[]): number[] {
  let max = 0;
  let integral = true;
  for (const w of weights) {
    if (w > max) max = w;
    if (!Number.isInteger(w)) integral = false;
  }
  if (integral && max <= WEIGHT_LEVELS) return weights.slice();
  return weights.map((w) => Math.max(1, Math.round((w / max) * WEIGHT_LEVELS)));
}

/**
 * Builds the table for `members` (order matters only for turn order; callers sort by address so
 * that every node builds the same table). Returns, for each slot, the index into `members`; an
 * empty member list gives an empty table.
 */
export function buildMaglevTable(
  members: readonly MaglevMember[],
  size: number,
  hashes: { readonly h1: (s: string) => number; readonly h2: (s: string) => number },
): Int32Array {
  const n = members.length;
  if (n === 0) return new Int32Array(0);
  const table = new Int32Array(size).fill(-1);
  const position = new Float64Array(n); // current slot of permutation[i][next_i]
  const skip = new Float64Array(n);
  const target = new Float64Array(n);
  let maxWeight = 0;
  for (let i = 0; i < n; i++) {
    const m = members[i];
    position[i] = hashes.h1(m.address) % size;
    skip[i] = (hashes.h2(m.address) % (size - 1)) + 1;
    if (m.weight > maxWeight) maxWeight = m.weight;
  }
  let filled = 0;
  for (let round = 1; filled < size; round++) {
    for (let i = 0; i < n && filled < size; i++) {
      if (round * members[i].weight < target[i]) continue;
      target[i] += maxWeight;
      let c = position[i];
      const s = skip[i];
      while (table[c] !== -1) {
        c += s;
        if (c >= size) c -= size;
      }
      table[c] = i;
      c += s;
      position[i] = c >= size ? c - size : c;
      filled++;
    }
  }
  return table;
}
