/**
 * Per route outcomes at the ingress (docs/metrics.md): routed, no-route, rate-limited, redirected.
 * Children are looked up once per (route, outcome) and cached, not per request.
 */
import type { Counter, Registry } from 'prom-client';
import { counter } from '../../metrics.js';

export type RouteOutcome = 'routed' | 'no-route' | 'rate-limited' | 'redirected';

const NAME = 'tandem_http_route_requests_total';

interface Inc {
  inc(): void;
}

export class RouteMetrics {
  readonly #counter: Counter<'service' | 'route' | 'outcome'>;
  readonly #service: string;
  readonly #children = new Map<string, Inc>();

  constructor(registry: Registry, service: string) {
    const found = registry.getSingleMetric(NAME) as Counter<'service' | 'route' | 'outcome'> | undefined;
    this.#counter =
      found ??
      counter(registry, {
        name: NAME,
        help: 'Requests by the route they took at the receiving node (route "" is the default route), and what the node did with them',
        labelNames: ['service', 'route', 'outcome'],
      });
    this.#service = service;
  }

  outcome(route: string, outcome: RouteOutcome): void {
    const id = `${route}\0${outcome}`;
    let c = this.#children.get(id);
    if (c === undefined) this.#children.set(id, (c = this.#counter.labels(this.#service, route, outcome)));
    c.inc();
  }
}
