/**
 * Prometheus metrics of the HTTP proxy. Metrics are created once per registry (a node may build
 * several proxies, and a reload builds new ones, on the same registry), and each service resolves
 * its label children once, so that the per-request cost is an increment, not a label lookup.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import { perRegistry } from '../../metrics.js';
import type { HttpErrorKind } from './errors.js';

export type ServedBy = 'local' | 'primary' | 'backup';
export type ForwardKind = 'local' | 'to_primary' | 'to_backup' | 'reowned';

interface Metrics {
  readonly requests: Counter<'service' | 'code_class' | 'hop'>;
  readonly peerRequests: Counter<'service' | 'code_class'>;
  readonly forwards: Counter<'service' | 'kind'>;
  readonly failovers: Counter<'service'>;
  readonly duration: Histogram<'service'>;
  readonly errors: Counter<'service' | 'code'>;
}

/** An existing metric of that name on the registry (another proxy made it), or a new one. */
function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[]): Counter<L> {
  const found = registry.getSingleMetric(name);
  if (found) return found as Counter<L>;
  return new Counter<L>({ name, help, labelNames, registers: [registry] });
}

const metricsFor = perRegistry((registry: Registry): Metrics => {
  const durationName = 'tandem_http_request_duration_seconds';
  const duration =
    (registry.getSingleMetric(durationName) as Histogram<'service'> | undefined) ??
    new Histogram<'service'>({
      name: durationName,
      help: 'Time from request received to response end, at the receiving node.',
      labelNames: ['service'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    });
  return {
    requests: counter(registry, 'tandem_http_requests_total', 'Client requests answered, by who served them (local, or forwarded to the primary or the backup).', ['service', 'code_class', 'hop']),
    peerRequests: counter(registry, 'tandem_http_peer_requests_total', 'Requests forwarded here by a peer and served here.', ['service', 'code_class']),
    forwards: counter(registry, 'tandem_http_forwards_total', 'Routing decisions: served locally, forwarded to the primary or backup, flows re-owned.', ['service', 'kind']),
    failovers: counter(registry, 'tandem_http_failovers_total', 'Forwards to a peer that failed before any response byte (the request went on to the next owner or failed).', ['service']),
    duration,
    errors: counter(registry, 'tandem_http_errors_total', 'Error responses written by tandem, by tandem-error code.', ['service', 'code']),
  };
});

const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const HOPS: readonly ServedBy[] = ['local', 'primary', 'backup'];

function classIndex(status: number): number {
  const i = Math.floor(status / 100) - 1;
  return i < 0 || i > 4 ? 4 : i;
}

type Inc = { inc(n?: number): void };

/** One service's pre-resolved metric children. */
export class ServiceMetrics {
  readonly #requests: Inc[][];
  readonly #peer: Inc[];
  readonly #forwards: Record<ForwardKind, Inc>;
  readonly #failovers: Inc;
  readonly #duration: { observe(v: number): void };
  readonly #errors: Counter<'service' | 'code'>;
  /** Children by error kind, made on first use (a flood of one kind costs an increment each). */
  readonly #errorChildren = new Map<HttpErrorKind, Inc>();
  readonly #service: string;

  constructor(registry: Registry, service: string) {
    const m = metricsFor(registry);
    this.#service = service;
    this.#requests = HOPS.map((hop) => CLASSES.map((c) => m.requests.labels({ service, code_class: c, hop })));
    this.#peer = CLASSES.map((c) => m.peerRequests.labels({ service, code_class: c }));
    this.#forwards = {
      local: m.forwards.labels({ service, kind: 'local' }),
      to_primary: m.forwards.labels({ service, kind: 'to_primary' }),
      to_backup: m.forwards.labels({ service, kind: 'to_backup' }),
      reowned: m.forwards.labels({ service, kind: 'reowned' }),
    };
    this.#failovers = m.failovers.labels({ service });
    this.#duration = m.duration.labels({ service });
    this.#errors = m.errors;
  }

  request(status: number, hop: ServedBy, seconds: number): void {
    this.#requests[hop === 'local' ? 0 : hop === 'primary' ? 1 : 2][classIndex(status)].inc();
    this.#duration.observe(seconds);
  }

  peerRequest(status: number): void {
    this.#peer[classIndex(status)].inc();
  }

  forward(kind: ForwardKind): void {
    this.#forwards[kind].inc();
  }

  failover(): void {
    this.#failovers.inc();
  }

  error(kind: HttpErrorKind): void {
    let c = this.#errorChildren.get(kind);
    if (c === undefined) this.#errorChildren.set(kind, (c = this.#errors.labels({ service: this.#service, code: kind })));
    c.inc();
  }
}
