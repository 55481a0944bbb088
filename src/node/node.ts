/**
 * One tandem node: the composition root. It owns the flow table, the cluster links, the router,
 * the backend pools, the protocol proxies and the admin API, and wires them together. Everything
 * here is glue; the behaviour lives in the modules it composes.
 */
import { pino, type Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { TandemError, ErrorCodes } from '../errors.js';
import type { Config, NodeConfig, ServiceConfig } from '../config/schema.js';
import { FlowTable } from '../cluster/flow-table.js';
import { Hlc } from '../cluster/hlc.js';
import { Cluster } from '../cluster/cluster.js';
import type { TicketKeyShare } from '../cluster/ticket-key-share.js';
import { RateLimitShare } from '../ratelimit/share.js';
import type { LocalEpochSecrets } from '../tls/ticket-keys.js';
import type { AcmeManager } from '../acme/manager.js';
import { FlowRouter } from '../cluster/router.js';
import { Forwarder } from '../proxy/hops.js';
import { PeerMux } from '../proxy/mux/peer-mux.js';
import { muxMetrics } from '../proxy/mux/metrics.js';
import type { FlowEntry } from '../cluster/flow-entry.js';
import { AdminServer } from '../admin/server.js';
import { registerAdminRoutes } from './admin-routes.js';
import { registerDashboard } from '../admin/dashboard/index.js';
import { NodeMetrics } from './metrics.js';
import { Services } from './services.js';
import { EventLog } from './events.js';
import { loadConfigFile, ConfigError, formatIssue } from '../config/load.js';
import { BackendDrains, CONTROL_SERVICE, isControl } from './drain.js';
import type { PeerState } from '../proxy/context.js';
import type { PeerStats } from '../cluster/cluster.js';
import type { RouterStats } from '../cluster/router.js';
import type { AdminStats, BackendReadout, NodeControl, NodeStatus, OwnedCounts, Owners, RankedNode } from './node-view.js';
import { applyLayers, withNodes, type SelfLayer } from '../config/layers.js';
import { NodeMembers } from './members.js';
import { NodeTls } from './tls-wiring.js';
import { NodeRanking } from './ranking.js';
import { Reprotection } from './reprotection.js';
import { Upkeep } from './upkeep.js';
import { newClaims } from './claims-wiring.js';
import type { FlowClaims } from '../cluster/claims.js';

export interface NodeOptions {
  readonly logger?: Logger;
  readonly logLevel?: string;
  /** `tandem start --host …`: this node as the command line gave it, laid over the file at every reload. */
  readonly self?: SelfLayer;
}

export class TandemNode implements NodeControl {
  /** The config in force, with the live member set as `cluster.nodes`. */
  #config: Config;
  /** The config as loaded (file, command-line node, pushed services), before the member set. */
  #fileConfig: Config;
  readonly #selfLayer: SelfLayer | undefined;
  /** The member set: the file's nodes, self, and the nodes found in etcd (members.ts). */
  readonly membership: NodeMembers;
  #memberNodes: readonly NodeConfig[] | null = null;
  readonly self: NodeConfig;
  readonly logger: Logger;
  readonly registry = new Registry();
  readonly table: FlowTable;
  readonly hlc = new Hlc();
  readonly cluster: Cluster;
  /** Ticket keys, ACME and its HTTP-01 listeners (tls-wiring.ts). */
  readonly #tls: NodeTls;
  /** The cluster-wide rate limiters of http services and routes (docs/rate-limits.md). */
  readonly rateLimits: RateLimitShare;
  readonly router: FlowRouter;
  /** The one forwarding loop, handed to every proxy (it holds the single peer-state subscription). */
  readonly forwarder: Forwarder;
  /** Forwarded HTTP requests to and from peers, many per authenticated connection. */
  readonly httpMux: PeerMux;
  readonly admin: AdminServer;
  readonly services: Services;
  readonly events: EventLog;
  /** Rendezvous over the member set and over the candidates for new flows (ranking.ts). */
  readonly #ranking: NodeRanking;
  #draining = false;
  /** Set while shutdown() waits out `withdrawGraceMs`. */
  #endGrace: (() => void) | null = null;
  #started = false;
  /** When the table is re-protected: deaths, returns, removals, hand-over (reprotection.ts). */
  readonly #reprotection: Reprotection;
  /** Backend drain states, replicated through the table (drain.ts). */
  readonly #drains: BackendDrains;
  /** Refreshes, expiry and the rate of communications, once serving (upkeep.ts). */
  readonly #upkeep: Upkeep;
  readonly #claims: FlowClaims;
  readonly startedAt = Date.now();

  constructor(config: Config, selfId: string, opts: NodeOptions = {}) {
    const self = config.cluster.nodes.find((n) => n.id === selfId);
    if (!self) {
      throw new TandemError(ErrorCodes.UNKNOWN_NODE, `node "${selfId}" is not in the config (nodes: ${config.cluster.nodes.map((n) => n.id).join(', ')})`);
    }
    this.#config = config;
    this.#fileConfig = config;
    this.#selfLayer = opts.self;
    this.self = self;
    this.logger = opts.logger ?? pino({ level: opts.logLevel ?? config.cluster.logLevel, base: { node: selfId } });
    this.events = new EventLog(selfId);
    collectDefaultMetrics({ register: this.registry, prefix: 'tandem_process_' });
    this.#ranking = new NodeRanking(config.cluster.secret, config.cluster.nodes);
    this.membership = new NodeMembers({
      cluster: config.cluster.name,
      self,
      fileNodes: config.cluster.nodes,
      etcd: config.cluster.discovery?.etcd ?? null,
      logger: this.logger,
      registry: this.registry,
      events: this.events,
      isDead: (id) => this.stateOf(id) === 'dead',
      onChange: () => this.#membersChanged(),
      applyServices: (services) => this.#applyPushed(services),
    });
    const metrics = new NodeMetrics(this.registry);
    this.table = new FlowTable({
      limits: (service) => {
        // Drain states must outlive any idle timeout: they end only when undrained.
        if (service === CONTROL_SERVICE) return { maxEntries: 100_000, idleTimeoutMs: 10 * 365 * 86_400_000 };
        const s = this.service(service);
        return s ? { maxEntries: s.maxFlows, idleTimeoutMs: s.flowIdleTimeoutMs } : { maxEntries: 100_000, idleTimeoutMs: 600_000 };
      },
      onEvict: (entry, reason) => metrics.evicted(entry.service, reason),
    });
    this.cluster = new Cluster({
      settings: config.cluster,
      selfId,
      table: this.table,
      hlc: this.hlc,
      logger: this.logger.child({ component: 'cluster' }),
      registry: this.registry,
    });
    this.#tls = new NodeTls({ plane: this.cluster, config, self, logger: this.logger, registry: this.registry });
    this.rateLimits = new RateLimitShare({ plane: this.cluster, registry: this.registry, logger: this.logger.child({ component: 'rate-limits' }) });
    this.#recomputeCandidates();
    this.router = new FlowRouter({
      selfId,
      owners: (key, candidates) => this.#ranking.owners(key, candidates),
      rank: (_service, key) => this.#ranking.rank(key),
      candidates: () => this.#ranking.candidates,
      state: (id) => this.stateOf(id),
      linkUp: (id) => this.cluster.nodeIds.includes(id) && this.cluster.linkUp(id),
      publish: (e) => this.cluster.publish(e),
      merge: (e) => this.table.merge(e),
      get: (s, k) => this.table.get(s, k),
      getAny: (s, k) => this.table.getAny(s, k),
      version: () => this.hlc.now(),
      now: Date.now,
    });
    this.#reprotection = new Reprotection({
      selfId,
      router: this.router,
      logger: this.logger,
      events: this.events,
      nodes: () => this.#config.cluster.nodes,
      stateOf: (id) => this.stateOf(id),
      eligible: (id) => this.membership.eligible(id),
      flows: () => this.flows(),
    });
    this.#upkeep = new Upkeep(this.router, this.table);
    this.#claims = newClaims({ selfId, cluster: this.cluster, router: this.router, table: this.table, hlc: this.hlc, pool: (name) => this.services.pool(name), registry: this.registry, timeoutMs: config.cluster.failureTimeoutMs });
    this.forwarder = new Forwarder(this.router, this.cluster, this.#claims);
    this.httpMux = new PeerMux({ dial: (peer) => this.cluster.dial(peer, 'http'), metrics: muxMetrics(this.registry), channel: 'http' });
    this.cluster.onChannel('http', (socket, peer) => this.httpMux.accept(socket, peer));
    this.cluster.on('peer-state', (id: string, state: PeerState, prev: PeerState) => {
      this.#onPeerState(id, state, prev);
      // After the death handling: a peer that left etcd (or the file) is dropped once dead.
      if (state === 'dead') this.membership.peerDead(id);
    });
    this.cluster.on('remote-entries', (entries: readonly FlowEntry[]) => {
      for (const e of entries) if (isControl(e)) this.#drains.apply(e);
    });
    this.services = new Services({
      self,
      nodes: () => this.#config.cluster.nodes,
      router: this.router,
      dataPlane: this.cluster,
      forwarder: this.forwarder,
      httpMux: this.httpMux,
      secret: config.cluster.secret,
      logger: this.logger,
      registry: this.registry,
      tls: this.#tls.context,
      service: (name) => this.service(name),
      pool: (name) => this.services.pool(name),
      limiter: (name) => this.rateLimits.limiter(name),
    }, (service, address, healthy) => this.events.add('health', `${service} ${address} ${healthy ? 'up' : 'down'}`, { service, address, healthy }));
    this.#drains = new BackendDrains({
      selfId,
      table: this.table,
      publish: (e) => this.cluster.publish(e),
      version: () => this.hlc.now(),
      backend: (service, address) => this.services.pool(service)?.get(address),
      events: this.events,
      logger: this.logger,
    });
    this.admin = new AdminServer({ host: self.host, port: self.adminPort, token: config.cluster.adminToken, logger: this.logger.child({ component: 'admin' }) });
    registerAdminRoutes(this, this.admin);
    registerDashboard(this, this.admin);
    metrics.bindNode(this);
  }

  get config(): Config {
    return this.#config;
  }

  /** The cluster's TLS session-ticket keys (docs/tls.md), for services with `sessionTickets: cluster`. */
  get ticketKeys(): TicketKeyShare {
    return this.#tls.ticketKeys;
  }

  /** `sessionTickets: node`: this node's own ticket-key epochs, never shared. */
  get localTicketKeys(): LocalEpochSecrets {
    return this.#tls.localTicketKeys;
  }

  /** ACME certificates for the whole tier (docs/tls.md, "ACME"). */
  get acme(): AcmeManager {
    return this.#tls.acme;
  }

  get id(): string {
    return this.self.id;
  }

  get ready(): boolean {
    return this.#started && this.cluster.ready && !this.#draining;
  }

  get draining(): boolean {
    return this.#draining;
  }

  get routerStats(): Readonly<RouterStats> {
    return this.router.stats;
  }

  get adminStats(): AdminStats {
    return this.admin.stats;
  }

  peers(): readonly PeerStats[] {
    return this.cluster.stats().peers;
  }

  backends(service: string): readonly BackendReadout[] | undefined {
    return this.services.pool(service)?.backends;
  }

  service(name: string): ServiceConfig | undefined {
    return this.#config.services.find((s) => s.name === name);
  }

  stateOf(id: string): PeerState {
    if (id === this.self.id) return 'alive';
    // A replicated entry may name a node this config does not list (a membership change rolling
    // through the cluster, or a faulty peer). Such a node is no usable owner here: 'dead', so the
    // router re-owns the flow instead of throwing in the middle of a client's request.
    return this.cluster.nodeIds.includes(id) ? this.cluster.stateOf(id) : 'dead';
  }

  /** The full rendezvous ranking for a key over all configured nodes (for `tandem flow`). */
  ranking(key: string): RankedNode[] {
    return this.#ranking.scores(key).map((s) => ({ ...s, state: this.stateOf(s.id) }));
  }

  /** Where a new flow for this key would go now. */
  wouldOwn(key: string): Owners {
    return this.#ranking.wouldOwn(key);
  }

  async start(): Promise<void> {
    await this.admin.start();
    // Discovery first (bounded: etcd may be down): the first dials and the pushed services.
    await this.membership.start();
    this.#membersChanged();
    await this.#tls.applyAcme(this.#config);
    await this.cluster.start();
    await this.services.startDataPlanes();
    // Client-facing listeners open once the table is synced: a node that accepted traffic before
    // it knew the cluster's flows would create duplicate owners for existing flows.
    await waitFor(() => this.cluster.ready, this.#config.cluster.snapshotTimeoutMs + 5000);
    // Synced from one peer is not yet linked to all: until the other links are up, new flows would
    // be ranked over too few nodes. Wait for them, bounded by the time a dead peer takes to judge.
    const peers = this.#config.cluster.nodes.filter((n) => n.id !== this.self.id);
    await waitFor(() => peers.every((n) => this.cluster.stateOf(n.id) === 'alive'), this.#config.cluster.failureTimeoutMs);
    this.#tls.applyTicketKeys(this.#config);
    this.rateLimits.apply(this.#config);
    await this.services.apply(this.#config);
    this.#drains.applyAll();
    this.#started = true;
    this.membership.serving();
    this.#upkeep.start(this.#config.services);
    this.events.add('lifecycle', 'node started');
    this.logger.info({ host: this.self.host, services: this.#config.services.map((s) => `${s.protocol}/${s.port}`) }, 'node started');
  }

  /**
   * Swap the whole config (already validated). A change of cluster.nodes updates the member set
   * (a node gone from the file leaves once dead); other cluster settings need a restart.
   */
  async reload(next: Config): Promise<void> {
    const changedNodes = JSON.stringify(next.cluster.nodes) !== JSON.stringify(this.#fileConfig.cluster.nodes);
    const changedDiscovery = JSON.stringify(next.cluster.discovery) !== JSON.stringify(this.#fileConfig.cluster.discovery);
    this.#fileConfig = next;
    this.#config = withNodes(next, this.#memberNodes ?? next.cluster.nodes);
    this.membership.setFileNodes(next.cluster.nodes);
    this.admin.token = next.cluster.adminToken;
    this.#tls.applyTicketKeys(this.#config);
    this.rateLimits.apply(this.#config);
    await this.#tls.applyAcme(this.#config);
    await this.services.apply(this.#config);
    this.#drains.applyAll();
    this.logger.info({ services: next.services.length, nodesChanged: changedNodes }, 'config reloaded');
    this.events.add('reload', `config reloaded: ${next.services.length} services`);
    if (changedDiscovery) this.logger.warn('cluster.discovery changed: it takes effect when the node restarts');
  }

  /** Reload from the config file this node was started with; an invalid file is refused whole. */
  async reloadFromFile(): Promise<{ ok: boolean; problems: string[] }> {
    const file = this.#config.source;
    if (!file) return { ok: false, problems: ['this node was not started from a config file'] };
    try {
      await this.reload(this.#load(file, this.membership.pushedServices()));
      return { ok: true, problems: [] };
    } catch (err) {
      const problems = err instanceof ConfigError ? err.issues.map(formatIssue) : [(err as Error).message];
      this.logger.error({ problems }, 'reload refused: the running config stays');
      this.events.add('reload', `reload refused (${problems.length} problems); the running config stays`, { problems });
      return { ok: false, problems };
    }
  }

  /**
   * Graceful stop (SIGTERM): report not ready; when a route watchdog announces this node
   * (`cluster.announce`), keep serving for `withdrawGraceMs` so that it withdraws the route and the
   * router stops sending before anything closes (docs/deploy-ecmp.md); then stop accepting, hand
   * this node's flows to their backups (replicated before exit), let open work finish within the
   * drain timeout.
   */
  async shutdown(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    const graceMs = this.#config.cluster.announce?.withdrawGraceMs ?? 0;
    if (graceMs > 0) {
      this.logger.info({ withdrawGraceMs: graceMs }, 'not ready: serving on while the route is withdrawn');
      this.events.add('lifecycle', `node not ready (SIGTERM): serving ${graceMs} ms more while the route is withdrawn`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.#endGrace = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#endGrace = null;
    }
    this.logger.info({ drainTimeoutMs: this.#config.cluster.drainTimeoutMs }, 'draining');
    this.events.add('lifecycle', 'node draining (SIGTERM)');
    // Peers stop ranking this node for new flows (etcd; bounded, and skipped when etcd is away).
    await this.membership.leaving();
    // 1. Hand the flows over and make sure the peers have the new owners before anything closes:
    //    from then on they forward this node's flows to the former backups.
    this.handOver();
    this.router.flushRefreshes();
    await this.cluster.flush();
    // 2. Stop accepting clients; finish what is in flight, client-facing and forwarded by peers.
    await this.services.drain(this.#config.cluster.drainTimeoutMs);
    await this.cluster.flush();
    await this.stop();
  }

  /** Cut the withdraw grace short (a second SIGTERM): drain now. False when not in the grace. */
  endGrace(): boolean {
    const end = this.#endGrace;
    if (!end) return false;
    end();
    return true;
  }

  /**
   * Sets a backend draining (or not) on every node: written locally, replicated like a flow.
   * Returns false when the service or backend is unknown here.
   */
  setDraining(service: string, address: string, draining: boolean): boolean {
    return this.#drains.set(service, address, draining);
  }

  /** A summary of this node for `tandem status` and the dashboard. */
  status(): NodeStatus {
    return {
      id: this.id,
      ready: this.ready,
      draining: this.#draining,
      uptimeSec: Math.round((Date.now() - this.startedAt) / 1000),
      flows: this.ownedCounts(),
      ratePerSec: this.#upkeep.ratePerSec,
    };
  }

  /** Live flows in this node's table, and how many of them it holds as primary and as backup. */
  ownedCounts(): OwnedCounts {
    const c = { total: 0, primary: 0, backup: 0 };
    for (const e of this.flows()) {
      c.total++;
      if (e.primary === this.id) c.primary++;
      else if (e.backup === this.id) c.backup++;
    }
    return c;
  }

  /** Flow entries (not control entries). */
  *flows(): IterableIterator<FlowEntry> {
    for (const e of this.table.entries()) if (!isControl(e)) yield e;
  }

  /** Re-protect every entry as if this node were dead, and replicate the result. */
  handOver(): number {
    return this.#reprotection.handOver(new Set(this.#ranking.candidates.filter((id) => id !== this.self.id)));
  }

  async stop(): Promise<void> {
    this.#upkeep.stop();
    await this.services.stop();
    this.rateLimits.stop();
    await this.#tls.stop();
    this.forwarder.close();
    this.#claims.close();
    this.httpMux.close();
    await this.cluster.stop();
    await this.membership.stop(true);
    await this.admin.stop();
    this.logger.info('node stopped');
  }

  /** The config file again, with the command-line node and the given pushed services laid over it. */
  #load(file: string, services: readonly unknown[] | undefined): Config {
    return loadConfigFile(file, (raw) => applyLayers(raw, { self: this.#selfLayer, services }));
  }

  /** Pushed services (null: the file's again), validated and run like a SIGHUP reload. */
  async #applyPushed(services: readonly unknown[] | null): Promise<readonly string[] | null> {
    const file = this.#fileConfig.source;
    if (!file) return ['(node): this node was not started from a config file'];
    let next: Config;
    try {
      next = this.#load(file, services ?? undefined);
    } catch (err) {
      return err instanceof ConfigError ? err.issues.map(formatIssue) : [(err as Error).message];
    }
    if (this.#started) await this.reload(next);
    else {
      // Still starting: the services open with this config.
      this.#fileConfig = next;
      this.#config = withNodes(next, this.#memberNodes ?? next.cluster.nodes);
    }
    return null;
  }

  /** The member set changed (discovery, reload, a departed peer now dead): links, ranking, config. */
  #membersChanged(): void {
    const nodes = this.membership.nodes();
    if (nodes !== this.#memberNodes) {
      this.#memberNodes = nodes;
      this.#config = withNodes(this.#fileConfig, nodes);
      const { added, removed, changed } = this.cluster.setNodes(nodes);
      this.#ranking.setNodes(nodes);
      for (const id of added) this.events.add('membership', `${id} joined the member set`, { peer: id, change: 'added' });
      for (const id of removed) this.events.add('membership', `${id} left the member set`, { peer: id, change: 'removed' });
      for (const id of changed) this.events.add('membership', `${id} has a new address`, { peer: id, change: 'address' });
      this.#recomputeCandidates();
      this.#reprotection.removed(removed, this.#started);
      return;
    }
    this.#recomputeCandidates();
  }

  #recomputeCandidates(): void {
    this.#ranking.recompute(this.#config.cluster.nodes, (id) => id === this.self.id || (this.cluster.stateOf(id) !== 'dead' && this.membership.eligible(id)));
  }

  #onPeerState(id: string, state: PeerState, prev: PeerState): void {
    this.#recomputeCandidates();
    this.events.add('membership', `${id}: ${prev} → ${state}`, { peer: id, state, prev });
    this.#reprotection.peerState(id, state, prev, this.#started);
  }
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

export type { FlowEntry };
