/**
 * An in-process cluster for the TCP proxy's tests: N nodes in one process, each with its own
 * FlowRouter, pools, TcpServiceProxy and TcpDataPlane, sharing one flow table (instant
 * replication) and one liveness map. The data plane is real TCP: dial() connects to the peer's
 * data-plane server (bound on the peer's host), and the receiver names the dialer by the source
 * address (each node dials from its own 127.0.0.x) — the stand-in for the transport's handshake.
 * Killing a node closes its data-plane server and destroys its sockets, so dials are refused.
 */
import { createServer, connect, type Server, type Socket, type AddressInfo } from 'node:net';
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { validateConfig } from '../../../src/config/load.js';
import type { Config, NodeConfig, ServiceConfig } from '../../../src/config/schema.js';
import { FlowRouter } from '../../../src/cluster/router.js';
import { compareVersion, type FlowEntry } from '../../../src/cluster/flow-entry.js';
import { Rendezvous } from '../../../src/cluster/rendezvous.js';
import { UpstreamPool } from '../../../src/upstream/pool.js';
import { createSelector } from '../../../src/balancer/index.js';
import type { DataChannel, DataPlane, PeerState, ProxyContext } from '../../../src/proxy/context.js';
import { TcpServiceProxy } from '../../../src/proxy/tcp/service.js';
import { TcpDataPlane } from '../../../src/proxy/tcp/data-plane.js';
import { Forwarder } from '../../../src/proxy/hops.js';
import { tcpPeerPool, type PeerPool } from '../../../src/proxy/tcp/peer-pool.js';
import { BufferPool } from '../../../src/proxy/tcp/buffers.js';
import { PeerMux } from '../../../src/proxy/mux/peer-mux.js';

export const SECRET = 'fake-cluster-secret-0123456789';

type Handler = (socket: Duplex, peerId: string, session: { key: Buffer }) => void;

export interface FakeNode {
  readonly id: string;
  readonly host: string;
  readonly ctx: ProxyContext;
  readonly router: FlowRouter;
  readonly registry: Registry;
  readonly services: Map<string, TcpServiceProxy>;
  dataPlane: TcpDataPlane;
  /** The node's pre-opened streams to its peers (started with the node). */
  readonly peers: PeerPool;
  readonly forwarder: Forwarder;
  /** Port of the node's data-plane server. */
  dataPort: number;
  alive: boolean;
  dials: number;
}

/** Membership as every node sees it; a change is announced like the Cluster's 'peer-state'. */
class StateMap extends Map<string, PeerState> {
  readonly events = new EventEmitter();
  override set(id: string, s: PeerState): this {
    const prev = super.get(id) ?? 'alive';
    super.set(id, s);
    // Undefined while Map's constructor runs.
    if (prev !== s) this.events?.emit('peer-state', id, s, prev);
    return this;
  }
}

export class FakeCluster {
  readonly nodes: FakeNode[] = [];
  readonly table = new Map<string, FlowEntry>();
  readonly state = new StateMap();
  /** Read buffers of every node's pipes (one process). */
  readonly buffers = new BufferPool();
  readonly config: Config;
  /** Forced owner order per key (tests); otherwise rendezvous over the candidates. */
  readonly forcedOrder = new Map<string, string[]>();
  readonly #servers = new Map<string, Server>();
  readonly #sockets = new Map<string, Set<Socket>>();
  readonly #handlers = new Map<string, Handler>();
  readonly #rdv = new Rendezvous(SECRET);
  #clock = 0;

  readonly #poolSize: number | undefined;
  /** Nodes whose data-plane server takes streams and never answers (a stopped process). */
  readonly #frozen = new Set<string>();

  /** `poolSize`: pre-opened streams per peer (0: every forward dials, so a frozen peer is reached). */
  constructor(n: number, services: Record<string, unknown>[], basePort: number, opts: { poolSize?: number } = {}) {
    this.#poolSize = opts.poolSize;
    const nodes = Array.from({ length: n }, (_, i) => ({ id: `lb${i + 1}`, host: `127.0.0.${i + 1}`, peerPort: basePort + i, adminPort: basePort + 50 + i }));
    this.config = validateConfig({ cluster: { name: 'fake', secret: SECRET, nodes }, services });
    for (const nc of this.config.cluster.nodes) this.#makeNode(nc);
  }

  service(name: string): ServiceConfig {
    const s = this.config.services.find((x) => x.name === name);
    if (!s) throw new Error(`no service ${name}`);
    return s;
  }

  node(id: string): FakeNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  #makeNode(self: NodeConfig): void {
    const id = self.id;
    this.state.set(id, 'alive');
    this.#sockets.set(id, new Set());
    const ids = () => this.config.cluster.nodes.map((x) => x.id);
    const rank = (key: string, cands: readonly string[]) => {
      const forced = this.forcedOrder.get(key);
      if (forced) return forced.filter((x) => cands.includes(x));
      return this.#rdv.rank(key, cands.map((c) => ({ id: c, weight: 1 })));
    };
    const router = new FlowRouter({
      selfId: id,
      owners: (key, cands) => {
        const r = rank(key, cands);
        return { primary: r[0], backup: r[1] ?? null };
      },
      rank: (_s, key) => rank(key, ids()),
      candidates: () => ids().filter((x) => this.state.get(x) !== 'dead' && (x === id || this.node(x).alive)),
      state: (x) => (x === id ? 'alive' : this.state.get(x) ?? 'dead'),
      publish: () => {},
      merge: (e) => {
        const k = `${e.service}\u0000${e.key}`;
        const old = this.table.get(k);
        if (old && compareVersion(e, old) <= 0) return false;
        this.table.set(k, e);
        return true;
      },
      get: (s, k) => {
        const e = this.table.get(`${s}\u0000${k}`);
        return e && !e.ended ? e : undefined;
      },
      getAny: (s, k) => this.table.get(`${s}\u0000${k}`),
      version: () => Date.now() * 1024 + (this.#clock++ % 1024),
      now: () => Date.now(),
    });
    const pools = new Map<string, UpstreamPool>();
    for (const s of this.config.services) pools.set(s.name, new UpstreamPool(s.backends, createSelector(s.policy)));
    const node: FakeNode = {
      id,
      host: self.host,
      router,
      registry: new Registry(),
      services: new Map(),
      dataPort: 0,
      alive: true,
      dials: 0,
      ctx: undefined as unknown as ProxyContext,
      dataPlane: undefined as unknown as TcpDataPlane,
      peers: undefined as unknown as PeerPool,
      forwarder: undefined as unknown as Forwarder,
    };
    const dataPlane: DataPlane = {
      selfId: id,
      stateOf: (x) => (x === id ? 'alive' : this.state.get(x) ?? 'dead'),
      markSuspect: (x) => {
        if (this.state.get(x) === 'alive') this.state.set(x, 'suspect');
      },
      dial: (peer: string, _channel: DataChannel) => {
        node.dials++;
        return this.dialRaw(id, peer);
      },
      onChannel: (_channel: DataChannel, handler: Handler) => {
        this.#handlers.set(id, handler);
      },
      on: (ev, l) => this.state.events.on(ev, l),
      off: (ev, l) => this.state.events.off(ev, l),
    };
    const forwarder = new Forwarder(router, dataPlane);
    const ctx: ProxyContext = {
      self,
      nodes: () => this.config.cluster.nodes,
      router,
      dataPlane,
      forwarder,
      // The HTTP channel is not used by this protocol's tests: a mux that never dials.
      httpMux: new PeerMux({ dial: () => Promise.reject(new Error('no http channel in this harness')) }),
      secret: SECRET,
      logger: pino({ level: 'silent' }),
      registry: node.registry,
      pool: (name) => pools.get(name),
      service: (name) => this.config.services.find((s) => s.name === name),
    };
    Object.assign(node, { ctx, forwarder, peers: tcpPeerPool(ctx, this.#poolSize === undefined ? {} : { size: this.#poolSize }), dataPlane: new TcpDataPlane(ctx, (name) => node.services.get(name)) });
    this.nodes.push(node);
  }

  /** A data-plane stream from `from` to `to`, as the transport would hand it out. */
  dialRaw(from: string, to: string): Promise<Socket> {
    const peer = this.node(to);
    const self = this.node(from);
    return new Promise((resolve, reject) => {
      if (!self.alive) return reject(new Error('dialer is dead'));
      const s = connect({ host: peer.host, port: peer.dataPort, localAddress: self.host });
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        this.#sockets.get(from)!.add(s);
        s.once('close', () => this.#sockets.get(from)!.delete(s));
        resolve(s);
      });
    });
  }

  async #listen(n: FakeNode): Promise<void> {
    const server = createServer((s) => {
      const from = this.nodes.find((x) => x.host === s.remoteAddress);
      const handler = this.#handlers.get(n.id);
      if (!from || !handler || !n.alive) return void s.destroy();
      this.#sockets.get(n.id)!.add(s);
      s.once('close', () => this.#sockets.get(n.id)!.delete(s));
      // SIGSTOP: the kernel accepts the connection, the process never reads it.
      if (this.#frozen.has(n.id)) return void s.pause();
      handler(s, from.id, { key: Buffer.alloc(32) });
    });
    await new Promise<void>((r) => server.listen(n.dataPort, n.host, r));
    n.dataPort = (server.address() as AddressInfo).port;
    this.#servers.set(n.id, server);
  }

  async start(): Promise<void> {
    for (const n of this.nodes) await this.startNode(n.id);
  }

  async startNode(id: string): Promise<void> {
    const n = this.node(id);
    n.alive = true;
    this.state.set(id, 'alive');
    await this.#listen(n);
    n.dataPlane.start();
    n.peers.start();
    for (const cfg of this.config.services) {
      const svc = new TcpServiceProxy(n.ctx, cfg, { peers: n.peers, buffers: this.buffers });
      n.services.set(cfg.name, svc);
      await svc.start();
    }
  }

  /** kill -9: listeners and every socket of the node go at once; peers are told `state` later. */
  async kill(id: string, state: PeerState = 'alive'): Promise<void> {
    const n = this.node(id);
    n.alive = false;
    this.state.set(id, state);
    const server = this.#servers.get(id);
    this.#servers.delete(id);
    server?.close();
    for (const s of this.#sockets.get(id)!) s.destroy();
    await Promise.all([...n.services.values()].map((s) => s.stop()));
    n.services.clear();
    n.peers.stop();
    await n.dataPlane.stop();
    n.dataPlane = new TcpDataPlane(n.ctx, (name) => n.services.get(name));
  }

  async stop(): Promise<void> {
    for (const n of this.nodes) if (n.alive) await this.kill(n.id);
  }

  /** Like SIGSTOP of a node's process: new data-plane streams to it are accepted and never answered. */
  freeze(id: string, frozen = true): void {
    if (frozen) this.#frozen.add(id);
    else this.#frozen.delete(id);
  }

  /** Where a service listens on a node. */
  addr(id: string, service: string): { host: string; port: number } {
    return { host: this.node(id).host, port: this.service(service).port };
  }

  entry(service: string, key: string): FlowEntry | undefined {
    return this.table.get(`${service}\u0000${key}`);
  }
}
