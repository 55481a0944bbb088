/**
 * One `protocol: tcp` service on this node (docs/tcp.md): a client-facing listener that routes every
 * connection by the routing rule (docs/design.md) — serve it here when this node is the acting owner,
 * else forward it to the primary over the data plane, the backup when the primary fails at connect
 * time, and re-own the flow when both are gone — and the owner side of connections forwarded in.
 *
 * A connection is a flow only for `flowKey: connection` (the default); with `client-ip` all
 * connections of a client share a flow, so they share its owners and its backend, and the flow
 * outlives them until its idle timeout. With `sni` (TLS passthrough) the key is the server name of
 * the ClientHello the connection starts with (read by peeking, put back untouched), else the
 * client's address; such flows live like client-ip ones.
 *
 * The hop loop (try the owners in order, fail over, re-own once, cut an attempt to a peer declared
 * dead) is the node's one Forwarder (hops.ts); this file supplies the attempt: a backend connect
 * for the local hop, a forward with its status byte for a peer hop (forward.ts).
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Counter, Gauge } from 'prom-client';
import { TandemError, ErrorCodes } from '../../errors.js';
import type { FlowEntry } from '../../cluster/flow-entry.js';
import type { ServiceConfig } from '../../config/schema.js';
import { normalizeAddress, parseFlowKeySpec, tcpFlowKey, type FlowKeySpec } from '../../flowkey/index.js';
import { SniReader, sniFlowKey } from '../../flowkey/sni.js';
import { peekFirstBytes } from '../../tls/peek.js';
import type { BackendState } from '../../upstream/pool.js';
import type { ProxyContext, ServiceProxy } from '../context.js';
import { listenAddresses, listenStream } from '../listen-addresses.js';
import { SERVED, stop, type Attempt, type AttemptResult, type HopKind } from '../hops.js';
import { connectLocal, type LocalFailure } from './backend.js';
import type { BufferPool } from './buffers.js';
import { ForwardStatus, forwardToPeer, type ForwardStatusCode, type TcpFailure } from './forward.js';
import type { TcpMetrics } from './metrics.js';
import type { PeerPool } from './peer-pool.js';
import { pipeBoth, resetStream, type PipeHandle } from './pipe.js';
import { encodeProxyHeader, type ProxyEndpoint } from './proxy-protocol.js';
import { deriveForwardKey, encodeForwardHeader, type ForwardHeader } from './stream-header.js';

/** `aborted`: the client went away while its connection was being routed (not a failure label). */
type Failure = TcpFailure | 'flow-key' | 'aborted';

/** What the composition root hands every TCP service besides the context. */
export interface TcpServiceDeps {
  /** The node's pre-opened streams to its peers (one pool per node). */
  readonly peers: PeerPool;
  /** The node's read buffers for the byte pipes; each pipe makes its own when absent. */
  readonly buffers?: BufferPool;
  /** The node's TCP metric set (tcpMetrics(), made once per node). */
  readonly metrics: TcpMetrics;
}

interface Origin {
  readonly client: ProxyEndpoint;
  /** Where the client connected: the ingress node's service address. */
  readonly local: ProxyEndpoint;
}

/** What this node holds for a flow it serves (it is the acting owner). */
interface Served {
  entry: FlowEntry;
  readonly state: BackendState | undefined;
}

interface Conn {
  /** The client socket (ingress) or the forwarded stream (owner); destroyed by stop(). */
  readonly front: Duplex;
  /** Where the client came from and went to; made only when a header needs it (getsockname is a syscall). */
  origin: Origin | null;
  upstream: Duplex | null;
  pipe: PipeHandle | null;
  served: Served | null;
}

const noop = () => {};
const STATUS_BYTES = new Map<number, Buffer>(Object.values(ForwardStatus).map((c) => [c, Buffer.from([c])]));
const LOCAL_STATUS: Record<LocalFailure, ForwardStatusCode> = {
  'no-backend': ForwardStatus.NO_BACKEND,
  'backend-failed': ForwardStatus.BACKEND_FAILED,
  'backend-timeout': ForwardStatus.BACKEND_TIMEOUT,
};
/** A local hop's backend failure ends the loop: the next owner would use the same backend. */
const LOCAL_FAILED: Record<LocalFailure, AttemptResult<Failure>> = {
  'no-backend': Object.freeze(stop('no-backend')),
  'backend-failed': Object.freeze(stop('backend-failed')),
  'backend-timeout': Object.freeze(stop('backend-timeout')),
};
const CLIENT_GONE: AttemptResult<Failure> = Object.freeze(stop('aborted'));

/** Metric children of one service, looked up once (label hashing stays off the per-connection path). */
class ServiceCounters {
  readonly proxied: ReturnType<Counter<'service' | 'outcome'>['labels']>;
  readonly failed: ReturnType<Counter<'service' | 'outcome'>['labels']>;
  readonly refused: ReturnType<Counter<'service' | 'outcome'>['labels']>;
  readonly active: ReturnType<Gauge<'service'>['labels']>;
  readonly bytesIn: ReturnType<Counter<'service' | 'direction'>['labels']>;
  readonly bytesOut: ReturnType<Counter<'service' | 'direction'>['labels']>;
  readonly #m: TcpMetrics;
  readonly #service: string;
  readonly #kinds = new Map<string, ReturnType<Counter<'service' | 'kind'>['labels']>>();
  readonly #reasons = new Map<string, ReturnType<Counter<'service' | 'reason'>['labels']>>();

  constructor(m: TcpMetrics, service: string) {
    this.#m = m;
    this.#service = service;
    this.proxied = m.connections.labels({ service, outcome: 'proxied' });
    this.failed = m.connections.labels({ service, outcome: 'failed' });
    this.refused = m.connections.labels({ service, outcome: 'rejected' });
    this.active = m.active.labels({ service });
    this.bytesIn = m.bytes.labels({ service, direction: 'in' });
    this.bytesOut = m.bytes.labels({ service, direction: 'out' });
  }

  forward(kind: HopKind | 'from-peer'): void {
    let c = this.#kinds.get(kind);
    if (c === undefined) this.#kinds.set(kind, (c = this.#m.forwards.labels({ service: this.#service, kind })));
    c.inc();
  }

  rejected(reason: Exclude<Failure, 'aborted'>): void {
    let c = this.#reasons.get(reason);
    if (c === undefined) this.#reasons.set(reason, (c = this.#m.rejected.labels({ service: this.#service, reason })));
    c.inc();
  }
}

/** How long a `flowKey: sni` connection may take to send its ClientHello before it is keyed by client-ip. */
const SNI_WAIT_MS = 10_000;

function specOf(cfg: ServiceConfig): FlowKeySpec {
  const spec = parseFlowKeySpec(cfg.flowKey || 'connection');
  if (spec.kind !== 'connection' && spec.kind !== 'client-ip' && spec.kind !== 'sni') {
    throw new TandemError(ErrorCodes.CONFIG_INVALID, `service ${cfg.name}: flowKey ${cfg.flowKey} does not apply to tcp`);
  }
  return spec;
}

export class TcpServiceProxy implements ServiceProxy {
  readonly name: string;
  readonly #ctx: ProxyContext;
  readonly #c: ServiceCounters;
  readonly #macKey: Buffer;
  readonly #peers: PeerPool;
  readonly #buffers: BufferPool | undefined;
  #cfg: ServiceConfig;
  #spec: FlowKeySpec;
  #server: Server | null = null;
  #accepting = false;
  #refresh: NodeJS.Timeout | null = null;
  readonly #conns = new Set<Conn>();
  #idleWaiters: Array<() => void> = [];

  constructor(ctx: ProxyContext, cfg: ServiceConfig, deps: TcpServiceDeps) {
    this.name = cfg.name;
    this.#ctx = ctx;
    this.#cfg = cfg;
    this.#spec = specOf(cfg);
    this.#c = new ServiceCounters(deps.metrics, cfg.name);
    this.#macKey = deriveForwardKey(ctx.secret);
    this.#peers = deps.peers;
    this.#buffers = deps.buffers;
  }

  /** Open connections on this node: client-facing plus forwarded in. */
  get openConnections(): number {
    return this.#conns.size;
  }

  /** The bound address (port 0 in tests resolves here). */
  get address(): ProxyEndpoint | null {
    const a = this.#server?.address();
    return a && typeof a === 'object' ? { address: a.address, port: a.port } : null;
  }

  async start(): Promise<void> {
    if (this.#server) return;
    // pauseOnConnect: nothing is read from the client before a hop has accepted the connection,
    // so a failed hop consumed nothing and early bytes wait in the kernel (see forward.ts).
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (s) => this.#onConnection(s));
    this.#server = server;
    server.on('error', (err) => this.#ctx.logger.error({ service: this.name, err }, 'tcp listener error'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      listenStream(server, listenAddresses(this.#ctx.self.host, this.#cfg), this.#cfg.port, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((err: unknown) => {
      this.#server = null;
      throw err;
    });
    this.#accepting = true;
    const period = Math.max(1000, Math.min(this.#cfg.flowIdleTimeoutMs / 4, 30_000));
    this.#refresh = setInterval(() => this.#refreshServed(), period);
    this.#refresh.unref();
  }

  update(cfg: ServiceConfig): void {
    this.#spec = specOf(cfg);
    this.#cfg = cfg;
  }

  async drain(timeoutMs: number): Promise<void> {
    this.#accepting = false;
    const closed = this.#closeServer();
    if (this.#conns.size > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        this.#idleWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    await this.stop();
    await closed;
  }

  async stop(): Promise<void> {
    this.#accepting = false;
    const closed = this.#closeServer();
    for (const c of [...this.#conns]) {
      if (c.pipe) c.pipe.close(true);
      else {
        resetStream(c.front);
        c.upstream?.destroy();
      }
    }
    if (this.#refresh) clearInterval(this.#refresh);
    this.#refresh = null;
    await closed;
  }

  // ---------------------------------------------------------------- ingress

  #onConnection(client: Socket): void {
    client.on('error', noop);
    const cfg = this.#cfg;
    const address = client.remoteAddress;
    const port = client.remotePort;
    if (!this.#accepting || address === undefined || port === undefined) {
      client.destroy();
      return;
    }
    if (this.#conns.size >= cfg.maxConnections) {
      this.#reject(client, 'limit');
      return;
    }
    if (this.#spec.kind === 'sni') {
      // The socket is paused (pauseOnConnect): read the ClientHello, bounded in bytes (SniReader)
      // and time; peekFirstBytes puts every byte back for the backend.
      const reader = new SniReader();
      client.resume();
      peekFirstBytes(client, (chunk) => reader.push(chunk).kind !== 'need-more', () => reader.bytes, Math.min(SNI_WAIT_MS, cfg.timeouts.idleMs), (outcome) => {
        if (outcome === 'closed') return;
        this.#admit(client, sniFlowKey(outcome === 'complete' ? reader.result : null, address));
      });
      return;
    }
    let key: string;
    try {
      key = tcpFlowKey(this.#spec, { address, port });
    } catch {
      this.#reject(client, 'flow-key');
      return;
    }
    this.#admit(client, key);
  }

  #admit(client: Socket, key: string): void {
    if (!this.#accepting) {
      client.destroy();
      return;
    }
    const conn: Conn = { front: client, origin: null, upstream: null, pipe: null, served: null };
    this.#add(conn);
    this.#route(conn, key).catch((err: unknown) => {
      this.#ctx.logger.error({ service: this.name, err }, 'tcp routing failed');
      this.#fail(conn, key, 'unavailable');
    });
  }

  /** The routing rule through the node's one hop loop; this service supplies the attempt only. */
  async #route(conn: Conn, key: string): Promise<void> {
    const entry = this.#ctx.router.lookup(this.name, key);
    const r = await this.#ctx.forwarder.run<Failure>(entry, false, (a) => this.#attempt(conn, a, key), 'unavailable');
    if (!r.ok) return this.#fail(conn, key, r.failure);
    this.#join(conn, r.kind, key);
  }

  /** The client's addresses, for a forward header or a PROXY header. */
  #origin(conn: Conn): Origin {
    if (conn.origin !== null) return conn.origin;
    const s = conn.front as Socket;
    return (conn.origin = {
      client: { address: normalizeAddress(s.remoteAddress ?? ''), port: s.remotePort ?? 0 },
      local: { address: normalizeAddress(s.localAddress ?? this.#ctx.self.host), port: s.localPort ?? this.#cfg.port },
    });
  }

  async #attempt(conn: Conn, a: Attempt, key: string): Promise<AttemptResult<Failure>> {
    if (conn.front.destroyed) return CLIENT_GONE;
    if (a.hop.kind === 'local') return this.#serveLocal(conn, a.entry);
    const origin = this.#origin(conn);
    const r = await forwardToPeer(this.#peers, a, () => this.#header(key, origin), this.#statusTimeout());
    if (!r.ok) return r;
    conn.upstream = r.stream;
    return SERVED;
  }

  /** The local hop: this node is the acting owner and connects to the flow's backend. */
  async #serveLocal(conn: Conn, entry: FlowEntry): Promise<AttemptResult<Failure>> {
    const r = await connectLocal(this.#ctx, this.#cfg, entry);
    if (!r.ok) return LOCAL_FAILED[r.reason];
    conn.served = { entry: r.entry, state: r.state };
    conn.upstream = r.socket;
    return SERVED;
  }

  #header(key: string, origin: Origin): Buffer {
    return encodeForwardHeader(this.#macKey, {
      service: this.name,
      key,
      clientAddress: origin.client.address,
      clientPort: origin.client.port,
      localAddress: origin.local.address,
      localPort: origin.local.port,
      ingress: this.#ctx.router.selfId,
    });
  }

  /** The owner answers after its backend connect, which may try several backends. */
  #statusTimeout(): number {
    return this.#cfg.timeouts.connectMs * 3 + 1000;
  }

  // ---------------------------------------------------------------- owner side of a forward

  /** A verified forwarded connection (from TcpDataPlane): served here, never forwarded again. */
  async serveForwarded(stream: Duplex, h: ForwardHeader): Promise<void> {
    stream.on('error', noop);
    const reply = (code: ForwardStatusCode) => stream.end(STATUS_BYTES.get(code));
    if (!this.#accepting) {
      this.#c.rejected('draining');
      return void reply(ForwardStatus.DRAINING);
    }
    if (this.#conns.size >= this.#cfg.maxConnections) {
      this.#c.rejected('limit');
      return void reply(ForwardStatus.LIMIT);
    }
    const conn: Conn = { front: stream, origin: null, upstream: null, pipe: null, served: null };
    this.#add(conn);
    // A communication from a peer is served here: the loop's only hop is the local one.
    let failure: Failure | null = null;
    try {
      const r = await this.#ctx.forwarder.run<Failure>(this.#ctx.router.lookup(this.name, h.key), true, (a) => this.#serveLocal(conn, a.entry), 'unavailable');
      if (!r.ok) failure = r.failure;
    } catch (err) {
      this.#ctx.logger.error({ service: this.name, err }, 'tcp forwarded connection failed');
      failure = 'backend-failed';
    }
    if (failure !== null || conn.upstream === null) {
      const f = failure === 'no-backend' || failure === 'backend-timeout' ? failure : 'backend-failed';
      this.#c.rejected(f);
      reply(LOCAL_STATUS[f]);
      // This node may have created the entry or given it a backend; the ingress's tombstone is
      // stamped by its own clock and need not order after that write (the reply carries no
      // version). The owner ends the flow itself, as on a normal close.
      if (this.#spec.kind === 'connection') this.#ctx.router.end(this.name, h.key);
      this.#remove(conn);
      return;
    }
    const upstream = conn.upstream;
    if (stream.destroyed) {
      upstream.destroy();
      this.#closed(conn, h.key, false);
      return;
    }
    this.#c.forward('from-peer');
    this.#proxyHeader(upstream, { client: { address: h.clientAddress, port: h.clientPort }, local: { address: h.localAddress, port: h.localPort } });
    stream.write(STATUS_BYTES.get(ForwardStatus.OK));
    this.#pipe(conn, stream, upstream, h.key, false);
  }

  // ---------------------------------------------------------------- shared

  #join(conn: Conn, kind: HopKind, key: string): void {
    const client = conn.front;
    const upstream = conn.upstream!;
    if (client.destroyed) {
      upstream.destroy();
      this.#closed(conn, key, false);
      return;
    }
    this.#c.forward(kind);
    this.#c.proxied.inc();
    if (conn.served && this.#cfg.proxyProtocol) this.#proxyHeader(upstream, this.#origin(conn));
    this.#pipe(conn, client, upstream, key, true);
  }

  /** PROXY header before any payload (haproxy doc/proxy-protocol.txt section 2: sent "at once"). */
  #proxyHeader(backend: Duplex, origin: Origin): void {
    const v = this.#cfg.proxyProtocol;
    if (v) backend.write(encodeProxyHeader(v, origin.client, origin.local));
  }

  #pipe(conn: Conn, front: Duplex, upstream: Duplex, key: string, ingress: boolean): void {
    conn.upstream = upstream;
    if (conn.served) this.#ctx.router.active(conn.served.entry);
    conn.pipe = pipeBoth(front, upstream, {
      idleMs: this.#cfg.timeouts.idleMs,
      buffers: this.#buffers,
      onClose: () => this.#closed(conn, key, ingress),
    });
  }

  /** Lifecycle at close (docs/tcp.md "Flow keys"): the owner ends a connection flow, refreshes a client-ip one. */
  #closed(conn: Conn, key: string, ingress: boolean): void {
    const p = conn.pipe;
    if (ingress && p) {
      this.#c.bytesIn.inc(p.bytesAtoB);
      this.#c.bytesOut.inc(p.bytesBtoA);
    }
    const served = conn.served;
    if (served) {
      this.#ctx.pool(this.name)?.release(served.state);
      if (this.#spec.kind === 'connection') this.#ctx.router.end(this.name, key);
      else this.#ctx.router.active(served.entry);
    }
    this.#remove(conn);
  }

  #fail(conn: Conn, key: string, reason: Failure): void {
    if (reason !== 'aborted') {
      this.#c.rejected(reason);
      this.#c.failed.inc();
    }
    resetStream(conn.front);
    // A connection flow that never carried a byte is over; nobody else will end it.
    if (this.#spec.kind === 'connection') this.#ctx.router.end(this.name, key);
    this.#remove(conn);
  }

  #reject(client: Socket, reason: 'limit' | 'flow-key'): void {
    this.#c.rejected(reason);
    this.#c.refused.inc();
    resetStream(client);
  }

  #add(conn: Conn): void {
    this.#conns.add(conn);
    this.#c.active.inc();
  }

  #remove(conn: Conn): void {
    if (!this.#conns.delete(conn)) return;
    this.#c.active.dec();
    if (this.#conns.size === 0 && this.#idleWaiters.length > 0) {
      const w = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const f of w) f();
    }
  }

  /** Keeps the flows served here alive in every node's table while their connections are open. */
  #refreshServed(): void {
    for (const c of this.#conns) if (c.served) this.#ctx.router.active(c.served.entry);
  }

  #closeServer(): Promise<void> {
    const server = this.#server;
    if (!server) return Promise.resolve();
    this.#server = null;
    return new Promise((resolve) => server.close(() => resolve()));
  }
}
