/**
 * A UDP service on this node (docs/udp.md; the routing rule of docs/design.md). One client-facing socket on
 * host:port plays both roles of the routing rule:
 *
 *  - ingress: every client datagram gets its flow key (`connection`, `client-ip` or `quic-cid`)
 *    and its entry (router.lookup), then goes through the node's one hop loop (hops.ts): served
 *    here when this node is the acting owner, else encapsulated to the owner over the UDP data
 *    plane; a datagram that cannot leave towards a peer goes to the next owner, and the flow is
 *    re-owned once when no owner can take it.
 *  - owner: the flow's backend (router.assign: the recorded one while usable, so affinity
 *    survives failover) and one connected socket per flow towards it (flows.ts). A backend reply
 *    goes back through the node that received the client's latest datagram and leaves from that
 *    node's service socket, i.e. from the very address the client sent to — clients (and
 *    stateful firewalls, RFC 4787 section 4) only accept replies from there.
 *
 * A datagram forwarded by a peer is always served here (router.hops(entry, true) is [LOCAL]):
 * no loops. Nothing waits on I/O per datagram; sends are fire-and-forget and counted on error.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import type { ProxyContext, ServiceProxy } from '../context.js';
import { bindDatagram, listenAddresses } from '../listen-addresses.js';
import type { ServiceConfig } from '../../config/schema.js';
import type { FlowEntry } from '../../cluster/flow-entry.js';
import type { BackendState } from '../../upstream/pool.js';
import { connectionKey, isFlowKeyAllowed, parseFlowKeySpec, quicSourceCid, toHex, udpFlowKey, type FlowKeySpec } from '../../flowkey/index.js';
import { TandemError, ErrorCodes } from '../../errors.js';
import type { ClientAddress } from './encap.js';
import { FlowSockets, RecentClients, type UdpFlow } from './flows.js';
import type { DropReason, IncOnly, UdpMetrics } from './metrics.js';
import type { PlaneReceiver, UdpDataPlane } from './data-plane.js';
import { SERVED, stop, tryNext, type Attempt, type AttemptResult, type LoopResult } from '../hops.js';

/** Drain ends once the flow sockets were quiet this long (replies to in-flight datagrams are back). */
const DRAIN_QUIET_MS = 500;

/** Why a datagram was not delivered by the hop loop (the shared metric label vocabulary). */
type UdpFailure = 'unavailable' | 'no-backend' | 'too-large';
const NO_BACKEND: AttemptResult<UdpFailure> = Object.freeze(stop('no-backend'));
const TOO_LARGE: AttemptResult<UdpFailure> = Object.freeze(stop('too-large'));
/** The plane cannot reach that peer from here (no socket, unresolved host): the next owner may take it. */
const UNSENT: AttemptResult<UdpFailure> = Object.freeze(tryNext('unavailable', false));

/** The service's flow key, refused at start rather than on every datagram when it does not apply to udp. */
function udpSpec(cfg: ServiceConfig): FlowKeySpec {
  if (!isFlowKeyAllowed('udp', cfg.flowKey)) {
    throw new TandemError(ErrorCodes.CONFIG_INVALID, `service ${cfg.name}: flowKey ${cfg.flowKey} does not apply to udp`);
  }
  return parseFlowKeySpec(cfg.flowKey);
}

export class UdpServiceProxy implements ServiceProxy, PlaneReceiver {
  readonly name: string;
  readonly #ctx: ProxyContext;
  #cfg: ServiceConfig;
  #spec: FlowKeySpec;
  readonly #plane: UdpDataPlane;
  #socket: Socket | null = null;
  #stopped = false;
  readonly #flows: FlowSockets;
  readonly #clients: RecentClients;
  readonly #metrics: UdpMetrics;
  readonly #source = { service: '', flowCount: () => this.#flows.size };
  readonly #count: { inLocal: IncOnly; inForwarded: IncOnly; outLocal: IncOnly; outForwarded: IncOnly };
  #sweep: NodeJS.Timeout | null = null;
  readonly #onRun = (r: LoopResult<UdpFailure>): void => {
    if (!r.ok) this.#drop(r.failure);
  };
  readonly #onRunError = (err: unknown): void => this.#fail(err);

  /** `plane`: the node's one UDP data plane (made by the composition root). */
  constructor(ctx: ProxyContext, cfg: ServiceConfig, plane: UdpDataPlane) {
    this.#ctx = ctx;
    this.#cfg = cfg;
    this.name = cfg.name;
    this.#spec = udpSpec(cfg);
    this.#plane = plane;
    this.#metrics = plane.metrics;
    this.#source.service = cfg.name;
    this.#count = {
      inLocal: this.#metrics.datagramCounter(cfg.name, 'in', 'local'),
      inForwarded: this.#metrics.datagramCounter(cfg.name, 'in', 'forwarded'),
      outLocal: this.#metrics.datagramCounter(cfg.name, 'out', 'local'),
      outForwarded: this.#metrics.datagramCounter(cfg.name, 'out', 'forwarded'),
    };
    this.#flows = new FlowSockets({
      maxFlows: cfg.maxFlows,
      idleMs: cfg.flowIdleTimeoutMs,
      onReply: (flow, msg) => this.#onBackendReply(flow, msg),
      onClose: (flow, reason) => this.#onFlowClosed(flow, reason),
      onDrop: (reason) => this.#drop(reason),
    });
    this.#clients = new RecentClients(cfg.maxFlows, cfg.flowIdleTimeoutMs);
  }

  /** Flows this node serves as owner (backend sockets open). */
  flowCount(): number {
    return this.#flows.size;
  }

  /** The bound client-facing address (tests). */
  address(): { address: string; port: number } | null {
    if (!this.#socket) return null;
    const a = this.#socket.address();
    return { address: a.address, port: a.port };
  }

  async start(): Promise<void> {
    if (this.#socket) return;
    const host = this.#ctx.self.host;
    const socket = createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4' });
    socket.on('message', (msg, rinfo) => this.#onClient(msg, rinfo));
    socket.on('error', (err) => this.#ctx.logger.warn({ err, service: this.name }, 'udp service socket error'));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      bindDatagram(socket, listenAddresses(host, this.#cfg), this.#cfg.port, () => {
        socket.off('error', reject);
        resolve();
      });
    }).catch((err: unknown) => {
      // The system error (EADDRINUSE, EADDRNOTAVAIL…) as is, like the tcp and http listeners.
      socket.close();
      throw err;
    });
    this.#socket = socket;
    this.#stopped = false;
    this.#flows.start();
    this.#metrics.attach(this.#source);
    const period = Math.max(100, Math.min(1000, Math.floor(this.#cfg.flowIdleTimeoutMs / 4)));
    this.#sweep = setInterval(() => this.#clients.sweep(), period).unref();
  }

  update(cfg: ServiceConfig): void {
    this.#cfg = cfg;
    this.#spec = udpSpec(cfg);
    this.#flows.configure(cfg.maxFlows, cfg.flowIdleTimeoutMs);
    this.#clients.configure(cfg.maxFlows, cfg.flowIdleTimeoutMs);
  }

  /**
   * UDP has no connections to finish. The node hands this node's flows to their backups before
   * draining, so new datagrams go elsewhere; what is left is replies to datagrams in flight.
   * Keep serving until the flow sockets have been quiet for DRAIN_QUIET_MS, or the timeout.
   */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && this.#flows.size > 0 && Date.now() - this.#flows.lastActivity < DRAIN_QUIET_MS) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#sweep) clearInterval(this.#sweep);
    this.#sweep = null;
    this.#flows.closeAll();
    this.#clients.clear();
    this.#metrics.detach(this.#source);
    const s = this.#socket;
    this.#socket = null;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /**
   * Data plane: a client datagram that ingress node `ingress` forwarded to this node, an owner. It
   * is served here or not at all (the loop's only hop for a forwarded communication is local).
   */
  serveForwarded(key: string, client: ClientAddress, ingress: string, payload: Buffer): void {
    if (this.#stopped) return this.#drop('stopped');
    try {
      const entry = this.#ctx.router.lookup(this.name, key);
      this.#ctx.forwarder
        .run<UdpFailure>(entry, true, (a) => (this.#serve(a.entry, client, ingress, payload) ? SERVED : NO_BACKEND), 'unavailable')
        .then(this.#onRun, this.#onRunError);
    } catch (err) {
      this.#fail(err);
    }
  }

  /** Data plane: a backend reply that the owner sent back through this node, the ingress. */
  deliverReply(key: string, client: ClientAddress, payload: Buffer): void {
    this.#toClient(key, client, payload, this.#count.outForwarded);
  }

  #onClient(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.#stopped) return;
    try {
      const key = this.#key(msg, rinfo);
      if (key === null) return this.#drop('flow-key');
      const client: ClientAddress = { address: rinfo.address, port: rinfo.port };
      if (this.#spec.kind === 'quic-cid') this.#clients.set(key, client);
      const entry = this.#ctx.router.lookup(this.name, key);
      // The node's one hop loop. Every attempt here is synchronous, and the loop calls the first
      // one before it awaits anything: a datagram leaves in the order it came, from this callback.
      this.#ctx.forwarder.run<UdpFailure>(entry, false, (a) => this.#attempt(a, key, client, msg), 'unavailable').then(this.#onRun, this.#onRunError);
    } catch (err) {
      this.#fail(err);
    }
  }

  /**
   * One hop of a client datagram. UDP gives no "the forward failed before any byte" signal, so a
   * peer hop fails only when the datagram cannot leave at all; a dead primary is skipped once the
   * failure detector says so (router.hops), and after re-protection the backup is primary anyway.
   */
  #attempt(a: Attempt, key: string, client: ClientAddress, msg: Buffer): AttemptResult<UdpFailure> {
    const self = this.#ctx.router.selfId;
    if (a.hop.kind === 'local') {
      if (!this.#serve(a.entry, client, self, msg)) return NO_BACKEND;
      this.#count.inLocal.inc();
      return SERVED;
    }
    const sent = this.#plane.forward(a.node, { service: this.name, key, client, ingress: self }, msg);
    if (sent === 'sent') {
      this.#count.inForwarded.inc();
      return SERVED;
    }
    return sent === 'too-large' ? TOO_LARGE : UNSENT;
  }

  #key(msg: Buffer, rinfo: RemoteInfo): string | null {
    try {
      return udpFlowKey(this.#spec, rinfo, msg, { shortHeaderCidLength: this.#cfg.quicCidLength });
    } catch {
      return null;
    }
  }

  /**
   * Owner side: the flow's backend and its socket; the datagram goes out at once (or waits for
   * connect, bounded). False when the service has no usable backend.
   */
  #serve(entry: FlowEntry, client: ClientAddress, ingress: string, payload: Buffer): boolean {
    const pool = this.#ctx.pool(this.name);
    if (!pool) return false;
    // Under `client-ip` every port of the client shares the entry (and so the backend) but has
    // its own socket, so that a reply reaches the very port that sent the request (a resolver
    // with random source ports, RFC 5452, would otherwise get its answers on the wrong port).
    const id = this.#spec.kind === 'client-ip' ? connectionKey(client.address, client.port) : entry.key;
    // When the table has no backend but this node already has a socket for the flow (the entry
    // was created concurrently on another node and that creation won the merge), the socket's
    // backend is the flow's backend: record it again rather than pick a new one.
    const open = this.#flows.get(id);
    const { entry: current, backend } = this.#ctx.router.assign(
      entry,
      (a) => pool.usable(a),
      (k) => (open && pool.usable(open.backend) ? open.backend : pool.choose(k)),
    );
    const target = backend === null ? undefined : pool.get(backend);
    if (!target) return false;
    this.#ctx.router.active(current);
    this.#flows.send(id, entry.key, target, client, ingress, payload, () => pool.acquire(target.address));
    return true;
  }

  #onBackendReply(flow: UdpFlow, msg: Buffer): void {
    if (this.#stopped) return;
    const self = this.#ctx.router.selfId;
    if (this.#spec.kind === 'quic-cid') this.#learnServerCid(flow, msg);
    if (flow.ingress === self) return this.#toClient(flow.lastKey, flow.client, msg, this.#count.outLocal);
    this.#plane.reply({ service: this.name, key: flow.lastKey, client: flow.client, ingress: flow.ingress }, msg);
  }

  /**
   * QUIC: the client's first DCID is its own random choice; from the server's first long-header
   * packet on, the client addresses the server by the server's Source Connection ID (RFC 9000
   * section 7.2). That id names the same connection, so it must reach the same backend — and the
   * same socket, or the backend would see the connection move mid-handshake, which RFC 9000
   * section 9 forbids clients to do. The id becomes an alias of the flow: an entry with the
   * flow's owners and backend (written with a real version, so it outranks a weak creation
   * elsewhere), and a second id of the flow's socket here.
   */
  #learnServerCid(flow: UdpFlow, msg: Buffer): void {
    const scid = quicSourceCid(msg);
    if (scid === null || scid.length === 0) return;
    const alias = toHex(scid);
    if (alias === flow.key || flow.aliases.includes(alias)) return;
    if (!this.#flows.alias(alias, flow)) return;
    const router = this.#ctx.router;
    const own = router.lookup(this.name, flow.key);
    const seed: FlowEntry = { ...own, key: alias, backend: null };
    // assign() keeps an existing entry's usable backend; otherwise it records ours, with `seed`'s
    // owners when no entry exists yet.
    const { entry } = router.assign(seed, (a) => a === flow.backend, () => flow.backend);
    router.active(entry);
  }

  /** Ingress side: out of the service socket, to the client's latest known address. */
  #toClient(key: string, client: ClientAddress, payload: Buffer, counter: IncOnly): void {
    const socket = this.#socket;
    if (!socket || this.#stopped) return this.#drop('stopped');
    // quic-cid: the client may have moved since this reply's datagram (RFC 9000 section 9).
    const to = (this.#spec.kind === 'quic-cid' ? this.#clients.get(key) : undefined) ?? client;
    counter.inc();
    socket.send(payload, to.port, to.address, (err) => {
      if (err) this.#drop('send-error');
    });
  }

  #onFlowClosed(flow: UdpFlow, reason: string): void {
    this.#ctx.pool(this.name)?.release(flow.tag as BackendState | undefined);
    if (reason === 'lru' || reason === 'idle') this.#metrics.evicted(this.name, reason);
    // No router.end() here: a socket idle on this node does not mean the flow is idle in the
    // cluster (it may have moved to another owner while this node was suspect, and a tombstone
    // would then cut a live flow's affinity). The flow table expires the entry itself after
    // flowIdleTimeoutMs without the refreshes that router.active() batches.
  }

  #drop(reason: DropReason): void {
    this.#metrics.drop(this.name, reason);
  }

  #fail(err: unknown): void {
    this.#drop('error');
    this.#ctx.logger.debug({ err, service: this.name }, 'udp datagram failed');
  }
}
