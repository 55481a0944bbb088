/**
 * The HTTP service of one node (docs/design.md §1, the routing rule; docs/http.md): a client-facing
 * HTTP/1.1 listener on raw sockets (client.ts, llhttp through parser.ts) whose every request goes
 * through the node's one forwarding loop (hops.ts) — served here from a pooled keep-alive backend
 * connection (backend.ts), or sent to the flow's owner on a peer multiplexer stream (forward.ts),
 * which serves it the same way (owner.ts). Upgrades become tunnels (tunnel.ts).
 *
 * Retry rules (RFC 9110 section 9.2.2): a failed forward goes to the next owner when nothing was
 * sent, or when the method is idempotent and the body can be sent again; a body of known length up
 * to 64 KB is read whole before a peer forward for that. A backend failure is never retried on
 * another backend: affinity first, the client gets 502/504.
 */
import net, { type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { ProxyContext, ServiceProxy } from '../context.js';
import { listenAddresses, listenStream } from '../listen-addresses.js';
import type { ServiceConfig, ServiceTlsConfig } from '../../config/schema.js';
import type { EpochSecretSource } from '../../cluster/ticket-key-share.js';
import { TlsListener } from '../../tls/listener.js';
import type { TLSSocket } from 'node:tls';
import { CertificateStore } from '../../tls/store.js';
import type { UpstreamPool } from '../../upstream/pool.js';
import type { FlowEntry } from '../../cluster/flow-entry.js';
import type { PeerMux } from '../mux/peer-mux.js';
import type { MuxHandler, MuxStream } from '../mux/stream.js';
import { SERVED, stop, type Attempt, type AttemptResult } from '../hops.js';
import { normalizeAddress, connectionKey } from '../../flowkey/index.js';
import { ensureParser, type HttpParser } from './parser.js';
import { Exchange } from './exchange.js';
import { ClientConnection, type ClientHost, type ClientTimeouts } from './client.js';
import { BackendPool, type BackendTimeouts } from './backend.js';
import { PeerForward, type ForwardHost, type ForwardResult } from './forward.js';
import type { PeerHead } from './peer-head.js';
import type { OwnerHost } from './owner.js';
import { Tunnels } from './tunnel.js';
import { ServiceMetrics } from './metrics.js';
import type { HttpErrorKind } from './errors.js';
import { RequestPrep } from './prepare.js';
import { RouteMetrics } from './route-metrics.js';
import { H2Front } from './h2-front.js';
import type { H2StreamHost } from './h2-stream.js';
import type { H2RequestHead } from './h2-head.js';

/** Extra wait for a peer's answer over requestMs, so that the serving node's own 504 arrives first. */
const PEER_TIMEOUT_MARGIN_MS = 2000;

type Result = AttemptResult<HttpErrorKind>;

export class HttpServiceProxy implements ServiceProxy, ClientHost, OwnerHost, ForwardHost, H2StreamHost {
  readonly name: string;
  readonly #ctx: ProxyContext;
  #cfg: ServiceConfig;
  readonly #metrics: ServiceMetrics;
  readonly #selfId: string;
  /** Checks, route, flow key and next-hop head of every request head (prepare.ts). */
  readonly #prep: RequestPrep;
  #server: Server | null = null;
  /** TLS termination in front of the connection handler, when the service has `tls:`. */
  #tls: TlsListener | null = null;
  /** HTTP/2 to clients (h2-front.ts): the TLS connections that negotiated h2. */
  #h2: H2Front | null = null;
  /** The store the node's ACME manager feeds (detached on stop). */
  #acmeStore: CertificateStore | null = null;
  readonly #conns = new Set<ClientConnection>();
  readonly #backends: BackendPool;
  readonly #forwards = new Set<PeerForward>();
  readonly tunnels: Tunnels;
  #clientTimeouts: ClientTimeouts;
  #backendTimeouts: BackendTimeouts;
  #sweep: NodeJS.Timeout | null = null;
  #access: Logger | null = null;
  #draining = false;
  /** Exchanges not yet finished, client-facing and forwarded in by peers (drain waits for them). */
  #inflight = 0;
  /** Per lane, bound once per UpstreamPool instance (not once per request): its pool's functions (a route's pool is another UpstreamPool). */
  readonly #bound = new Map<string, Bound>();
  readonly #routeMetrics: RouteMetrics;

  constructor(ctx: ProxyContext, cfg: ServiceConfig) {
    this.name = cfg.name;
    this.#ctx = ctx;
    this.#cfg = cfg;
    this.#selfId = ctx.self.id;
    this.#prep = new RequestPrep(ctx, cfg);
    this.#metrics = new ServiceMetrics(ctx.registry, cfg.name);
    this.#routeMetrics = new RouteMetrics(ctx.registry, cfg.name);
    this.#access = cfg.accessLog ? ctx.logger.child({ access: cfg.name }) : null;
    this.#backends = new BackendPool(this);
    this.tunnels = new Tunnels(this, ctx);
    this.#clientTimeouts = clientTimeouts(cfg);
    this.#backendTimeouts = cfg.timeouts;
  }

  get now(): number {
    return performance.now();
  }

  get draining(): boolean {
    return this.#draining;
  }

  get config(): ServiceConfig {
    return this.#cfg;
  }

  get metrics(): ServiceMetrics {
    return this.#metrics;
  }

  get mux(): PeerMux {
    return this.#ctx.httpMux;
  }

  get selfId(): string {
    return this.#selfId;
  }

  /** Open client connections (tests, metrics). */
  get connections(): number {
    return this.#conns.size;
  }

  async start(): Promise<void> {
    ensureParser();
    const mux = this.#ctx.httpMux;
    // One dial timeout per node (the mux is shared): the shortest connectMs of its services.
    mux.dialTimeoutMs = Math.min(mux.dialTimeoutMs, this.#cfg.timeouts.connectMs);
    const tls = this.#cfg.tls;
    if (tls) {
      const h2 = (this.#h2 = new H2Front({
        service: this.name,
        host: this,
        registry: this.#ctx.registry,
        logger: this.#ctx.logger,
        opened: (socket, ip, port) => this.#opened(socket, ip, port),
      }));
      this.#tls = new TlsListener({
        service: this.name,
        clusterName: this.#tlsCtx().clusterName,
        tls,
        store: this.#certificateStore(tls),
        tickets: this.#tickets(tls),
        registry: this.#ctx.registry,
        logger: this.#ctx.logger,
        handshakeTimeoutMs: this.#cfg.timeouts.headerMs,
        // ALPN as the config says (h2 first by default: the server's preference wins).
        onSecure: (socket, alpn) => (alpn === 'h2' ? h2.accept(socket) : this.accept(socket)),
      });
      this.#prep.proto = 'https';
    }
    const listener = this.#tls;
    const server = net.createServer({ noDelay: true }, listener === null ? this.#onConnection : (s: Socket) => listener.accept(s));
    server.maxConnections = this.#cfg.maxConnections;
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      listenStream(server, listenAddresses(this.#ctx.self.host, this.#cfg), this.#cfg.port, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#startSweep();
  }

  update(cfg: ServiceConfig): void {
    this.#cfg = cfg;
    this.#prep.update(cfg);
    this.#bound.clear();
    this.#access = cfg.accessLog ? this.#ctx.logger.child({ access: cfg.name }) : null;
    this.#clientTimeouts = clientTimeouts(cfg);
    this.#backendTimeouts = cfg.timeouts;
    if (this.#server) this.#server.maxConnections = cfg.maxConnections;
    this.#backends.update(cfg.backends.map((b) => b.address));
    if (this.#tls !== null && cfg.tls) {
      this.#tls.update(cfg.tls, this.#tickets(cfg.tls));
      // A refused set (unreadable, mismatched) keeps the previous certificates; the listener logs why.
      this.#tls.reloadCertificates(cfg.tls.certificates);
    }
    this.#startSweep();
  }

  /** The service's certificates: its files, plus the ACME certificate fed by the node when `tls.acme` is set. */
  #certificateStore(tls: ServiceTlsConfig): CertificateStore {
    const acme = tls.acme ? this.#tlsCtx().acme : undefined;
    const pem = acme?.pemFor(this.name) ?? null;
    const store = new CertificateStore(tls.certificates, pem === null ? {} : { memory: [{ id: 'acme', cert: Buffer.from(pem.cert), key: Buffer.from(pem.key) }] });
    if (acme !== undefined) {
      acme.attach(this.name, store);
      this.#acmeStore = store;
    }
    return store;
  }

  #tlsCtx(): NonNullable<ProxyContext['tls']> {
    const t = this.#ctx.tls;
    if (t === undefined) throw new TypeError(`service ${this.name}: tls: needs the node's TLS context`);
    return t;
  }

  #tickets(tls: ServiceTlsConfig): EpochSecretSource | null {
    if (tls.sessionTickets === 'off') return null;
    const t = this.#tlsCtx();
    return tls.sessionTickets === 'cluster' ? t.clusterTickets : t.nodeTickets;
  }

  /** Stops accepting; waits (up to timeoutMs) for open exchanges, client-facing and forwarded in; then stops. */
  async drain(timeoutMs: number): Promise<void> {
    this.#draining = true;
    const server = this.#server;
    if (!server) return;
    server.close();
    const deadline = Date.now() + timeoutMs;
    // Idle keep-alive connections close now; busy ones after their response (Connection: close).
    // HTTP/2 sessions get GOAWAY: their open streams finish, no new one starts.
    this.#h2?.drain();
    for (;;) {
      for (const c of this.#conns) c.closeIfIdle();
      if ((this.#conns.size === 0 && this.#inflight === 0 && this.tunnels.size === 0 && (this.#h2?.size ?? 0) === 0) || Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await this.stop();
  }

  async stop(): Promise<void> {
    this.#draining = true;
    if (this.#sweep) clearInterval(this.#sweep);
    this.#sweep = null;
    const server = this.#server;
    this.#server = null;
    this.#tls?.close();
    this.#h2?.close();
    if (this.#acmeStore !== null) this.#tlsCtx().acme?.detach(this.#acmeStore);
    this.#acmeStore = null;
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of [...this.#conns]) c.socket.destroy();
      await closed;
    }
    this.tunnels.closeAll();
    this.#backends.close();
  }

  // ---- client side -------------------------------------------------------------------------

  readonly #onConnection = (socket: Socket): void => this.accept(socket);

  /**
   * A client connection to serve: accepted by this service's listener, or handed over by a TLS
   * listener once secured (a tls.TLSSocket is a Socket; see docs/tls.md, "For the HTTP engine").
   */
  accept(socket: Socket): void {
    const raw = socket.remoteAddress;
    if (raw === undefined) return void socket.destroy();
    const ip = normalizeAddress(raw);
    const port = socket.remotePort ?? 0;
    const conn = new ClientConnection(this, socket, ip, port);
    this.#conns.add(conn);
    this.#opened(socket, ip, port);
  }

  /**
   * `connection` flow keys (the service's or a route's) end with the connection: replicate a
   * tombstone for each (a no-op for a route this connection never used).
   */
  #opened(socket: Socket | TLSSocket, ip: string, port: number): void {
    const ended = this.#prep.routing.connectionKeyed;
    if (ended.length === 0) return;
    const key = connectionKey(ip, port);
    socket.once('close', () => {
      for (const service of ended) this.#ctx.router.end(service, key);
    });
  }

  closed(conn: ClientConnection): void {
    this.#conns.delete(conn);
  }

  /** A client request head: validation (docs/http.md, "Errors"), route, flow key, the head for the next hop (prepare.ts). */
  prepare(ex: Exchange, p: HttpParser, conn: ClientConnection): HttpErrorKind | null {
    return this.#prep.client(ex, p, conn.ip, conn.port);
  }

  /** An HTTP/2 stream's head: the same steps as an HTTP/1.1 request's (prepare.ts). */
  prepareH2(ex: Exchange, h: H2RequestHead, bodyUnknownLength: boolean): HttpErrorKind | null {
    return this.#prep.h2(ex, h, bodyUnknownLength);
  }

  /** Answers this node gives itself for a routed request; true when it did. */
  #answerHere(ex: Exchange): boolean {
    if (ex.challenge !== null) {
      queueMicrotask(() => ex.answerChallenge());
      return true;
    }
    const lane = ex.lane;
    if (lane === null) {
      this.#routeMetrics.outcome('', 'no-route');
      queueMicrotask(() => ex.fail('no-route'));
      return true;
    }
    if (ex.retryAfterS > 0) {
      this.#routeMetrics.outcome(lane.route, 'rate-limited');
      queueMicrotask(() => ex.fail('rate-limited'));
      return true;
    }
    if (ex.location !== null) {
      this.#routeMetrics.outcome(lane.route, 'redirected');
      const status = lane.redirect?.status ?? 302;
      queueMicrotask(() => ex.redirect(status));
      return true;
    }
    if (this.#prep.routing.routed) this.#routeMetrics.outcome(lane.route, 'routed');
    return false;
  }

  /** The exchange's turn: the forwarding loop from its flow's entry. */
  serve(ex: Exchange): void {
    if (ex.reject !== null) return ex.fail(ex.reject);
    // The answer waits for the head's parse to end (the message end), so that keep-alive goes on.
    if (this.#answerHere(ex)) return;
    ex.entry = this.#ctx.router.lookup(ex.lane!.flowService, ex.key);
    this.#run(ex, ex.entry, (a) => this.#attempt(ex, a));
  }

  /** An upgrade's turn: routed like a request, then a tunnel. */
  tunnel(ex: Exchange, conn: ClientConnection): void {
    if (this.#answerHere(ex)) return;
    ex.entry = this.#ctx.router.lookup(ex.lane!.flowService, ex.key);
    this.#run(ex, ex.entry, (a) => this.tunnels.attempt(ex, conn, a));
  }

  #run(ex: Exchange, entry: FlowEntry, attempt: (a: Attempt) => Result | Promise<Result>): void {
    this.#ctx.forwarder.run(entry, ex.fromPeer, attempt, 'peer-unavailable').then(
      (r) => {
        if (!r.ok) ex.fail(r.failure);
      },
      (err: unknown) => {
        this.#ctx.logger.error({ err, service: this.name }, 'http forwarding loop failed');
        ex.fail('backend-failed');
      },
    );
  }

  #attempt(ex: Exchange, a: Attempt): Result | Promise<Result> {
    if (ex.done) return stop('peer-unavailable');
    if (!ex.fromPeer) this.#metrics.forward(a.kind);
    ex.failovers = a.index;
    if (a.hop.kind === 'local') {
      ex.servedBy = 'local';
      return this.#serveLocal(ex, a.entry);
    }
    ex.servedBy = a.node === a.entry.primary ? 'primary' : 'backup';
    if (!ex.waitsWholeBody) return this.#forward(ex, a);
    // A small body is read whole first, so that a failed forward can send it again.
    return new Promise<Result>((resolve) => ex.whenBodyHeld(() => resolve(ex.done ? stop('peer-unavailable') : this.#forward(ex, a))));
  }

  #forward(ex: Exchange, a: Attempt): Promise<Result> {
    return new Promise<ForwardResult>((resolve) => this.#forwards.add(new PeerForward(this, ex, a, resolve)));
  }

  done(f: PeerForward): void {
    this.#forwards.delete(f);
  }

  failover(): void {
    this.#metrics.failover();
  }

  /** Serves here: the flow's backend (recorded, or chosen and replicated), over a pooled connection. */
  #serveLocal(ex: Exchange, entry: FlowEntry): Result {
    const flow = ex.lane?.flowService ?? this.name;
    const pool = this.#ctx.pool(flow);
    if (pool === undefined) return stop('no-backend');
    let b0 = this.#bound.get(flow);
    if (b0 === undefined || b0.pool !== pool) this.#bound.set(flow, (b0 = { pool, usable: (a) => pool.usable(a), choose: (k) => pool.choose(k) }));
    const r = this.#ctx.router.assign(entry, b0.usable, b0.choose);
    ex.entry = r.entry;
    if (r.backend === null) return stop('no-backend');
    const b = pool.acquire(r.backend);
    if (b === undefined) return stop('no-backend');
    ex.backend = b;
    ex.backendPool = pool;
    this.#backends.dispatch(ex, b.address, b.host, b.port, pool);
    return SERVED;
  }

  // ---- owner side (owner.ts) ---------------------------------------------------------------

  serves(flowService: string): boolean {
    return this.#prep.routing.byFlowService(flowService) !== undefined;
  }

  /** A head a peer forwarded (prepare.ts). */
  prepareForwarded(ex: Exchange, p: HttpParser, h: PeerHead, peer: string): HttpErrorKind | null {
    return this.#prep.forwarded(ex, p, h, peer);
  }

  tunnelForwarded(ex: Exchange, stream: MuxStream): MuxHandler {
    ex.entry = this.#ctx.router.lookup(ex.lane?.flowService ?? this.name, ex.key);
    return this.tunnels.fromPeer(ex, stream);
  }

  // ---- outcomes ----------------------------------------------------------------------------

  started(): void {
    this.#inflight++;
  }

  /** Never expected: logged at error, counted, and only the connection it happened on is lost. */
  bug(err: unknown): void {
    this.#metrics.error('internal');
    this.#ctx.logger.error({ err, service: this.name }, 'http: internal error on a connection');
  }

  answeredError(kind: HttpErrorKind): void {
    this.#metrics.error(kind);
  }

  finished(ex: Exchange): void {
    this.#inflight--;
    if (ex.backend !== undefined) {
      ex.backendPool?.release(ex.backend);
      this.#ctx.router.active(ex.entry);
    }
    if (ex.fromPeer) this.#metrics.peerRequest(ex.status);
    else this.#metrics.request(ex.status, ex.servedBy, (performance.now() - ex.startedAt) / 1000);
    if (this.#access !== null) this.#access.info(accessRecord(ex));
  }

  /** One timer per service checks every limit (node:http's connectionsCheckingInterval does the same). */
  #startSweep(): void {
    if (this.#sweep) clearInterval(this.#sweep);
    const t = this.#cfg.timeouts;
    const every = Math.max(25, Math.min(1000, Math.floor(Math.min(t.headerMs, t.requestMs, t.idleMs, t.connectMs) / 4)));
    this.#sweep = setInterval(this.#onSweep, every);
    this.#sweep.unref();
  }

  readonly #onSweep = (): void => {
    const now = performance.now();
    const ct = this.#clientTimeouts;
    for (const c of this.#conns) c.sweep(now, ct);
    this.#h2?.sweep(now, ct);
    this.#backends.sweep(now, this.#backendTimeouts);
    const t = this.#cfg.timeouts;
    for (const f of this.#forwards) f.sweep(now, t.requestMs + PEER_TIMEOUT_MARGIN_MS, t.idleMs + PEER_TIMEOUT_MARGIN_MS);
    this.tunnels.sweep(now, t);
  };
}

interface Bound {
  readonly pool: UpstreamPool;
  readonly usable: (address: string) => boolean;
  readonly choose: (key: string) => string | null;
}

function clientTimeouts(cfg: ServiceConfig): ClientTimeouts {
  const t = cfg.timeouts;
  // Slowloris: the whole head within headerMs; the whole request within requestMs.
  return { headerMs: Math.min(t.headerMs, t.requestMs), requestMs: t.requestMs, idleMs: t.idleMs };
}

/** One access-log record (no flow key: it may be a session secret). */
function accessRecord(ex: Exchange): Record<string, unknown> {
  return {
    client: ex.clientIp,
    method: ex.method,
    path: ex.url,
    status: ex.status,
    ms: Math.round((performance.now() - ex.startedAt) * 10) / 10,
    hop: ex.fromPeer ? 'from-peer' : ex.servedBy,
    backend: ex.backend?.address,
    retried: ex.failovers,
    aborted: ex.gone || undefined,
  };
}
