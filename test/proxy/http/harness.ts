/**
 * An in-process tandem cluster for the HTTP proxy tests: N nodes, each with its own flow table,
 * FlowRouter, Forwarder, UpstreamPool, PeerMux, HttpServiceProxy and HttpOwnerSide, joined by a fake
 * DataPlane whose dial() is a real TCP connection to the peer's "peer port" (the dialer's id on the
 * first line stands in for the handshake). Replication is a synchronous copy
 * into every live node's table on the next tick; membership is a shared dead-set plus each node's
 * own suspects. kill() drops every socket of a node at once, which is what kill -9 looks like
 * from the outside; the survivors see it dead after `detectMs`.
 */
import net, { type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import pino from 'pino';
import { Registry } from 'prom-client';
import { FlowRouter, type RouterDeps } from '../../../src/cluster/router.js';
import { compareVersion, type FlowEntry } from '../../../src/cluster/flow-entry.js';
import type { DataPlane, DataChannel, PeerState, ProxyContext } from '../../../src/proxy/context.js';
import type { NodeConfig, ServiceConfig, TimeoutsConfig } from '../../../src/config/schema.js';
import { UpstreamPool } from '../../../src/upstream/pool.js';
import { createSelector } from '../../../src/balancer/index.js';
import { HttpServiceProxy } from '../../../src/proxy/http/service.js';
import { HttpOwnerSide } from '../../../src/proxy/http/owner.js';
import { Forwarder } from '../../../src/proxy/hops.js';
import { PeerMux } from '../../../src/proxy/mux/peer-mux.js';

type Handler = (socket: Duplex, peerId: string, session: { key: Buffer }) => void;

/** Deterministic per-key ranking (FNV-1a of key and node id), a stand-in for rendezvous. */
export function rank(key: string, ids: readonly string[]): string[] {
  const score = (id: string): number => {
    let h = 0x811c9dc5;
    for (const ch of `${key}\0${id}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0x5bd1e995) >>> 0;
    return (h ^ (h >>> 15)) >>> 0;
  };
  return [...ids].sort((a, b) => score(b) - score(a) || (a < b ? -1 : 1));
}

class FakeDataPlane implements DataPlane {
  readonly selfId: string;
  readonly #cluster: FakeCluster;
  readonly suspects = new Set<string>();
  readonly handlers = new Map<DataChannel, Handler>();
  dials = 0;

  constructor(cluster: FakeCluster, selfId: string) {
    this.#cluster = cluster;
    this.selfId = selfId;
  }

  stateOf(id: string): PeerState {
    if (id === this.selfId) return 'alive';
    if (this.#cluster.dead.has(id)) return 'dead';
    return this.suspects.has(id) ? 'suspect' : 'alive';
  }

  markSuspect(id: string): void {
    this.suspects.add(id);
  }

  dial(peerId: string, _channel: DataChannel): Promise<Duplex> {
    this.dials++;
    const peer = this.#cluster.node(peerId);
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: peer.cfg.host, port: peer.peerPort, noDelay: true });
      s.once('connect', () => {
        s.off('error', reject);
        s.write(`${this.selfId}\n`);
        resolve(s);
      });
      s.once('error', reject);
    });
  }

  onChannel(channel: DataChannel, handler: Handler): void {
    this.handlers.set(channel, handler);
  }
}

export interface FakeNode {
  readonly cfg: NodeConfig;
  readonly peerPort: number;
  readonly table: Map<string, FlowEntry>;
  readonly router: FlowRouter;
  readonly dp: FakeDataPlane;
  readonly registry: Registry;
  readonly pool: UpstreamPool;
  proxy: HttpServiceProxy;
  data: HttpOwnerSide;
  forwarder: Forwarder;
  mux: PeerMux;
  peerServer: net.Server;
  readonly peerSockets: Set<Socket>;
  alive: boolean;
}

export interface FakeClusterOptions {
  readonly basePort: number;
  readonly backends: readonly string[];
  readonly flowKey?: string;
  readonly nodes?: number;
  readonly timeouts?: Partial<TimeoutsConfig>;
  readonly detectMs?: number;
  readonly accessLog?: boolean;
}

export function serviceConfig(name: string, port: number, backends: readonly string[], flowKey: string, timeouts: Partial<TimeoutsConfig> = {}, accessLog = false): ServiceConfig {
  return {
    name,
    protocol: 'http',
    port,
    flowKey,
    policy: 'round-robin',
    flowIdleTimeoutMs: 600_000,
    maxFlows: 1_000_000,
    maxConnections: 10_000,
    proxyProtocol: undefined,
    quicCidLength: 8,
    slowStartMs: 0,
    accessLog,
    routes: [],
    rateLimit: null,
    requestHeaders: null,
    responseHeaders: null,
    timeouts: { connectMs: 3000, headerMs: 10_000, idleMs: 60_000, requestMs: 60_000, ...timeouts },
    backends: backends.map((address) => {
      const i = address.lastIndexOf(':');
      return { address, host: address.slice(0, i), port: Number(address.slice(i + 1)), weight: 1 };
    }),
    healthCheck: { type: 'none', path: '/healthz', method: 'GET', expectStatus: '200-399', intervalMs: 1000, timeoutMs: 1000, rise: 2, fall: 3 },
  };
}

export class FakeCluster {
  readonly nodes: FakeNode[] = [];
  readonly dead = new Set<string>();
  readonly service: ServiceConfig;
  readonly port: number;
  readonly #detectMs: number;
  #clock = 0;

  private constructor(opts: FakeClusterOptions) {
    this.port = opts.basePort;
    this.#detectMs = opts.detectMs ?? 500;
    this.service = serviceConfig('web', opts.basePort, opts.backends, opts.flowKey ?? 'header:x-session', opts.timeouts, opts.accessLog);
  }

  static async start(opts: FakeClusterOptions): Promise<FakeCluster> {
    const c = new FakeCluster(opts);
    const n = opts.nodes ?? 3;
    const cfgs: NodeConfig[] = Array.from({ length: n }, (_, i) => ({ id: `lb${i + 1}`, host: `127.0.0.${i + 1}`, peerPort: opts.basePort + 10 + i, adminPort: opts.basePort + 20 + i, weight: 1 }));
    for (const cfg of cfgs) c.nodes.push(c.#makeNode(cfg, cfgs));
    for (const node of c.nodes) await c.#startNode(node);
    return c;
  }

  node(id: string): FakeNode {
    const n = this.nodes.find((x) => x.cfg.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** The flow's entry on node `id`. */
  entry(id: string, key: string): FlowEntry | undefined {
    return this.node(id).table.get(`web\0${key}`);
  }

  #version(): number {
    this.#clock = Math.max(this.#clock + 1, Date.now() * 1000);
    return this.#clock;
  }

  #makeNode(cfg: NodeConfig, all: readonly NodeConfig[]): FakeNode {
    const table = new Map<string, FlowEntry>();
    const dp = new FakeDataPlane(this, cfg.id);
    const ids = all.map((x) => x.id);
    const merge = (t: Map<string, FlowEntry>, e: FlowEntry): boolean => {
      const k = `${e.service}\0${e.key}`;
      const cur = t.get(k);
      if (cur && compareVersion(e, cur) <= 0) return false;
      t.set(k, e);
      return true;
    };
    const deps: RouterDeps = {
      selfId: cfg.id,
      owners: (key, candidates) => {
        const r = rank(key, candidates);
        return { primary: r[0], backup: r[1] ?? null };
      },
      rank: (_s, key) => rank(key, ids),
      candidates: () => ids.filter((id) => dp.stateOf(id) !== 'dead'),
      state: (id) => dp.stateOf(id),
      publish: (e) => {
        setImmediate(() => {
          for (const other of this.nodes) if (other.cfg.id !== cfg.id && other.alive) merge(other.table, e);
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
    };
    const router = new FlowRouter(deps);
    const registry = new Registry();
    const pool = new UpstreamPool(this.service.backends, createSelector('round-robin'));
    const node: FakeNode = {
      cfg,
      peerPort: cfg.peerPort,
      table,
      router,
      dp,
      registry,
      pool,
      proxy: undefined as unknown as HttpServiceProxy,
      data: undefined as unknown as HttpOwnerSide,
      forwarder: undefined as unknown as Forwarder,
      mux: undefined as unknown as PeerMux,
      peerServer: undefined as unknown as net.Server,
      peerSockets: new Set(),
      alive: true,
    };
    return node;
  }

  #context(node: FakeNode): ProxyContext {
    return {
      self: node.cfg,
      nodes: () => this.nodes.map((n) => n.cfg),
      router: node.router,
      dataPlane: node.dp,
      forwarder: node.forwarder,
      httpMux: node.mux,
      secret: 'test-secret-0123456789',
      logger: pino({ level: 'silent' }),
      registry: node.registry,
      pool: (s) => (s === this.service.name ? node.pool : undefined),
      service: (s) => (s === this.service.name ? this.service : undefined),
    };
  }

  async #startNode(node: FakeNode): Promise<void> {
    node.forwarder = new Forwarder(node.router, node.dp);
    node.mux = new PeerMux({ dial: (peer) => node.dp.dial(peer, 'http'), registry: node.registry });
    const ctx = this.#context(node);
    node.proxy = new HttpServiceProxy(ctx, this.service);
    node.data = new HttpOwnerSide(node.mux, (name) => (name === this.service.name ? node.proxy : undefined));
    node.data.start();
    node.peerServer = net.createServer({ pauseOnConnect: true, noDelay: true }, (s) => {
      node.peerSockets.add(s);
      s.once('close', () => node.peerSockets.delete(s));
      s.on('error', () => undefined);
      // The dialer's id on the first line (the real transport proves it with the handshake).
      let got = Buffer.alloc(0);
      const onData = (d: Buffer): void => {
        got = Buffer.concat([got, d]);
        const nl = got.indexOf(10);
        if (nl < 0) return;
        s.off('data', onData);
        s.pause();
        const rest = got.subarray(nl + 1);
        if (rest.length > 0) s.unshift(rest);
        node.mux.accept(s, got.subarray(0, nl).toString());
      };
      s.on('data', onData);
      s.resume();
    });
    await new Promise<void>((resolve) => node.peerServer.listen(node.peerPort, node.cfg.host, resolve));
    await node.proxy.start();
    node.alive = true;
  }

  /** As kill -9: every socket of the node closes at once; the others see it dead after detectMs. */
  async kill(id: string): Promise<void> {
    const node = this.node(id);
    node.alive = false;
    const closed = new Promise((r) => node.peerServer.close(r));
    for (const s of node.peerSockets) s.destroy();
    node.mux.close();
    node.forwarder.close();
    await Promise.all([node.proxy.stop(), closed]);
    setTimeout(() => this.dead.add(id), this.#detectMs).unref();
  }

  /** The URL of the service on node `id`. */
  url(id: string, path = '/'): string {
    return `http://${this.node(id).cfg.host}:${this.port}${path}`;
  }

  async stop(): Promise<void> {
    for (const node of this.nodes) {
      if (!node.alive) continue;
      node.alive = false;
      const closed = new Promise((r) => node.peerServer.close(r));
      for (const s of node.peerSockets) s.destroy();
      node.mux.close();
      node.forwarder.close();
      await Promise.all([node.proxy.stop(), closed]);
    }
  }
}
