/**
 * The HTTP service of one node (DESIGN.md sections 1 and 4): a client-facing HTTP/1.1 listener
 * that routes every request by the flow rule and moves it, streaming, to its backend — itself when
 * this node serves the flow, or over a pooled, authenticated peer connection to the owner that does.
 *
 * Per request: key → router.lookup → router.hops → serve locally or forward; a forward that fails
 * before any response byte goes to the next hop (retry rules below); no hop left → router.reown
 * once. The serving node gets the backend from router.assign (recorded, replicated) and relays.
 *
 * Retry rules (RFC 9110 section 9.2.2, DESIGN.md section 4): a failed forward is retried on the
 * next owner when nothing was sent, or when the method is idempotent and the body can be sent
 * again. For that a body of known length up to 64 KB is read first before a peer forward; longer
 * and chunked bodies stream and are retried only if the failure came before their first byte.
 * A backend failure is never retried on another backend: affinity first, the client gets 502/504.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Readable } from 'node:stream';
import type { ProxyContext, ServiceProxy } from '../context.js';
import type { ServiceConfig } from '../../config/schema.js';
import type { UpstreamPool } from '../../upstream/pool.js';
import { LOCAL } from '../../cluster/router.js';
import { httpFlowKey, parseFlowKeySpec, normalizeAddress, formatHostPort, connectionKey, type FlowKeySpec } from '../../flowkey/index.js';
import { isTandemError, ErrorCodes } from '../../errors.js';
import { scanRequestHead, addProxyHeaders, viaEntry, encodeFlowKey, decodeFlowKey, parseClient, isIdempotent, H_SERVICE, H_FLOW_KEY, H_CLIENT, type RequestHead } from './headers.js';
import { sendError, endWithError, errorStatus, upstreamErrorKind, type HttpErrorKind } from './errors.js';
import { createClientServer, applyLimits, drainServer, answerClientError } from './listener.js';
import { listenAddresses, listenStream } from '../listen-addresses.js';
import { Exchange, type ExchangeOwner } from './exchange.js';
import { readWholeBody, streamedOrNone } from './body.js';
import { BackendClients } from './backend-pool.js';
import { ServiceMetrics } from './metrics.js';
import { acquirePeerPools, releasePeerPools, type PeerPools } from './peer-pool.js';
import { UpgradeRouter } from './upgrade.js';

/** Bodies up to this size are read before a peer forward so that a failed forward can be replayed. */
export const REPLAY_BODY_MAX = 64 * 1024;
/** Extra wait for a peer's answer over requestMs, so that the serving node's own 504 arrives first. */
const PEER_TIMEOUT_MARGIN_MS = 2000;

export class HttpServiceProxy implements ServiceProxy, ExchangeOwner {
  readonly name: string;
  readonly #ctx: ProxyContext;
  #cfg: ServiceConfig;
  #spec: FlowKeySpec;
  #flowHeader: string | null = null;
  #flowCookie = false;
  readonly #metrics: ServiceMetrics;
  readonly #via: string;
  readonly #selfId: string;
  #server: Server | null = null;
  #peers: PeerPools | null = null;
  readonly #backends: BackendClients;
  #access: Logger | null = null;
  #draining = false;
  /** Exchanges not yet finished, client-facing and forwarded in by peers (drain waits for them). */
  #inflight = 0;
  /** Exchanges whose current attempt is a forward to a peer. */
  readonly #forwarding = new Set<Exchange>();
  /**
   * A peer declared dead (silent for failureTimeoutMs: cut off, frozen) will not answer what was
   * forwarded to it. Abort those attempts now rather than after requestMs: with no response byte
   * yet, they go on to the next owner under the usual retry rule (idempotent or not yet sent).
   */
  readonly #onPeerState = (id: string, state: string): void => {
    if (state !== 'dead') return;
    for (const ex of [...this.#forwarding]) if (ex.peer === id) ex.abortAttempt(new Error(`peer ${id} declared dead`));
  };
  readonly #upgrades: UpgradeRouter;
  /** Reused for httpFlowKey, which is synchronous. */
  readonly #src = { remoteAddress: '', remotePort: 0, headers: {} as Record<string, string | string[] | undefined> };
  /** Bound once per UpstreamPool instance (a reload makes a new one), not once per request. */
  #boundPool: UpstreamPool | null = null;
  #usable: (address: string) => boolean = () => false;
  #choose: (key: string) => string | null = () => null;

  constructor(ctx: ProxyContext, cfg: ServiceConfig) {
    this.name = cfg.name;
    this.#ctx = ctx;
    this.#cfg = cfg;
    this.#selfId = ctx.self.id;
    this.#via = viaEntry('1.1', ctx.self.id);
    this.#spec = this.#applySpec(cfg);
    this.#metrics = new ServiceMetrics(ctx.registry, cfg.name);
    this.#access = cfg.accessLog ? ctx.logger.child({ access: cfg.name }) : null;
    this.#upgrades = new UpgradeRouter(ctx, this);
    this.#backends = new BackendClients(cfg.timeouts.connectMs);
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

  get peers(): PeerPools {
    return (this.#peers ??= acquirePeerPools(this.#ctx.dataPlane));
  }

  async start(): Promise<void> {
    const server = createClientServer(this.#cfg);
    server.on('request', this.#onRequest);
    // With a listener node:http leaves 100-continue to us: sent when the body is wanted (exchange.ts).
    server.on('checkContinue', this.#onRequest);
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrades.fromClient(req, socket, head));
    server.on('connect', (_req: IncomingMessage, socket: Duplex) => endWithError(socket, 'method-not-allowed'));
    server.on('clientError', this.#onClientError);
    server.on('connection', this.#onConnection);
    this.#ctx.dataPlane.on?.('peer-state', this.#onPeerState);
    this.#server = server;
    // One dial timeout per node (the pools are shared): the shortest connectMs of its services.
    const peers = this.peers;
    peers.dialTimeoutMs = Math.min(peers.dialTimeoutMs, this.#cfg.timeouts.connectMs);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      listenStream(server, listenAddresses(this.#ctx.self.host, this.#cfg), this.#cfg.port, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  update(cfg: ServiceConfig): void {
    this.#cfg = cfg;
    this.#spec = this.#applySpec(cfg);
    this.#access = cfg.accessLog ? this.#ctx.logger.child({ access: cfg.name }) : null;
    if (this.#server) applyLimits(this.#server, cfg);
    this.#backends.update(cfg.backends.map((b) => b.address), cfg.timeouts.connectMs);
  }

  async drain(timeoutMs: number): Promise<void> {
    this.#draining = true;
    const server = this.#server;
    if (!server) return;
    const deadline = Date.now() + timeoutMs;
    await drainServer(server, timeoutMs);
    // Requests forwarded in by peers use this service's backend pools too: they finish before
    // the pools close (peers stop sending once the hand-over has reached them).
    while (this.#inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await this.stop();
  }

  async stop(): Promise<void> {
    this.#draining = true;
    this.#ctx.dataPlane.off?.('peer-state', this.#onPeerState);
    const server = this.#server;
    this.#server = null;
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    }
    this.#upgrades.closeAll();
    await this.#backends.close();
    if (this.#peers) {
      const peers = this.#peers;
      this.#peers = null;
      await releasePeerPools(this.#ctx.dataPlane, peers);
    }
  }

  // ---- client side -------------------------------------------------------------------------

  #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const ex = new Exchange(this, req, res, false, performance.now());
    this.#inflight++;
    const socket = req.socket;
    const ip = socket.remoteAddress;
    if (ip === undefined) {
      // The client left before we looked.
      res.destroy();
      ex.clientGone = true;
      ex.end();
      return;
    }
    ex.clientIp = normalizeAddress(ip);
    ex.clientPort = socket.remotePort ?? 0;
    const head = (ex.head = scanRequestHead(req.rawHeaders, this.#flowHeader, this.#flowCookie, false));
    ex.via = this.#via;
    // RFC 9110 section 15.6.6: this is an HTTP/1.x listener; HTTP/2.0 or 0.9 heads are refused.
    if (req.httpVersionMajor !== 1) return this.fail(ex, 'version-not-supported');
    // RFC 9112 section 6.1: Transfer-Encoding in an HTTP/1.0 request is faulty framing.
    if (req.httpVersionMinor === 0 && req.headers['transfer-encoding'] !== undefined) return this.fail(ex, 'bad-request');
    // RFC 9112 section 3.2: exactly one Host in HTTP/1.1, at most one before.
    if (head.hostCount > 1 || (head.hostCount === 0 && req.httpVersion === '1.1')) return this.fail(ex, 'bad-request');
    const key = this.#key(ex.clientIp, ex.clientPort, head);
    if (key === null) return this.fail(ex, 'bad-request');
    ex.key = key;
    const router = this.#ctx.router;
    ex.entry = router.lookup(this.name, key);
    addProxyHeaders(head, viaEntry(req.httpVersion, this.#selfId), ex.clientIp, this.#selfId);
    ex.hops = router.hops(ex.entry, false);
    this.#route(ex);
  };

  /** A request forwarded by a peer (from HttpDataPlane): served here, never forwarded again. */
  serveForwarded(req: IncomingMessage, res: ServerResponse): void {
    const ex = new Exchange(this, req, res, true, performance.now());
    this.#inflight++;
    const head = (ex.head = scanRequestHead(req.rawHeaders, null, false, true));
    ex.via = this.#via;
    const key = head.flowKey === undefined ? undefined : decodeFlowKey(head.flowKey);
    const client = head.client === undefined ? undefined : parseClient(head.client);
    if (key === undefined || client === undefined) return this.fail(ex, 'bad-request');
    ex.key = key;
    ex.clientIp = client.ip;
    ex.clientPort = client.port;
    ex.entry = this.#ctx.router.lookup(this.name, key);
    addProxyHeaders(head, viaEntry(req.httpVersion, this.#selfId), null, this.#selfId);
    ex.hops = [LOCAL];
    this.#route(ex);
  }

  /** An upgrade request forwarded by a peer: tunnelled to the flow's backend from here. */
  serveForwardedUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#upgrades.fromPeer(req, socket, head);
  }

  /** Flow key of a client request, or null for a key that fails the hygiene rules (→ 400). */
  #key(ip: string, port: number, head: RequestHead): string | null {
    const src = this.#src;
    src.remoteAddress = ip;
    src.remotePort = port;
    if (this.#flowHeader !== null) src.headers[this.#flowHeader] = head.flowValue;
    else if (this.#flowCookie) src.headers.cookie = head.cookie;
    try {
      return httpFlowKey(this.#spec, src);
    } catch (err) {
      if (isTandemError(err, ErrorCodes.BAD_REQUEST)) return null;
      throw err;
    }
  }

  // ---- routing -----------------------------------------------------------------------------

  #route(ex: Exchange): void {
    for (;;) {
      while (ex.hopIdx < ex.hops.length) {
        const hop = ex.hops[ex.hopIdx++];
        if (hop.kind === 'local') return this.#serveLocal(ex);
        if (ex.tried !== null && ex.tried.includes(hop.id)) continue;
        return this.#forward(ex, hop.id);
      }
      // Step 6: neither owner could take it. Re-own once, keeping the backend.
      if (ex.reowned || ex.fromPeer) break;
      ex.reowned = true;
      ex.entry = this.#ctx.router.reown(ex.entry);
      this.#metrics.forward('reowned');
      ex.hops = this.#ctx.router.hops(ex.entry, false);
      ex.hopIdx = 0;
    }
    this.fail(ex, 'peer-unavailable');
  }

  #serveLocal(ex: Exchange): void {
    const pool = this.#ctx.pool(this.name);
    if (pool === undefined) return this.fail(ex, 'no-backend');
    if (pool !== this.#boundPool) {
      this.#boundPool = pool;
      this.#usable = (a) => pool.usable(a);
      this.#choose = (k) => pool.choose(k);
    }
    const { entry, backend } = this.#ctx.router.assign(ex.entry, this.#usable, this.#choose);
    ex.entry = entry;
    if (backend === null) return this.fail(ex, 'no-backend');
    const client = this.#backends.get(backend, pool);
    if (client === null) return this.fail(ex, 'no-backend');
    ex.servedBy = 'local';
    if (!ex.fromPeer) this.#metrics.forward('local');
    ex.backendPool = pool;
    ex.backend = pool.acquire(backend);
    if (!ex.bodyDecided) ex.body = streamedOrNone(ex);
    ex.beginAttempt(null);
    const req = ex.req;
    const t = this.#cfg.timeouts;
    client.dispatch(
      {
        path: req.url ?? '/',
        method: req.method ?? 'GET',
        headers: ex.head.headers,
        body: ex.bodyValue as Readable | Buffer | null,
        headersTimeout: t.requestMs,
        bodyTimeout: t.idleMs,
      },
      ex,
    );
  }

  #forward(ex: Exchange, peerId: string): void {
    if (!ex.bodyDecided) {
      const len = ex.head.contentLength;
      if (!ex.head.chunked && len > 0 && len <= REPLAY_BODY_MAX) return readWholeBody(ex, len, this.#afterBody, peerId);
      ex.body = streamedOrNone(ex);
    }
    ex.servedBy = peerId === ex.entry.primary ? 'primary' : 'backup';
    this.#metrics.forward(ex.servedBy === 'primary' ? 'to_primary' : 'to_backup');
    let pool;
    try {
      pool = this.peers.get(peerId);
    } catch {
      return this.fail(ex, 'peer-unavailable');
    }
    ex.beginAttempt(peerId);
    this.#forwarding.add(ex);
    const req = ex.req;
    const t = this.#cfg.timeouts;
    const headers = ex.head.headers;
    const n = headers.length;
    headers.push(H_SERVICE, this.name, H_FLOW_KEY, encodeFlowKey(ex.key), H_CLIENT, formatHostPort(ex.clientIp, ex.clientPort));
    // undici copies the fields inside dispatch(); failures come back on a later tick (exchange.ts).
    pool.dispatch(
      {
        path: req.url ?? '/',
        method: req.method ?? 'GET',
        headers,
        body: ex.bodyValue as Readable | Buffer | null,
        headersTimeout: t.requestMs + PEER_TIMEOUT_MARGIN_MS,
        bodyTimeout: t.idleMs + PEER_TIMEOUT_MARGIN_MS,
      },
      ex,
    );
    headers.length = n;
  }

  /** The small body is in memory (or the client left meanwhile). */
  #afterBody = (ex: Exchange, peerId: string): void => {
    if (ex.done) return;
    if (ex.clientGone) {
      if (!ex.res.writableFinished) ex.res.destroy();
      return ex.end();
    }
    this.#forward(ex, peerId);
  };

  // ---- outcomes ----------------------------------------------------------------------------

  attemptFailed(ex: Exchange, err: Error): void {
    this.#forwarding.delete(ex);
    if (ex.done) return;
    // Not req.destroyed: a request whose body was read to its end is destroyed too (autoDestroy).
    if (ex.clientGone || ex.clientFailed || ex.res.destroyed || ex.req.socket.destroyed) {
      ex.clientGone = true;
      if (!ex.res.writableFinished) ex.res.destroy();
      return ex.end();
    }
    const peer = ex.peer;
    if (peer === null) {
      const kind = upstreamErrorKind(err);
      if (ex.backend !== undefined && kind !== 'bad-request') {
        if (ex.backendPool) ex.backendPool.reportFailure(ex.backend.address, kind === 'backend-timeout' ? 'timeout' : 'connect');
        else ex.backend.failures++;
      }
      return this.fail(ex, kind);
    }
    if (upstreamErrorKind(err) === 'bad-request') return this.fail(ex, 'bad-request');
    // A forward failed before any response byte (DESIGN.md section 1 step 5).
    this.#ctx.dataPlane.markSuspect(peer);
    this.#metrics.failover();
    (ex.tried ??= []).push(peer);
    const retry = ex.sent ? isIdempotent(ex.req.method ?? '') && ex.bodyReplayable : ex.bodyUntouched;
    if (retry) return this.#route(ex);
    const code = (err as { code?: unknown }).code;
    this.fail(ex, code === 'UND_ERR_HEADERS_TIMEOUT' ? 'backend-timeout' : 'peer-unavailable');
  }

  /** Answers with a tandem error and ends the exchange. */
  fail(ex: Exchange, kind: HttpErrorKind): void {
    ex.status = errorStatus(kind);
    this.#metrics.error(kind);
    if (!ex.clientGone) sendError(ex.res, kind, !ex.req.complete || this.#draining);
    ex.end();
  }

  finished(ex: Exchange): void {
    this.#inflight--;
    this.#forwarding.delete(ex);
    if (ex.backend !== undefined) {
      ex.backendPool?.release(ex.backend);
      this.#ctx.router.active(ex.entry);
    }
    if (ex.fromPeer) this.#metrics.peerRequest(ex.status);
    else this.#metrics.request(ex.status, ex.servedBy, (performance.now() - ex.startedAt) / 1000);
    if (this.#access !== null) this.#access.info(ex.accessRecord());
  }

  // ---- connection-level events -------------------------------------------------------------

  #onClientError = (err: NodeJS.ErrnoException, socket: Duplex): void => {
    const kind = answerClientError(err, socket);
    if (kind !== null) this.#metrics.error(kind);
  };

  /** `connection` flow keys end with the connection: replicate a tombstone (router.end). */
  #onConnection = (socket: Socket): void => {
    if (this.#spec.kind !== 'connection') return;
    const ip = socket.remoteAddress;
    if (ip === undefined) return;
    const key = connectionKey(ip, socket.remotePort ?? 0);
    socket.once('close', () => this.#ctx.router.end(this.name, key));
  };

  #applySpec(cfg: ServiceConfig): FlowKeySpec {
    const spec = parseFlowKeySpec(cfg.flowKey);
    this.#flowHeader = spec.kind === 'header' ? spec.name : null;
    this.#flowCookie = spec.kind === 'cookie';
    this.#src.headers = {};
    return spec;
  }

  /** For the upgrade router: the flow key of a client request head (null → 400). */
  keyFor(ip: string, port: number, head: RequestHead): string | null {
    return this.#key(ip, port, head);
  }

  scanClientHead(req: IncomingMessage): RequestHead {
    return scanRequestHead(req.rawHeaders, this.#flowHeader, this.#flowCookie, false);
  }
}

