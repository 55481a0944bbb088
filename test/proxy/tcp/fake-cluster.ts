/**
 * The TCP proxy's layer over the in-process cluster (test/helpers/in-process-cluster.ts): N
 * nodes in one process, each with the real FlowRouter and rendezvous, pools, TcpServiceProxy and
 * TcpDataPlane, sharing one flow table (instant replication) and the one membership view. The
 * data plane is real TCP: dial() connects to the peer's data-plane server (bound on the peer's
 * host), and the receiver names the dialer by the source address (each node dials from its own
 * 127.0.0.x) — the stand-in for the transport's handshake. Killing a node closes its data-plane
 * server and destroys its sockets, so dials are refused.
 */
import { createServer, connect, type Server, type Socket, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { Registry } from 'prom-client';
import type { Config, ServiceConfig } from '../../../src/config/schema.js';
import type { FlowRouter } from '../../../src/cluster/router.js';
import type { FlowEntry } from '../../../src/cluster/flow-entry.js';
import type { PeerState, ProxyContext } from '../../../src/proxy/context.js';
import { TcpServiceProxy } from '../../../src/proxy/tcp/service.js';
import { TcpDataPlane } from '../../../src/proxy/tcp/data-plane.js';
import type { Forwarder } from '../../../src/proxy/hops.js';
import { tcpPeerPool, type PeerPool } from '../../../src/proxy/tcp/peer-pool.js';
import { BufferPool } from '../../../src/proxy/tcp/buffers.js';
import { tcpMetrics, type TcpMetrics } from '../../../src/proxy/tcp/metrics.js';
import { InProcessCluster, type Membership } from '../../helpers/in-process-cluster.js';

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
  /** The node's TCP metric set (one per node, as the composition root makes it). */
  readonly metrics: TcpMetrics;
  /** The node's pre-opened streams to its peers (started with the node). */
  readonly peers: PeerPool;
  readonly forwarder: Forwarder;
  /** Port of the node's data-plane server. */
  dataPort: number;
  alive: boolean;
  dials: number;
}

export class FakeCluster {
  readonly nodes: FakeNode[] = [];
  readonly cluster: InProcessCluster;
  /** Read buffers of every node's pipes (one process). */
  readonly buffers = new BufferPool();
  readonly #servers = new Map<string, Server>();
  readonly #sockets = new Map<string, Set<Socket>>();
  readonly #handlers = new Map<string, Handler>();
  readonly #poolSize: number | undefined;
  /** Nodes whose data-plane server takes streams and never answers (a stopped process). */
  readonly #frozen = new Set<string>();

  /** `poolSize`: pre-opened streams per peer (0: every forward dials, so a frozen peer is reached). */
  constructor(n: number, services: Record<string, unknown>[], basePort: number, opts: { poolSize?: number } = {}) {
    this.#poolSize = opts.poolSize;
    this.cluster = new InProcessCluster({ nodes: n, services, peerPort: (i) => basePort + i, secret: SECRET, replication: 'instant' });
    for (const id of this.cluster.ids) this.#makeNode(id);
  }

  get config(): Config {
    return this.cluster.config;
  }

  /** Membership as every node sees it. */
  get state(): Membership {
    return this.cluster.membership;
  }

  /** Forced owner order per key (tests); otherwise rendezvous over the candidates. */
  get forcedOrder(): Map<string, readonly string[]> {
    return this.cluster.forcedOrder;
  }

  /** The one flow table (instant replication). */
  get table(): Map<string, FlowEntry> {
    return this.cluster.table(this.cluster.ids[0]);
  }

  service(name: string): ServiceConfig {
    return this.cluster.service(name);
  }

  node(id: string): FakeNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  #makeNode(id: string): void {
    this.#sockets.set(id, new Set());
    const self = this.cluster.nodeConfig(id);
    const node: FakeNode = {
      id,
      host: self.host,
      router: this.cluster.router(id),
      registry: new Registry(),
      services: new Map(),
      dataPort: 0,
      alive: true,
      dials: 0,
      ctx: undefined as unknown as ProxyContext,
      dataPlane: undefined as unknown as TcpDataPlane,
      peers: undefined as unknown as PeerPool,
      forwarder: undefined as unknown as Forwarder,
      metrics: undefined as unknown as TcpMetrics,
    };
    const dataPlane = this.cluster.dataPlane(id, {
      dial: (peer) => {
        node.dials++;
        return this.dialRaw(id, peer);
      },
      onChannel: (_channel, handler) => void this.#handlers.set(id, handler),
    });
    const ctx = this.cluster.context(id, { dataPlane, registry: node.registry }, this.cluster.pools());
    const metrics = tcpMetrics(node.registry);
    const peers = tcpPeerPool(ctx, metrics, this.#poolSize === undefined ? {} : { size: this.#poolSize });
    Object.assign(node, { ctx, forwarder: ctx.forwarder, metrics, peers, dataPlane: new TcpDataPlane(ctx, (name) => node.services.get(name), metrics) });
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
      const svc = new TcpServiceProxy(n.ctx, cfg, { peers: n.peers, buffers: this.buffers, metrics: n.metrics });
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
    n.dataPlane = new TcpDataPlane(n.ctx, (name) => n.services.get(name), n.metrics);
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
    return this.cluster.entry(this.cluster.ids[0], service, key);
  }
}
