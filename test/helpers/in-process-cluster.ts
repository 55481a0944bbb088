/**
 * The in-process cluster every protocol proxy's tests build on: N nodes in one process, with the
 * parts that decide where a flow goes taken from the product — the configuration through
 * `validateConfig`, the owners through the real Rendezvous (src/cluster/rendezvous.ts), one
 * FlowRouter per node — and only the cluster's I/O stood in for:
 *
 * - membership: one view, `membership`, shared by every node (each node sees itself alive): alive,
 *   suspect or dead per node, set by the test; a failed forward marks the peer suspect as the
 *   Cluster does, and changes are announced as the Cluster's 'peer-state' events;
 * - replication: `instant` (one table that every node reads and writes) or `next-tick` (a table per
 *   node, every write copied into the tables of the nodes that are up on the next turn);
 * - the data plane: each protocol's layer supplies `dial`/`onChannel` (real sockets) on top of the
 *   membership part given here (test/proxy/{http,tcp,udp}).
 */
import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import type { Registry } from 'prom-client';
import { validateConfig } from '../../src/config/load.js';
import type { Config, NodeConfig, ServiceConfig } from '../../src/config/schema.js';
import { Rendezvous } from '../../src/cluster/rendezvous.js';
import { FlowRouter } from '../../src/cluster/router.js';
import { compareVersion, type FlowEntry } from '../../src/cluster/flow-entry.js';
import { UpstreamPool } from '../../src/upstream/pool.js';
import { createSelector } from '../../src/balancer/index.js';
import type { DataPlane, PeerState, ProxyContext } from '../../src/proxy/context.js';
import { Forwarder } from '../../src/proxy/hops.js';
import { PeerMux } from '../../src/proxy/mux/peer-mux.js';

export { waitFor, waitUntil, WAIT_FLOOR_MS } from './wait.js';

export const TEST_SECRET = 'in-process-cluster-secret-0123456789';

/** One service as a node would hold it: validated (defaults filled in) within a one-node cluster. */
export function validService(raw: Record<string, unknown>): ServiceConfig {
  const cfg = validateConfig({ cluster: { name: 'one', secret: TEST_SECRET, nodes: [{ id: 'lb1', host: '127.0.0.1', peerPort: 1, adminPort: 2 }] }, services: [raw] });
  return cfg.services[0];
}

type PeerStateListener = (id: string, state: PeerState, prev: PeerState) => void;

/** Every node's view of every other: one map, changed by the test (and by failed forwards). */
export class Membership {
  readonly #states = new Map<string, PeerState>();
  readonly #events = new EventEmitter();

  constructor(ids: readonly string[]) {
    for (const id of ids) this.#states.set(id, 'alive');
  }

  /** A node the cluster does not know is dead. */
  get(id: string): PeerState {
    return this.#states.get(id) ?? 'dead';
  }

  set(id: string, state: PeerState): void {
    const prev = this.get(id);
    this.#states.set(id, state);
    if (prev !== state) this.#events.emit('peer-state', id, state, prev);
  }

  /** What a failed forward does (docs/design.md §5): an alive peer becomes suspect. */
  markSuspect(id: string): void {
    if (this.get(id) === 'alive') this.set(id, 'suspect');
  }

  on(listener: PeerStateListener): void {
    this.#events.on('peer-state', listener);
  }

  off(listener: PeerStateListener): void {
    this.#events.off('peer-state', listener);
  }
}

export interface InProcessClusterOptions {
  /** How many nodes (lb1…lbN on 127.0.0.1…N), or their ids in that order. */
  readonly nodes: number | readonly string[];
  /** The services as they would be written in a config file (validated here). */
  readonly services: readonly Record<string, unknown>[];
  /** Node i's peerPort (0-based i); its adminPort is peerPort + 50 (never bound in-process). */
  readonly peerPort: (i: number) => number;
  readonly secret?: string;
  readonly replication?: 'instant' | 'next-tick';
}

/** The parts of a node's ProxyContext that its protocol's layer makes. */
export interface ContextParts {
  readonly dataPlane: DataPlane;
  readonly registry: Registry;
  /** The node's view of the member set (default: the configured nodes). */
  readonly nodes?: () => readonly NodeConfig[];
  readonly httpMux?: PeerMux;
}

export class InProcessCluster {
  readonly config: Config;
  readonly ids: readonly string[];
  readonly membership: Membership;
  /** Forced owner order per flow key (tests); otherwise rendezvous over the candidates. */
  readonly forcedOrder = new Map<string, readonly string[]>();
  readonly #rdv: Rendezvous;
  readonly #tables = new Map<string, Map<string, FlowEntry>>();
  readonly #routers = new Map<string, FlowRouter>();
  readonly #down = new Set<string>();
  #clock = 0;

  constructor(opts: InProcessClusterOptions) {
    const ids = typeof opts.nodes === 'number' ? Array.from({ length: opts.nodes }, (_, i) => `lb${i + 1}`) : [...opts.nodes];
    const secret = opts.secret ?? TEST_SECRET;
    const nodes = ids.map((id, i) => ({ id, host: `127.0.0.${i + 1}`, peerPort: opts.peerPort(i), adminPort: opts.peerPort(i) + 50 }));
    this.config = validateConfig({ cluster: { name: 'in-process', secret, nodes }, services: opts.services });
    this.ids = ids;
    this.membership = new Membership(ids);
    this.#rdv = new Rendezvous(secret);
    const shared = new Map<string, FlowEntry>();
    for (const id of ids) this.#tables.set(id, opts.replication === 'next-tick' ? new Map<string, FlowEntry>() : shared);
    for (const id of ids) this.#routers.set(id, this.#router(id, opts.replication === 'next-tick'));
  }

  nodeConfig(id: string): NodeConfig {
    const n = this.config.cluster.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  service(name: string): ServiceConfig {
    const s = this.config.services.find((x) => x.name === name);
    if (!s) throw new Error(`no service ${name}`);
    return s;
  }

  /** The owner order of a key among `candidates` (default: every node), best first. */
  rank(key: string, candidates: readonly string[] = this.ids): string[] {
    const forced = this.forcedOrder.get(key);
    if (forced) return forced.filter((x) => candidates.includes(x));
    return this.#rdv.rank(key, this.config.cluster.nodes.filter((n) => candidates.includes(n.id)));
  }

  router(id: string): FlowRouter {
    const r = this.#routers.get(id);
    if (!r) throw new Error(`no node ${id}`);
    return r;
  }

  /** Node `id`'s flow table (the one table with `instant` replication). */
  table(id: string): Map<string, FlowEntry> {
    const t = this.#tables.get(id);
    if (!t) throw new Error(`no node ${id}`);
    return t;
  }

  /** The flow's entry on node `id`, tombstones included. */
  entry(id: string, service: string, key: string): FlowEntry | undefined {
    return this.table(id).get(`${service}\0${key}`);
  }

  /** A node that is down receives no replication (`next-tick`). */
  setDown(id: string, down: boolean): void {
    if (down) this.#down.add(id);
    else this.#down.delete(id);
  }

  /** The membership side of node `id`'s data plane; the protocol's layer adds its I/O. */
  dataPlane(id: string, io: Pick<DataPlane, 'dial' | 'onChannel'> & Pick<DataPlane, 'incarnation' | 'peerIncarnation'>): DataPlane {
    return {
      selfId: id,
      stateOf: (x) => (x === id ? 'alive' : this.membership.get(x)),
      markSuspect: (x) => this.membership.markSuspect(x),
      on: (_ev, l) => this.membership.on(l),
      off: (_ev, l) => this.membership.off(l),
      ...io,
    };
  }

  /** A real pool per service of the config (one node's). */
  pools(): Map<string, UpstreamPool> {
    const pools = new Map<string, UpstreamPool>();
    for (const s of this.config.services) pools.set(s.name, new UpstreamPool(s.backends, createSelector(s.policy)));
    return pools;
  }

  /** Node `id`'s ProxyContext over its router, a new Forwarder and the given pools. */
  context(id: string, parts: ContextParts, pools: ReadonlyMap<string, UpstreamPool>): ProxyContext {
    const router = this.router(id);
    return {
      self: this.nodeConfig(id),
      nodes: parts.nodes ?? (() => this.config.cluster.nodes),
      router,
      dataPlane: parts.dataPlane,
      forwarder: new Forwarder(router, parts.dataPlane),
      // A protocol that does not use the HTTP channel gets a mux that never dials.
      httpMux: parts.httpMux ?? new PeerMux({ dial: () => Promise.reject(new Error('no http channel in this test')) }),
      secret: this.config.cluster.secret,
      logger: pino({ level: 'silent' }),
      registry: parts.registry,
      pool: (name) => pools.get(name),
      service: (name) => this.config.services.find((s) => s.name === name),
    };
  }

  /** HLC-like versions: above every earlier one and far above the weak version 1 of a creation. */
  #version(): number {
    this.#clock = Math.max(this.#clock + 1, Date.now() * 1000);
    return this.#clock;
  }

  #router(id: string, nextTick: boolean): FlowRouter {
    const table = this.table(id);
    const merge = (t: Map<string, FlowEntry>, e: FlowEntry): boolean => {
      const k = `${e.service}\0${e.key}`;
      const cur = t.get(k);
      if (cur && compareVersion(e, cur) <= 0) return false;
      t.set(k, e);
      return true;
    };
    const state = (x: string): PeerState => (x === id ? 'alive' : this.membership.get(x));
    return new FlowRouter({
      selfId: id,
      owners: (key, candidates) => {
        const r = this.rank(key, candidates);
        return { primary: r[0], backup: r[1] ?? null };
      },
      rank: (_s, key) => this.rank(key),
      candidates: () => this.ids.filter((x) => state(x) !== 'dead'),
      state,
      publish: (e) => {
        if (!nextTick) return;
        setImmediate(() => {
          for (const other of this.ids) if (other !== id && !this.#down.has(other)) merge(this.table(other), e);
        });
      },
      merge: (e) => merge(table, e),
      get: (s, k) => {
        const e = table.get(`${s}\0${k}`);
        return e && !e.ended ? e : undefined;
      },
      getAny: (s, k) => table.get(`${s}\0${k}`),
      version: () => this.#version(),
      now: () => Date.now(),
    });
  }
}

/** The sum of a metric's samples whose labels include `labels` (0 when it has none). */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const data = await m.get();
  let sum = 0;
  for (const v of data.values) {
    const metricName = (v as { metricName?: string }).metricName;
    if (metricName && metricName !== name) continue;
    if (Object.entries(labels).every(([k, x]) => String((v.labels as Record<string, unknown>)[k]) === x)) sum += v.value;
  }
  return sum;
}
