/**
 * `random`: each available backend with probability weight / sum(weights), from ctx.random (one
 * draw, one linear walk: lists are short, so an alias table would not pay for its rebuilds).
 */
import type { BackendView, PickContext, Selector } from './selector.js';
import { isPickable } from './selector.js';

export class RandomSelector implements Selector {
  readonly name = 'random';

  pick(backends: readonly BackendView[], ctx: PickContext): number {
    let total = 0;
    for (let i = 0; i < backends.length; i++) {
      const b = backends[i];
      if (isPickable(b)) total += b.weight;
    }
    if (total === 0) return -1;
    let r = ctx.random() * total;
    let last = -1;
    for (let i = 0; i < backends.length; i++) {
      const b = backends[i];
      if (!isPickable(b)) continue;
      last = i;
      r -= b.weight;
      if (r < 0) return i;
    }
    return last; // float rounding left r at ~0 after the last candidate
  }
}
