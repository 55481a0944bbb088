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
import { Rendezvous, type RendezvousNode } from '../cluster/rendezvous.js';
import { Cluster } from '../cluster/cluster.js';
import { TicketKeyShare } from '../cluster/ticket-key-share.js';
import { RateLimitShare } from '../ratelimit/share.js';
import { LocalEpochSecrets } from '../tls/ticket-keys.js';
import { AcmeManager } from '../acme/manager.js';
import { ChallengeServer } from '../acme/challenge-server.js';
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
import { CONTROL_SERVICE, drainEntry, isControl, parseDrain } from './drain.js';
import type { PeerState } from '../proxy/context.js';
import type { PeerStats } from '../cluster/cluster.js';
import type { RouterStats } from '../cluster/router.js';
import type { AdminStats, BackendReadout, NodeControl, NodeStatus, OwnedCounts, Owners, RankedNode } from './node-view.js';
import { applyLayers, withNodes, type SelfLayer } from '../config/layers.js';
import { NodeMembers } from './members.js';

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
  /** The cluster's TLS session-ticket keys (docs/tls.md), for services with `sessionTickets: cluster`. */
  readonly ticketKeys: TicketKeyShare;
  /** The cluster-wide rate limiters of http services and routes (docs/rate-limits.md). */
  readonly rateLimits: RateLimitShare;
  /** `sessionTickets: node`: this node's own ticket-key epochs, never shared. */
  readonly localTicketKeys = new LocalEpochSecrets();
  /** ACME certificates for the whole tier (docs/tls.md, "ACME"); the HTTP engine calls acme.challengeResponse(path). */
  readonly acme: AcmeManager;
  #challengeServers = new Map<number, ChallengeServer>();
  readonly router: FlowRouter;
  /** The one forwarding loop, handed to every proxy (it holds the single peer-state subscription). */
  readonly forwarder: Forwarder;
  /** Forwarded HTTP requests to and from peers, many per authenticated connection. */
  readonly httpMux: PeerMux;
  readonly admin: AdminServer;
  readonly services: Services;
  readonly events: EventLog;
  #rendezvous: Rendezvous;
  #rankNodes: RendezvousNode[] = [];
  #candidates: string[] = [];
  #candidateNodes: RendezvousNode[] = [];
  #timers: NodeJS.Timeout[] = [];
  #draining = false;
  /** Set while shutdown() waits out `withdrawGraceMs`. */
  #endGrace: (() => void) | null = null;
  /** Communications per second over the last few seconds (EWMA of router lookups). */
  #rate = { last: 0, perSec: 0 };
  #started = false;
  /** Peers heard from since this process started (see #notKnownDead). */
  readonly #heard = new Set<string>();
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
    this.#rendezvous = new Rendezvous(config.cluster.secret);
    this.#rankNodes = config.cluster.nodes.map((n) => ({ id: n.id, weight: n.weight }));
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
    // Always receiving; it makes and sends keys only once a service needs them (#applyTicketKeys).
    this.ticketKeys = new TicketKeyShare({
      plane: this.cluster,
      clusterName: config.cluster.name,
      secret: config.cluster.secret,
      logger: this.logger.child({ component: 'tls-tickets' }),
      registry: this.registry,
    });
    this.rateLimits = new RateLimitShare({ plane: this.cluster, registry: this.registry, logger: this.logger.child({ component: 'rate-limits' }) });
    // Loads the certificates kept in the state directory now, before any peer is reachable.
    this.acme = new AcmeManager({
      plane: this.cluster,
      clusterName: config.cluster.name,
      secret: config.cluster.secret,
      stateDir: config.cluster.stateDir ?? null,
      logger: this.logger.child({ component: 'acme' }),
      registry: this.registry,
    });
    this.#recomputeCandidates();
    this.router = new FlowRouter({
      selfId,
      // The precomputed candidate list on the hot path; a narrower list (a re-own that leaves
      // out the nodes that just failed) is ranked from the configured nodes.
      owners: (key, candidates) =>
        this.#rendezvous.owners(key, candidates === this.#candidates ? this.#candidateNodes : this.#rankNodes.filter((n) => candidates.includes(n.id))),
      rank: (_service, key) => this.#rendezvous.rank(key, this.#rankNodes),
      candidates: () => this.#candidates,
      state: (id) => this.stateOf(id),
      publish: (e) => this.cluster.publish(e),
      merge: (e) => this.table.merge(e),
      get: (s, k) => this.table.get(s, k),
      getAny: (s, k) => this.table.getAny(s, k),
      version: () => this.hlc.now(),
      now: Date.now,
    });
    this.forwarder = new Forwarder(this.router, this.cluster);
    this.httpMux = new PeerMux({ dial: (peer) => this.cluster.dial(peer, 'http'), metrics: muxMetrics(this.registry), channel: 'http' });
    this.cluster.onChannel('http', (socket, peer) => this.httpMux.accept(socket, peer));
    this.cluster.on('peer-state', (id: string, state: PeerState, prev: PeerState) => {
      this.#onPeerState(id, state, prev);
      // After the death handling: a peer that left etcd (or the file) is dropped once dead.
      if (state === 'dead') this.membership.peerDead(id);
    });
    this.cluster.on('remote-entries', (entries: readonly FlowEntry[]) => {
      for (const e of entries) if (isControl(e)) this.#applyDrain(e);
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
      tls: {
        clusterName: config.cluster.name,
        clusterTickets: this.ticketKeys,
        nodeTickets: this.localTicketKeys,
        acme: { pemFor: (s) => this.acme.pemFor(s), attach: (s, store) => this.acme.attach(s, store), detach: (store) => this.acme.detach(store), challengeResponse: (path) => this.acme.challengeResponse(path) },
      },
      service: (name) => this.service(name),
      pool: (name) => this.services.pool(name),
      limiter: (name) => this.rateLimits.limiter(name),
    }, (service, address, healthy) => this.events.add('health', `${service} ${address} ${healthy ? 'up' : 'down'}`, { service, address, healthy }));
    this.admin = new AdminServer({ host: self.host, port: self.adminPort, token: config.cluster.adminToken, logger: this.logger.child({ component: 'admin' }) });
    registerAdminRoutes(this, this.admin);
    registerDashboard(this, this.admin);
    metrics.bindNode(this);
  }

  get config(): Config {
    return this.#config;
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
    return this.#rendezvous.scores(key, this.#rankNodes).map((s) => ({ ...s, state: this.stateOf(s.id) }));
  }

  /** Where a new flow for this key would go now. */
  wouldOwn(key: string): Owners {
    return this.#rendezvous.owners(key, this.#candidateNodes);
  }

  async start(): Promise<void> {
    await this.admin.start();
    // Discovery first (bounded: etcd may be down): the first dials and the pushed services.
    await this.membership.start();
    this.#membersChanged();
    await this.#applyAcme(this.#config);
    await this.cluster.start();
    await this.services.startDataPlanes();
    // Client-facing listeners open once the table is synced: a node that accepted traffic before
    // it knew the cluster's flows would create duplicate owners for existing flows.
    await waitFor(() => this.cluster.ready, this.#config.cluster.snapshotTimeoutMs + 5000);
    // Synced from one peer is not yet linked to all: until the other links are up, new flows would
    // be ranked over too few nodes. Wait for them, bounded by the time a dead peer takes to judge.
    const peers = this.#config.cluster.nodes.filter((n) => n.id !== this.self.id);
    await waitFor(() => peers.every((n) => this.cluster.stateOf(n.id) === 'alive'), this.#config.cluster.failureTimeoutMs);
    this.#applyTicketKeys(this.#config);
    this.rateLimits.apply(this.#config);
    await this.services.apply(this.#config);
    for (const e of this.table.entries(CONTROL_SERVICE)) this.#applyDrain(e);
    this.#started = true;
    this.membership.serving();
    this.#startTimers();
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
    this.#applyTicketKeys(this.#config);
    this.rateLimits.apply(this.#config);
    await this.#applyAcme(this.#config);
    await this.services.apply(this.#config);
    for (const e of this.table.entries(CONTROL_SERVICE)) this.#applyDrain(e);
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
    const pool = this.services.pool(service);
    if (!pool?.get(address)) return false;
    const e = drainEntry(service, address, draining, this.hlc.now(), this.id, Date.now());
    this.table.merge(e);
    this.cluster.publish(e);
    this.#applyDrain(e);
    this.logger.info({ service, backend: address, draining }, draining ? 'backend draining' : 'backend undrained');
    this.events.add('drain', `${service} ${address} ${draining ? 'draining' : 'undrained'}`, { service, address, draining });
    return true;
  }

  /** A summary of this node for `tandem status` and the dashboard. */
  status(): NodeStatus {
    return {
      id: this.id,
      ready: this.ready,
      draining: this.#draining,
      uptimeSec: Math.round((Date.now() - this.startedAt) / 1000),
      flows: this.ownedCounts(),
      ratePerSec: Math.round(this.#rate.perSec * 10) / 10,
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

  #applyDrain(e: FlowEntry): void {
    const d = parseDrain(e);
    if (!d) return;
    const b = this.services.pool(d.service)?.get(d.address);
    if (b && b.draining !== d.draining) {
      b.draining = d.draining;
      if (e.writer !== this.id) this.events.add('drain', `${d.service} ${d.address} ${d.draining ? 'draining' : 'undrained'} (by ${e.writer})`, { ...d });
    }
  }

  /** Re-protect every entry as if this node were dead, and replicate the result. */
  handOver(): number {
    const alive = new Set(this.#candidates.filter((id) => id !== this.self.id));
    const mine = [...this.flows()].filter((e) => e.primary === this.self.id || e.backup === this.self.id);
    // reprotectAll replicates what it writes.
    const written = this.router.reprotectAll(mine, alive);
    this.logger.info({ flows: written.length }, 'flows handed over');
    return written.length;
  }

  async stop(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    await this.services.stop();
    this.ticketKeys.stop();
    this.rateLimits.stop();
    this.localTicketKeys.stop();
    this.acme.stop();
    for (const c of this.#challengeServers.values()) await c.close();
    this.#challengeServers.clear();
    this.forwarder.close();
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
      this.#rankNodes = nodes.map((n) => ({ id: n.id, weight: n.weight }));
      for (const id of removed) this.#heard.delete(id);
      for (const id of added) this.events.add('membership', `${id} joined the member set`, { peer: id, change: 'added' });
      for (const id of removed) this.events.add('membership', `${id} left the member set`, { peer: id, change: 'removed' });
      for (const id of changed) this.events.add('membership', `${id} has a new address`, { peer: id, change: 'address' });
      this.#recomputeCandidates();
      if (this.#started && removed.length > 0) {
        // Whatever still names a removed node (a view that differed) gets owners from the members.
        const n = this.router.reprotectAll(this.flows(), this.#notKnownDead()).length;
        if (n > 0) this.events.add('reprotect', `${removed.join(', ')} removed: ${n} flows re-protected`, { peers: removed, flows: n });
      }
      return;
    }
    this.#recomputeCandidates();
  }

  #recomputeCandidates(): void {
    const ids: string[] = [];
    for (const n of this.#config.cluster.nodes) {
      if (n.id === this.self.id || (this.cluster.stateOf(n.id) !== 'dead' && this.membership.eligible(n.id))) ids.push(n.id);
    }
    this.#candidates = ids;
    this.#candidateNodes = this.#rankNodes.filter((n) => ids.includes(n.id));
  }

  #onPeerState(id: string, state: PeerState, prev: PeerState): void {
    // Only a peer heard from since this process started can be known dead ('suspect' implies
    // heard: it needs a frame within failureTimeoutMs).
    if (state !== 'dead') this.#heard.add(id);
    this.#recomputeCandidates();
    this.events.add('membership', `${id}: ${prev} → ${state}`, { peer: id, state, prev });
    // A node still starting has a partial view: peers it has not reached yet read 'dead' (never
    // heard from), and its table is whatever snapshots arrived so far. Re-protecting then would
    // strip live peers of their flows, and the result reaches every peer whose full resync starts
    // afterwards (found by the chaos test: tables never converged after a restart). The running
    // nodes have already re-protected whatever really died; this node gets their result.
    if (!this.#started) return;
    if (state === 'dead' && prev !== 'dead') {
      const n = this.router.reprotectAll(this.flows(), this.#notKnownDead()).length;
      this.logger.warn({ peer: id, reprotected: n }, 'peer dead: flows re-protected');
      this.events.add('reprotect', `${id} dead: ${n} flows re-protected (backups promoted)`, { peer: id, flows: n });
    } else if (state === 'alive' && prev === 'dead') {
      // Flows re-owned while too few nodes were alive may lack a backup: protect them again now.
      const n = this.router.reprotectAll(this.flows(), this.#notKnownDead()).length;
      this.logger.info({ peer: id, reprotected: n }, 'peer alive');
      if (n > 0) this.events.add('reprotect', `${id} back: ${n} flows given a backup`, { peer: id, flows: n });
    }
  }

  /**
   * The nodes re-protection may keep as owners: every node except the peers this node saw die.
   * A node ready after a restart may still wait for some peers to redial it (their back-off runs
   * up to reconnectMaxMs): they read 'dead' but are not known dead, and moving their flows away
   * would write a table the rest of the cluster never agrees with (found by the chaos test).
   * Routing still skips them (router.hops): this set only decides whom to strip of flows.
   */
  #notKnownDead(): Set<string> {
    const out = new Set<string>();
    for (const n of this.#config.cluster.nodes) {
      if (n.id === this.self.id) out.add(n.id);
      else if ((!this.#heard.has(n.id) || this.stateOf(n.id) !== 'dead') && this.membership.eligible(n.id)) out.add(n.id);
    }
    return out;
  }

  /**
   * ACME certificates, and an HTTP-01 listener on each challenge port where no http service of
   * this node listens (an http service answers challenges itself, docs/tls.md "ACME").
   */
  async #applyAcme(config: Config): Promise<void> {
    await this.acme.apply(config);
    const httpPorts = new Set(config.services.filter((s) => s.protocol === 'http' && !s.tls).map((s) => s.port));
    const want = new Set(this.acme.challengePorts().filter((p) => !httpPorts.has(p)));
    for (const [port, c] of this.#challengeServers) {
      if (want.has(port)) continue;
      await c.close();
      this.#challengeServers.delete(port);
    }
    for (const port of want) {
      if (this.#challengeServers.has(port)) continue;
      const c = new ChallengeServer((path) => this.acme.challengeResponse(path));
      try {
        await c.listen(this.self.host, port);
        this.#challengeServers.set(port, c);
      } catch (err) {
        this.logger.error({ port, err: (err as Error).message }, 'cannot listen for ACME HTTP-01 challenges');
      }
    }
  }

  /** Cluster ticket keys are made and sent only while some service uses them (docs/protocol.md §10). */
  #applyTicketKeys(config: Config): void {
    if (config.services.some((s) => s.tls?.sessionTickets === 'cluster')) this.ticketKeys.enable();
    if (config.services.some((s) => s.tls?.sessionTickets === 'node')) this.localTicketKeys.start();
  }

  #startTimers(): void {
    const idle = Math.min(...this.#config.services.map((s) => s.flowIdleTimeoutMs), 600_000);
    // Refresh well inside the shortest idle timeout, so that a live flow never looks idle elsewhere.
    const refreshMs = Math.max(250, Math.min(5000, Math.floor(idle / 4)));
    this.#timers.push(setInterval(() => this.router.flushRefreshes(), refreshMs).unref());
    this.#timers.push(setInterval(() => this.table.expire(), 1000).unref());
    this.#timers.push(
      setInterval(() => {
        const n = this.router.stats.lookups;
        // EWMA with a ~5 s time constant: steady enough to read, quick enough to see a failover.
        this.#rate.perSec = this.#rate.perSec * 0.8 + (n - this.#rate.last) * 0.2;
        this.#rate.last = n;
      }, 1000).unref(),
    );
  }
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

export type { FlowEntry };
