/**
 * `least-connections`: the backend with the fewest active connections per unit of weight, as
 * nginx's ngx_http_upstream_get_least_conn_peer() (src/http/modules/
 * ngx_http_upstream_least_conn_module.c). Ratios are compared by cross-multiplication,
 * `a.active * b.weight < b.active * a.weight`, which avoids the division and treats 0/w exactly.
 * When several backends tie for the lowest ratio, nginx picks among them by smooth weighted
 * round-robin; so does this policy, so that equally loaded backends (typically all idle) share the
 * load in proportion to weight instead of all new work landing on the first one in the list.
 */
import type { BackendView, PickContext, Selector } from './selector.js';
import { isPickable } from './selector.js';
import { SmoothWeights } from './smooth-weights.js';

export class LeastConnectionsSelector implements Selector {
  readonly name = 'least-connections';
  #weights = new SmoothWeights();
  #tied: number[] = [];

  pick(backends: readonly BackendView[], _ctx?: PickContext): number {
    const tied = this.#tied;
    tied.length = 0;
    let best: BackendView | undefined;
    for (let i = 0; i < backends.length; i++) {
      const b = backends[i];
      if (!isPickable(b)) continue;
      if (best === undefined || b.active * best.weight < best.active * b.weight) {
        best = b;
        tied.length = 0;
        tied.push(i);
      } else if (b.active * best.weight === best.active * b.weight) {
        tied.push(i);
      }
    }
    if (tied.length === 0) return -1;
    this.#weights.begin(backends);
    if (tied.length === 1) return tied[0];
    return this.#weights.step(backends, tied);
  }
}
