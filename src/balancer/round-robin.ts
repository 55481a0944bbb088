/**
 * `round-robin`: nginx's smooth weighted round-robin (see smooth-weights.ts), over the backends that
 * are available and have a positive weight. Ignores the flow key: affinity comes from the flow
 * table, which records the backend chosen for a flow's first communication.
 */
import type { BackendView, PickContext, Selector } from './selector.js';
import { isPickable } from './selector.js';
import { SmoothWeights } from './smooth-weights.js';

export class RoundRobinSelector implements Selector {
  readonly name = 'round-robin';
  #weights = new SmoothWeights();
  #candidates: number[] = [];

  pick(backends: readonly BackendView[], _ctx?: PickContext): number {
    const candidates = this.#candidates;
    candidates.length = 0;
    for (let i = 0; i < backends.length; i++) if (isPickable(backends[i])) candidates.push(i);
    if (candidates.length === 0) return -1;
    this.#weights.begin(backends);
    if (candidates.length === 1) return candidates[0];
    return this.#weights.step(backends, candidates);
  }
}
