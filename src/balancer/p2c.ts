/**
 * `p2c`: the power of two random choices (M. Mitzenmacher, "The Power of Two Choices in Randomized
 * Load Balancing", IEEE TPDS 12(10), 2001). Draw two distinct backends at random and send to the
 * less loaded one, load being active/weight. Compared with least-connections it needs no global
 * minimum, so it degrades gracefully when the `active` counts are stale or shared by many
 * balancers (the herd effect the paper's section 1 describes), while still avoiding the worst
 * backend: the most loaded backend can never win against any other.
 *
 * The two candidates are drawn in proportion to weight, without replacement, and a tie on load goes
 * to the first draw; so with all backends idle the shares follow the weights, and under load the
 * comparison on active/weight keeps active counts proportional to weight.
 */
import type { BackendView, PickContext, Selector } from './selector.js';
import { isPickable } from './selector.js';

/** The index in `backends` reached by `r` (in [0, total)) over pickable weights, skipping `skip`. */
function draw(backends: readonly BackendView[], r: number, skip: number): number {
  let last = -1;
  for (let i = 0; i < backends.length; i++) {
    if (i === skip) continue;
    const b = backends[i];
    if (!isPickable(b)) continue;
    last = i;
    r -= b.weight;
    if (r < 0) return i;
  }
  return last; // float rounding left r at ~0 after the last candidate
}

export class P2cSelector implements Selector {
  readonly name = 'p2c';

  pick(backends: readonly BackendView[], ctx: PickContext): number {
    let count = 0;
    let total = 0;
    let only = -1;
    for (let i = 0; i < backends.length; i++) {
      const b = backends[i];
      if (!isPickable(b)) continue;
      count++;
      total += b.weight;
      only = i;
    }
    if (count <= 1) return only;
    const a = draw(backends, ctx.random() * total, -1);
    const b = draw(backends, ctx.random() * (total - backends[a].weight), a);
    const ba = backends[a];
    const bb = backends[b];
    return bb.active * ba.weight < ba.active * bb.weight ? b : a;
  }
}
