/**
 * Prometheus metrics of backend health, one set per node however many services (and health
 * checkers) share it: the node makes it once (node/services.ts) and hands it to every checker.
 * Gauges and the ejection counter are read from the pools' BackendState at scrape time, so they
 * are exact (an ejection ends lazily, with no event) and the hot path pays nothing.
 * Label values are bounded: `service` and `backend` come from the config, `result` and `to` from
 * fixed sets.
 */
import type { Counter, Registry } from 'prom-client';
import { counter, gauge } from '../metrics.js';
import type { UpstreamPool } from './pool.js';

export type CheckResult = 'ok' | 'fail' | 'timeout';
export type StateTo = 'up' | 'down' | 'ejected';

/** A pool whose backends the gauges report, under its service's name. */
export interface MetricsSource {
  readonly service: string;
  readonly pool: UpstreamPool;
}

export class HealthMetrics {
  readonly #sources = new Set<MetricsSource>();
  readonly #checks: Counter<'service' | 'result'>;
  readonly #changes: Counter<'service' | 'backend' | 'to'>;

  constructor(registry: Registry) {
    const sources = this.#sources;
    gauge(registry, {
      name: 'tandem_backend_up',
      help: 'Whether this node sends traffic to the backend: 1 healthy and not ejected, 0 otherwise (health is local to each node).',
      labelNames: ['service', 'backend'],
      collect() {
        this.reset();
        for (const s of sources) for (const b of s.pool.backends) this.set({ service: s.service, backend: b.address }, b.serving ? 1 : 0);
      },
    });
    gauge(registry, {
      name: 'tandem_backend_active',
      help: 'Connections or requests this node has open to the backend.',
      labelNames: ['service', 'backend'],
      collect() {
        this.reset();
        for (const s of sources) for (const b of s.pool.backends) this.set({ service: s.service, backend: b.address }, b.active);
      },
    });
    counter(registry, {
      name: 'tandem_backend_ejections_total',
      help: 'Times outlier detection ejected the backend (consecutive connect failures, timeouts or 5xx).',
      labelNames: ['service', 'backend'],
      collect() {
        this.reset();
        for (const s of sources) for (const b of s.pool.backends) this.inc({ service: s.service, backend: b.address }, b.ejections);
      },
    });
    this.#checks = counter(registry, {
      name: 'tandem_health_checks_total',
      help: 'Active health probes, by service and result (ok, fail, timeout).',
      labelNames: ['service', 'result'],
    });
    this.#changes = counter(registry, {
      name: 'tandem_backend_state_changes_total',
      help: 'Backend health transitions on this node, by target state (up, down, ejected).',
      labelNames: ['service', 'backend', 'to'],
    });
  }

  attach(source: MetricsSource): void {
    this.#sources.add(source);
  }

  detach(source: MetricsSource): void {
    this.#sources.delete(source);
  }

  check(service: string, result: CheckResult): void {
    this.#checks.inc({ service, result });
  }

  stateChange(service: string, backend: string, to: StateTo): void {
    this.#changes.inc({ service, backend, to });
  }
}
