/**
 * One dashboard snapshot: the cluster as the serving node sees it, built once per tick and shared
 * by every open page. Flows per owner come from this node's replicated table (every node holds
 * every flow), counted by a scan whose frequency adapts to its cost.
 */
import type { NodeView } from '../../node/node-view.js';
import type { PeerSampler } from './sampler.js';
import type { RouteConfig, ServiceTlsConfig } from '../../config/schema.js';
import type { BackendView, NodeView as NodeCard, RouteInfo, ServiceView, Snapshot, TlsView } from './wire.js';
import { describeMatch, pools } from './pools.js';

interface OwnerCount {
  primary: number;
  backup: number;
}

/**
 * Counts of flows per owner. A full scan of a large table costs tens of milliseconds of event
 * loop, so the next scan waits at least 50× the last scan's duration (≤ 2 % of the loop spent
 * here), and never less than a second.
 */
export class OwnerCounts {
  readonly #node: Pick<NodeView, 'flows'>;
  #counts = new Map<string, OwnerCount>();
  #total = 0;
  #at = 0;
  #next = 0;
  #lastMs = 0;

  constructor(node: Pick<NodeView, 'flows'>) {
    this.#node = node;
  }

  /** Owners changed (a node died): recount soon, if scans are cheap. */
  invalidate(): void {
    this.#next = Math.min(this.#next, this.#at + this.#lastMs * 20);
  }

  get(now: number): { counts: ReadonlyMap<string, OwnerCount>; total: number; at: number } {
    if (now >= this.#next) this.#recount(now);
    return { counts: this.#counts, total: this.#total, at: this.#at };
  }

  #recount(now: number): void {
    const t0 = performance.now();
    const counts = new Map<string, OwnerCount>();
    const of = (id: string): OwnerCount => {
      let c = counts.get(id);
      if (!c) counts.set(id, (c = { primary: 0, backup: 0 }));
      return c;
    };
    let total = 0;
    for (const e of this.#node.flows()) {
      total++;
      of(e.primary).primary++;
      if (e.backup !== null) of(e.backup).backup++;
    }
    this.#counts = counts;
    this.#total = total;
    this.#lastMs = performance.now() - t0;
    this.#at = now;
    this.#next = now + Math.max(1000, this.#lastMs * 50);
  }
}

export function buildSnapshot(node: NodeView, owners: OwnerCounts, sampler: PeerSampler): Snapshot {
  const now = Date.now();
  const flows = owners.get(now);
  const peers = new Map(node.peers().map((p) => [p.id, p]));
  const nodes: NodeCard[] = node.config.cluster.nodes.map((n) => {
    const self = n.id === node.id;
    const s = sampler.sample(n.id);
    const p = peers.get(n.id);
    const c = flows.counts.get(n.id);
    const state = node.stateOf(n.id);
    return {
      id: n.id,
      host: n.host,
      adminPort: n.adminPort,
      state,
      weight: n.weight,
      self,
      primary: c?.primary ?? 0,
      backup: c?.backup ?? 0,
      rates: state === 'dead' ? null : (s?.rates ?? null),
      replicationLagMs: self ? null : (p?.replicationLagMs ?? null),
      lastHeartbeatAgoMs: self ? null : (p?.lastHeartbeatAgoMs ?? null),
      ready: self ? node.ready : state === 'dead' ? null : (s?.counters.ready ?? null),
      uptimeSec: self ? Math.round((now - node.startedAt) / 1000) : s && state !== 'dead' ? Math.round((s.counters.at - s.counters.startedAt) / 1000) : null,
      configRevision: node.membership.info(n.id)?.configRevision ?? null,
    };
  });
  const services: ServiceView[] = pools(node.config.services).map(({ name, service: svc, route }) => ({
    name,
    protocol: svc.protocol,
    port: svc.port,
    policy: route?.policy ?? svc.policy,
    flowKey: route?.flowKey ?? svc.flowKey,
    flows: node.table.size(name),
    backends: (node.backends(name) ?? []).map((b): BackendView => {
      // Active and rate summed over every node that answered the last sample: the tier's view.
      let active = 0;
      let rate = 0;
      for (const n of node.config.cluster.nodes) {
        const s = sampler.sample(n.id);
        if (!s) continue;
        active += s.counters.backends[name]?.[b.address]?.active ?? 0;
        rate += s.backendRates.get(`${name}\n${b.address}`) ?? 0;
      }
      return {
        address: b.address,
        weight: b.configWeight,
        effectiveWeight: b.weight,
        state: b.draining ? 'draining' : !b.healthy ? 'down' : b.ejected ? 'ejected' : 'up',
        healthy: b.healthy,
        draining: b.draining,
        active,
        ratePerSec: Math.round(rate * 10) / 10,
      };
    }),
    route: route === null ? null : routeInfo(svc.name, route),
    tls: route === null && svc.tls ? tlsView(node, sampler, svc.name, svc.tls) : null,
  }));
  const d = node.membership.discovery();
  const discovery = d === null ? null : { state: d.state, error: d.error };
  const configRevision = node.membership.config().revision;
  return { at: now, self: node.id, cluster: node.config.cluster.name, nodes, flows: { total: flows.total, countedAt: flows.at }, services, discovery, configRevision };
}

function routeInfo(service: string, r: RouteConfig): RouteInfo {
  const l = r.rateLimit;
  return {
    service,
    name: r.name,
    match: describeMatch(r),
    redirect: r.redirect === null ? null : `${r.redirect.status} → ${r.redirect.to}`,
    rateLimit: l === null ? null : `${l.requestsPerSecond}/s burst ${l.burst} by ${l.key}`,
  };
}

/** A TLS service: the serving node's certificates and ACME state, handshakes summed over the tier. */
function tlsView(node: NodeView, sampler: PeerSampler, service: string, tls: ServiceTlsConfig): TlsView {
  let handshakes = 0;
  let resumed = 0;
  let failures = 0;
  for (const n of node.config.cluster.nodes) {
    const c = sampler.sample(n.id)?.counters.tls?.[service];
    if (!c) continue;
    handshakes += c.handshakes;
    resumed += c.resumed;
    failures += c.failures;
  }
  const acme = tls.acme === null ? [] : node.acme.certificates().filter((c) => c.services.includes(service));
  return {
    alpn: tls.alpn,
    sessionTickets: tls.sessionTickets,
    certificates: sampler.sample(node.id)?.counters.tls?.[service]?.certificates ?? [],
    handshakes,
    resumed,
    failures,
    acme: acme.map((c) => ({ id: c.id, state: c.state, owner: c.owner, notAfter: c.notAfter, lastError: c.lastError })),
  };
}
