/**
 * The node's services: one pool and one client-facing proxy per configured service, plus one data
 * plane per protocol for communications forwarded by peers, and what the proxies of a protocol
 * share (the TCP services' peer streams, pipe buffers and metrics; the UDP data plane with the UDP
 * metrics), made here once and handed down. `apply()` is both the first start and
 * every reload: services are added, removed or updated in place, and pools keep the runtime state
 * of backends that stay (so a reload forgets neither flows nor counters).
 */
import type { Config, ServiceConfig } from '../config/schema.js';
import type { ProxyContext, ServiceProxy } from '../proxy/context.js';
import { UpstreamPool } from '../upstream/pool.js';
import { createSelector } from '../balancer/index.js';
import { HealthChecker } from '../upstream/health.js';
import { HealthMetrics } from '../upstream/health-metrics.js';
import { HttpServiceProxy } from '../proxy/http/service.js';
import { HttpOwnerSide } from '../proxy/http/owner.js';
import { TcpServiceProxy } from '../proxy/tcp/service.js';
import { TcpDataPlane } from '../proxy/tcp/data-plane.js';
import { tcpPeerPool, type PeerPool } from '../proxy/tcp/peer-pool.js';
import { tcpMetrics, type TcpMetrics } from '../proxy/tcp/metrics.js';
import { BufferPool } from '../proxy/tcp/buffers.js';
import { UdpServiceProxy } from '../proxy/udp/service.js';
import { UdpDataPlane } from '../proxy/udp/data-plane.js';
import { UdpMetrics } from '../proxy/udp/metrics.js';

interface Running {
  cfg: ServiceConfig;
  proxy: ServiceProxy;
}

export class Services {
  readonly #ctx: ProxyContext;
  #running = new Map<string, Running>();
  #pools = new Map<string, UpstreamPool>();
  #checkers = new Map<string, HealthChecker>();
  readonly #healthMetrics: HealthMetrics;
  #http: HttpOwnerSide;
  #tcp: TcpDataPlane;
  #udp: UdpDataPlane;
  /** Shared by every TCP service: pre-opened streams to the peers, the pipes' read buffers, metrics. */
  readonly #tcpPeers: PeerPool;
  readonly #tcpMetrics: TcpMetrics;
  readonly #buffers = new BufferPool();

  readonly #onHealth: (service: string, address: string, healthy: boolean) => void;

  constructor(ctx: ProxyContext, onHealth: (service: string, address: string, healthy: boolean) => void = () => undefined) {
    this.#ctx = ctx;
    this.#onHealth = onHealth;
    this.#healthMetrics = new HealthMetrics(ctx.registry);
    this.#http = new HttpOwnerSide(ctx.httpMux, (name) => this.#proxy(name, HttpServiceProxy));
    this.#tcpMetrics = tcpMetrics(ctx.registry);
    this.#tcp = new TcpDataPlane(ctx, (name) => this.#proxy(name, TcpServiceProxy), this.#tcpMetrics);
    this.#udp = new UdpDataPlane(ctx, (name) => this.#proxy(name, UdpServiceProxy), new UdpMetrics(ctx.registry));
    this.#tcpPeers = tcpPeerPool(ctx, this.#tcpMetrics);
  }

  pool(name: string): UpstreamPool | undefined {
    return this.#pools.get(name);
  }

  pools(): ReadonlyMap<string, UpstreamPool> {
    return this.#pools;
  }

  async startDataPlanes(): Promise<void> {
    this.#http.start();
    this.#tcp.start();
    await this.#udp.start();
  }

  /** Bring the running services in line with `config`. */
  async apply(config: Config): Promise<void> {
    const wanted = new Map(config.services.map((s) => [s.name, s]));
    for (const [name, r] of this.#running) {
      const next = wanted.get(name);
      // A changed protocol, port, vip or TLS on/off is a different listener: stop the old one, start a new one.
      if (!next || next.protocol !== r.cfg.protocol || next.port !== r.cfg.port || next.vip !== r.cfg.vip || Boolean(next.tls) !== Boolean(r.cfg.tls)) {
        await r.proxy.drain(config.cluster.drainTimeoutMs);
        await r.proxy.stop();
        this.#running.delete(name);
        if (!next) {
          this.#pools.delete(name);
          this.#checkers.get(name)?.stop();
          this.#checkers.delete(name);
        }
      }
    }
    const pooled = new Set<string>();
    for (const cfg of config.services) {
      // The default route under the service's name, each route under SERVICE/ROUTE (docs/http.md, "Routes").
      for (const lane of poolConfigs(cfg)) {
        pooled.add(lane.name);
        this.#applyPool(lane);
      }
      const r = this.#running.get(cfg.name);
      if (r) {
        r.cfg = cfg;
        r.proxy.update(cfg);
        continue;
      }
      const proxy = this.#create(cfg);
      await proxy.start();
      this.#running.set(cfg.name, { cfg, proxy });
    }
    // Streams to peers are kept warm only while a TCP service may need them.
    if (config.services.some((s) => s.protocol === 'tcp')) this.#tcpPeers.start();
    else this.#tcpPeers.stop();
    for (const name of [...this.#pools.keys()]) {
      if (pooled.has(name)) continue;
      this.#pools.delete(name);
      this.#checkers.get(name)?.stop();
      this.#checkers.delete(name);
    }
  }

  /** One pool and health checker, kept across reloads (backends that stay keep their state). */
  #applyPool(cfg: ServiceConfig): void {
    const selector = createSelector(cfg.policy);
    const pool = this.#pools.get(cfg.name);
    if (pool) pool.update(cfg.backends, selector, cfg.slowStartMs);
    else this.#pools.set(cfg.name, new UpstreamPool(cfg.backends, selector, { slowStartMs: cfg.slowStartMs }));
    const checker = this.#checkers.get(cfg.name);
    if (checker) return checker.update(cfg);
    const hc = new HealthChecker({
      service: cfg,
      pool: this.#pools.get(cfg.name)!,
      logger: this.#ctx.logger.child({ component: 'health', service: cfg.name }),
      metrics: this.#healthMetrics,
      onChange: (address, healthy) => this.#onHealth(cfg.name, address, healthy),
    });
    this.#checkers.set(cfg.name, hc);
    hc.start();
  }

  /**
   * Every service finishes its open work (bounded by timeoutMs). A service's drain also waits for
   * the requests peers forwarded to it, which its data plane hands to the service.
   */
  async drain(timeoutMs: number): Promise<void> {
    await Promise.all([...this.#running.values()].map((r) => r.proxy.drain(timeoutMs)));
  }

  async stop(): Promise<void> {
    for (const c of this.#checkers.values()) c.stop();
    this.#checkers.clear();
    await Promise.allSettled([...this.#running.values()].map((r) => r.proxy.stop()));
    this.#running.clear();
    this.#tcpPeers.close();
    await Promise.allSettled([this.#tcp.stop(), this.#udp.stop()]);
  }

  #create(cfg: ServiceConfig): ServiceProxy {
    switch (cfg.protocol) {
      case 'http':
        return new HttpServiceProxy(this.#ctx, cfg);
      case 'tcp':
        return new TcpServiceProxy(this.#ctx, cfg, { peers: this.#tcpPeers, buffers: this.#buffers, metrics: this.#tcpMetrics });
      case 'udp':
        return new UdpServiceProxy(this.#ctx, cfg, this.#udp);
    }
  }

  #proxy<T>(name: string, kind: abstract new (...args: never[]) => T): T | undefined {
    // A route's flow service "SERVICE/ROUTE" is served by SERVICE.
    const slash = name.indexOf('/');
    const p = this.#running.get(slash < 0 ? name : name.slice(0, slash))?.proxy;
    return p instanceof kind ? p : undefined;
  }
}

/** The pools of a service: its default route, then each route as a service of its own name. */
function poolConfigs(cfg: ServiceConfig): ServiceConfig[] {
  const out: ServiceConfig[] = [cfg];
  for (const r of cfg.routes) {
    out.push({ ...cfg, name: r.flowService, backends: r.backends, policy: r.policy, flowKey: r.flowKey, healthCheck: r.healthCheck, timeouts: r.timeouts, routes: [] });
  }
  return out;
}
