/**
 * The HTTP proxy's layer over the in-process cluster (test/helpers/in-process-cluster.ts): per
 * node a flow table (replicated on the next tick), the real FlowRouter and rendezvous, an
 * UpstreamPool, PeerMux, HttpServiceProxy and HttpOwnerSide. The data plane's dial() is a real TCP
 * connection to the peer's "peer port" (the dialer's id on the first line stands in for the
 * handshake). kill() drops every socket of a node at once, which is what kill -9 looks like from
 * the outside; the survivors see it dead after `detectMs`.
 */
import net, { type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Registry } from 'prom-client';
import type { FlowRouter } from '../../../src/cluster/router.js';
import type { FlowEntry } from '../../../src/cluster/flow-entry.js';
import type { DataPlane, ProxyContext } from '../../../src/proxy/context.js';
import type { NodeConfig, ServiceConfig, TimeoutsConfig } from '../../../src/config/schema.js';
import type { UpstreamPool } from '../../../src/upstream/pool.js';
import { HttpServiceProxy } from '../../../src/proxy/http/service.js';
import { HttpOwnerSide } from '../../../src/proxy/http/owner.js';
import type { Forwarder } from '../../../src/proxy/hops.js';
import { PeerMux } from '../../../src/proxy/mux/peer-mux.js';
import { muxMetrics } from '../../../src/proxy/mux/metrics.js';
import { InProcessCluster } from '../../helpers/in-process-cluster.js';

type Handler = (socket: Duplex, peerId: string, session: { key: Buffer }) => void;

export interface FakeNode {
  readonly cfg: NodeConfig;
  readonly peerPort: number;
  readonly router: FlowRouter;
  readonly dp: DataPlane;
  readonly handlers: Map<string, Handler>;
  readonly registry: Registry;
  readonly pool: UpstreamPool;
  readonly ctx: ProxyContext;
  proxy: HttpServiceProxy;
  data: HttpOwnerSide;
  readonly forwarder: Forwarder;
  readonly mux: PeerMux;
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

/** The raw (config-file) form of the harness's http service. */
export function rawService(name: string, port: number, backends: readonly string[], flowKey: string, timeouts: Partial<TimeoutsConfig> = {}, accessLog = false): Record<string, unknown> {
  return {
    name,
    protocol: 'http',
    port,
    flowKey,
    flowIdleTimeoutMs: 600_000,
    maxFlows: 1_000_000,
    accessLog,
    timeouts,
    backends: backends.map((address) => ({ address })),
  };
}

export class FakeCluster {
  readonly nodes: FakeNode[] = [];
  readonly cluster: InProcessCluster;
  readonly service: ServiceConfig;
  readonly port: number;
  readonly #detectMs: number;

  private constructor(opts: FakeClusterOptions) {
    this.port = opts.basePort;
    this.#detectMs = opts.detectMs ?? 500;
    this.cluster = new InProcessCluster({
      nodes: opts.nodes ?? 3,
      services: [rawService('web', opts.basePort, opts.backends, opts.flowKey ?? 'header:x-session', opts.timeouts, opts.accessLog)],
      peerPort: (i) => opts.basePort + 10 + i,
      replication: 'next-tick',
    });
    this.service = this.cluster.service('web');
  }

  static async start(opts: FakeClusterOptions): Promise<FakeCluster> {
    const c = new FakeCluster(opts);
    for (const id of c.cluster.ids) c.nodes.push(c.#makeNode(id));
    for (const node of c.nodes) await c.#startNode(node);
    return c;
  }

  node(id: string): FakeNode {
    const n = this.nodes.find((x) => x.cfg.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** The owner order of a key over every node (the real rendezvous), best first. */
  rank(key: string): string[] {
    return this.cluster.rank(key);
  }

  /** The flow's entry on node `id`. */
  entry(id: string, key: string): FlowEntry | undefined {
    return this.cluster.entry(id, this.service.name, key);
  }

  #dial(selfId: string, peerId: string): Promise<Duplex> {
    const peer = this.node(peerId);
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: peer.cfg.host, port: peer.peerPort, noDelay: true });
      s.once('connect', () => {
        s.off('error', reject);
        s.write(`${selfId}\n`);
        resolve(s);
      });
      s.once('error', reject);
    });
  }

  #makeNode(id: string): FakeNode {
    const cfg = this.cluster.nodeConfig(id);
    const handlers = new Map<string, Handler>();
    const dp = this.cluster.dataPlane(id, {
      dial: (peer) => this.#dial(id, peer),
      onChannel: (channel, handler) => void handlers.set(channel, handler),
    });
    const registry = new Registry();
    const mux = new PeerMux({ dial: (peer) => dp.dial(peer, 'http'), metrics: muxMetrics(registry) });
    const pools = this.cluster.pools();
    const ctx = this.cluster.context(id, { dataPlane: dp, registry, httpMux: mux, nodes: () => this.nodes.map((n) => n.cfg) }, pools);
    return {
      cfg,
      peerPort: cfg.peerPort,
      router: ctx.router,
      dp,
      handlers,
      registry,
      pool: pools.get(this.service.name)!,
      ctx,
      proxy: undefined as unknown as HttpServiceProxy,
      data: undefined as unknown as HttpOwnerSide,
      forwarder: ctx.forwarder,
      mux,
      peerServer: undefined as unknown as net.Server,
      peerSockets: new Set(),
      alive: true,
    };
  }

  async #startNode(node: FakeNode): Promise<void> {
    node.proxy = new HttpServiceProxy(node.ctx, this.service);
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
    this.cluster.setDown(id, true);
    const closed = new Promise((r) => node.peerServer.close(r));
    for (const s of node.peerSockets) s.destroy();
    node.mux.close();
    node.forwarder.close();
    await Promise.all([node.proxy.stop(), closed]);
    setTimeout(() => this.cluster.membership.set(id, 'dead'), this.#detectMs).unref();
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
