/**
 * Prometheus metrics of the HTTP proxy. A request costs a few array increments: each service
 * counts into plain numbers, and the prom-client metrics take those counts when they are read (a
 * scrape, the dashboard), because a prom-client increment hashes its labels every time, child or
 * not. The duration histogram is tandem's own metric object for the same reason; it renders
 * exactly as a prom-client histogram does.
 *
 * State is kept per registry and service name, so that a proxy rebuilt by a reload (same service)
 * continues the same series, and several nodes in one process (tests) keep theirs apart.
 */
import { type Counter, type Metric, type MetricValueWithName, type Registry } from 'prom-client';
import { counter, perRegistry } from '../../metrics.js';
import type { HttpErrorKind } from './errors.js';

export type ServedBy = 'local' | 'primary' | 'backup';
export type ForwardKind = 'local' | 'to-primary' | 'to-backup' | 'reowned';

const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const HOPS: readonly ServedBy[] = ['local', 'primary', 'backup'];
const KINDS: readonly ForwardKind[] = ['local', 'to-primary', 'to-backup', 'reowned'];
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const DURATION = 'tandem_http_request_duration_seconds';

function classIndex(status: number): number {
  const i = Math.floor(status / 100) - 1;
  return i < 0 || i > 4 ? 4 : i;
}

type Inc = { inc(n?: number): void };

/** One service's counts not yet handed to prom-client, and its histogram. */
class State {
  readonly requests = new Float64Array(HOPS.length * CLASSES.length);
  readonly peer = new Float64Array(CLASSES.length);
  readonly forwards = new Float64Array(KINDS.length);
  failovers = 0;
  /** Observations per bucket (the last one is +Inf), their sum and count: cumulative, never reset. */
  readonly buckets = new Float64Array(BUCKETS.length + 1);
  sum = 0;
  count = 0;
  readonly requestChildren: Inc[];
  readonly peerChildren: Inc[];
  readonly forwardChildren: Inc[];
  readonly failoverChild: Inc;

  constructor(m: PromMetrics, service: string) {
    this.requestChildren = HOPS.flatMap((hop) => CLASSES.map((c) => m.requests.labels({ service, code_class: c, hop })));
    this.peerChildren = CLASSES.map((c) => m.peerRequests.labels({ service, code_class: c }));
    this.forwardChildren = KINDS.map((kind) => m.forwards.labels({ service, kind }));
    this.failoverChild = m.failovers.labels({ service });
  }

  /** Hands the counts to prom-client (at read time only). */
  flush(): void {
    pour(this.requests, this.requestChildren);
    pour(this.peer, this.peerChildren);
    pour(this.forwards, this.forwardChildren);
    if (this.failovers > 0) {
      this.failoverChild.inc(this.failovers);
      this.failovers = 0;
    }
  }
}

function pour(counts: Float64Array, children: readonly Inc[]): void {
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i];
    if (n === 0) continue;
    children[i].inc(n);
    counts[i] = 0;
  }
}

interface PromMetrics {
  readonly requests: Counter<'service' | 'code_class' | 'hop'>;
  readonly peerRequests: Counter<'service' | 'code_class'>;
  readonly forwards: Counter<'service' | 'kind'>;
  readonly failovers: Counter<'service'>;
  readonly errors: Counter<'service' | 'code'>;
  readonly states: Map<string, State>;
}

/**
 * The request-duration histogram as a metric object of its own: the registry reads it through
 * get() like any prom-client metric, and it answers in prom-client's histogram format.
 */
class DurationHistogram {
  readonly name = DURATION;
  readonly help = 'Time from request received to response end, at the receiving node.';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames = ['service'];
  readonly #states: Map<string, State>;

  constructor(states: Map<string, State>) {
    this.#states = states;
  }

  /** What the registry formats (prom-client's runtime shape; its typings call `type` an enum). */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Array<MetricValueWithName<string>> }> {
    const values: Array<MetricValueWithName<string>> = [];
    for (const [service, s] of this.#states) {
      if (s.count === 0) continue;
      let acc = 0;
      for (let i = 0; i < BUCKETS.length; i++) {
        acc += s.buckets[i];
        values.push({ labels: { le: BUCKETS[i], service }, value: acc, metricName: `${DURATION}_bucket` });
      }
      values.push({ labels: { le: '+Inf', service }, value: s.count, metricName: `${DURATION}_bucket` });
      values.push({ labels: { service }, value: s.sum, metricName: `${DURATION}_sum` });
      values.push({ labels: { service }, value: s.count, metricName: `${DURATION}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    for (const s of this.#states.values()) {
      s.buckets.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}

/** A counter read at scrape time: `collect` moves the plain numbers the hot path keeps into it. */
function collected<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[], collect: () => void): Counter<L> {
  return counter<L>(registry, { name, help, labelNames, collect });
}

const metricsFor = perRegistry((registry: Registry): PromMetrics => {
  const states = new Map<string, State>();
  const flush = (): void => {
    for (const s of states.values()) s.flush();
  };
  if (registry.getSingleMetric(DURATION) === undefined) registry.registerMetric(new DurationHistogram(states) as unknown as Metric);
  return {
    requests: collected(registry, 'tandem_http_requests_total', 'Client requests answered, by who served them (local, or forwarded to the primary or the backup).', ['service', 'code_class', 'hop'], flush),
    peerRequests: collected(registry, 'tandem_http_peer_requests_total', 'Requests forwarded here by a peer and served here.', ['service', 'code_class'], flush),
    forwards: collected(registry, 'tandem_http_forwards_total', 'Routing decisions: served locally, forwarded to the primary or backup, flows re-owned.', ['service', 'kind'], flush),
    failovers: collected(registry, 'tandem_http_failovers_total', 'Forwards to a peer that failed before any response byte (the request went on to the next owner or failed).', ['service'], flush),
    errors: collected(registry, 'tandem_http_errors_total', 'Error responses written by tandem, by tandem-error code.', ['service', 'code'], () => undefined),
    states,
  };
});

/** One service's metrics: array increments on the request path. */
export class ServiceMetrics {
  readonly #s: State;
  readonly #errors: Counter<'service' | 'code'>;
  /** Children by error kind, made on first use (a flood of one kind costs an increment each). */
  readonly #errorChildren = new Map<HttpErrorKind, Inc>();
  readonly #service: string;

  constructor(registry: Registry, service: string) {
    const m = metricsFor(registry);
    let s = m.states.get(service);
    if (s === undefined) m.states.set(service, (s = new State(m, service)));
    this.#s = s;
    this.#service = service;
    this.#errors = m.errors;
  }

  request(status: number, hop: ServedBy, seconds: number): void {
    const s = this.#s;
    s.requests[(hop === 'local' ? 0 : hop === 'primary' ? 1 : 2) * 5 + classIndex(status)]++;
    let i = 0;
    while (i < BUCKETS.length && seconds > BUCKETS[i]) i++;
    s.buckets[i]++;
    s.sum += seconds;
    s.count++;
  }

  peerRequest(status: number): void {
    this.#s.peer[classIndex(status)]++;
  }

  forward(kind: ForwardKind): void {
    this.#s.forwards[kind === 'local' ? 0 : kind === 'to-primary' ? 1 : kind === 'to-backup' ? 2 : 3]++;
  }

  failover(): void {
    this.#s.failovers++;
  }

  error(kind: HttpErrorKind): void {
    let c = this.#errorChildren.get(kind);
    if (c === undefined) this.#errorChildren.set(kind, (c = this.#errors.labels({ service: this.#service, code: kind })));
    c.inc();
  }
}
