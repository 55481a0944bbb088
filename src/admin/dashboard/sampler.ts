/**
 * Per-node traffic rates for the dashboard. Every node answers `GET /api/dashboard/counters` with
 * cumulative counters (cheap: a few metric reads, no table scan); the node serving a page samples
 * every node once a second — only while a page is open — and differences successive samples. The
 * peers stay stateless, so a page costs nothing on the nodes it does not connect to beyond one
 * small request per second.
 */
import type { NodeView } from '../../node/node-view.js';
import type { Counters, Rates, TlsCounters } from './wire.js';
import { poolNames } from './pools.js';

/** Sum of a metric's values (optionally only the label sets `keep` accepts); 0 when absent. */
async function sumMetric(node: Pick<NodeView, 'registry'>, name: string, keep?: (labels: Record<string, string | number>) => boolean): Promise<number> {
  const m = node.registry.getSingleMetric(name);
  if (!m) return 0;
  const v = await m.get();
  let sum = 0;
  for (const x of v.values) if (!keep || keep(x.labels as Record<string, string | number>)) sum += x.value;
  return sum;
}

export async function readCounters(node: NodeView): Promise<Counters> {
  const backends: Record<string, Record<string, { total: number; active: number }>> = {};
  for (const name of poolNames(node.config.services)) {
    const pool = node.backends(name);
    if (!pool) continue;
    const per: Record<string, { total: number; active: number }> = {};
    for (const b of pool) per[b.address] = { total: b.total, active: b.active };
    backends[name] = per;
  }
  const tls: Record<string, TlsCounters> = {};
  for (const s of node.config.services) if (s.tls) tls[s.name] = await tlsCounters(node, s.name);
  return {
    node: node.id,
    at: Date.now(),
    startedAt: node.startedAt,
    ready: node.ready,
    http: await sumMetric(node, 'tandem_http_requests_total'),
    tcp: await sumMetric(node, 'tandem_tcp_connections_total'),
    // Client datagrams in; replies out would count each exchange twice.
    udp: await sumMetric(node, 'tandem_udp_datagrams_total', (l) => l.direction === 'in'),
    backends,
    tls,
  };
}

/** One TLS service's handshake counters and certificate expiry, from the node's own metrics. */
async function tlsCounters(node: Pick<NodeView, 'registry'>, service: string): Promise<TlsCounters> {
  const mine = (l: Record<string, string | number>) => l.service === service;
  const handshakes = await sumMetric(node, 'tandem_tls_handshakes_total', mine);
  const resumed = await sumMetric(node, 'tandem_tls_handshakes_total', (l) => mine(l) && l.session === 'resumed');
  const failures = await sumMetric(node, 'tandem_tls_handshake_failures_total', mine);
  const expiry = await node.registry.getSingleMetric('tandem_tls_certificate_expiry_timestamp_seconds')?.get();
  const certificates = (expiry?.values ?? [])
    .filter((v) => v.labels.service === service)
    .map((v) => ({ id: String(v.labels.certificate), notAfter: v.value * 1000 }));
  return { handshakes, resumed, failures, certificates };
}

export interface NodeSample {
  readonly counters: Counters;
  readonly rates: Rates | null;
  /** "service\naddress" → communications per second. */
  readonly backendRates: ReadonlyMap<string, number>;
}

const FETCH_TIMEOUT_MS = 700;

export class PeerSampler {
  readonly #node: NodeView;
  readonly #samples = new Map<string, NodeSample>();
  #timer: NodeJS.Timeout | null = null;
  #inFlight = false;

  constructor(node: NodeView) {
    this.#node = node;
  }

  get running(): boolean {
    return this.#timer !== null;
  }

  start(): void {
    if (this.#timer) return;
    void this.#sampleAll();
    this.#timer = setInterval(() => void this.#sampleAll(), 1000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    // A later page starts from fresh samples rather than differencing against minutes-old ones.
    this.#samples.clear();
  }

  sample(id: string): NodeSample | undefined {
    return this.#samples.get(id);
  }

  async #sampleAll(): Promise<void> {
    // A slow peer must not pile up requests: one round at a time, each bounded by the timeout.
    if (this.#inFlight) return;
    this.#inFlight = true;
    try {
      await Promise.all(this.#node.config.cluster.nodes.map((n) => this.#sampleOne(n.id, n.host, n.adminPort)));
    } finally {
      this.#inFlight = false;
    }
  }

  async #sampleOne(id: string, host: string, port: number): Promise<void> {
    if (id !== this.#node.id && this.#node.stateOf(id) === 'dead') {
      this.#samples.delete(id);
      return;
    }
    let c: Counters;
    try {
      c = id === this.#node.id ? await readCounters(this.#node) : await fetchCounters(host, port);
    } catch {
      this.#samples.delete(id);
      return;
    }
    if (!this.#timer) return; // stopped meanwhile
    const prev = this.#samples.get(id)?.counters;
    this.#samples.set(id, { counters: c, ...diffCounters(prev, c) });
  }
}

async function fetchCounters(host: string, port: number): Promise<Counters> {
  const h = host.includes(':') ? `[${host}]` : host;
  const res = await fetch(`http://${h}:${port}/api/dashboard/counters`, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`counters: HTTP ${res.status}`);
  }
  return (await res.json()) as Counters;
}

/** Rates between two samples of one node; none across a restart (counters went back to zero). */
export function diffCounters(prev: Counters | undefined, cur: Counters): { rates: Rates | null; backendRates: Map<string, number> } {
  const backendRates = new Map<string, number>();
  if (!prev || prev.startedAt !== cur.startedAt || cur.at <= prev.at) return { rates: null, backendRates };
  const dt = (cur.at - prev.at) / 1000;
  const r = (a: number, b: number) => Math.max(0, (b - a) / dt);
  for (const [service, per] of Object.entries(cur.backends)) {
    for (const [address, v] of Object.entries(per)) {
      const p = prev.backends[service]?.[address];
      if (p) backendRates.set(`${service}\n${address}`, r(p.total, v.total));
    }
  }
  return { rates: { http: r(prev.http, cur.http), tcp: r(prev.tcp, cur.tcp), udp: r(prev.udp, cur.udp) }, backendRates };
}
