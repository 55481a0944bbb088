/**
 * One `protocol: tcp` service on this node (issue 5): a client-facing listener that routes every
 * connection by the rule of DESIGN.md section 1 — serve it here when this node is the acting owner,
 * else forward it to the primary over the data plane, the backup when the primary fails at connect
 * time, and re-own the flow when both are gone — and the owner side of connections forwarded in.
 *
 * A connection is a flow only for `flowKey: connection` (the default); with `client-ip` all
 * connections of a client share a flow, so they share its owners and its backend, and the flow
 * outlives them until its idle timeout.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TandemError, ErrorCodes } from '../../errors.js';
import type { FlowEntry } from '../../cluster/flow-entry.js';
import type { ServiceConfig } from '../../config/schema.js';
import { normalizeAddress, parseFlowKeySpec, tcpFlowKey, type FlowKeySpec } from '../../flowkey/index.js';
import type { BackendState } from '../../upstream/pool.js';
import type { ProxyContext, ServiceProxy } from '../context.js';
import { listenAddresses, listenStream } from '../listen-addresses.js';
import { connectLocal, type LocalFailure, type LocalResult } from './backend.js';
import { ForwardStatus, forwardToPeer, type ForwardFailure, type ForwardStatusCode } from './forward.js';
import { tcpMetrics, type TcpMetrics } from './metrics.js';
import { acquirePeerPool, releasePeerPool, type PeerPool } from './peer-pool.js';
import { pipeBoth, resetStream, type PipeHandle } from './pipe.js';
import { encodeProxyHeader, type ProxyEndpoint } from './proxy-protocol.js';
import { deriveForwardKey, encodeForwardHeader, type ForwardHeader } from './stream-header.js';

type Failure = ForwardFailure | LocalFailure | 'flow_key';

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
  upstream: Duplex | null;
  pipe: PipeHandle | null;
  served: Served | null;
}

const noop = () => {};
const STATUS_BYTES = new Map<number, Buffer>(Object.values(ForwardStatus).map((c) => [c, Buffer.from([c])]));
const LOCAL_STATUS: Record<LocalFailure, ForwardStatusCode> = {
  no_backend: ForwardStatus.NO_BACKEND,
  backend_failed: ForwardStatus.BACKEND_FAILED,
  backend_timeout: ForwardStatus.BACKEND_TIMEOUT,
};

function specOf(cfg: ServiceConfig): FlowKeySpec {
  const spec = parseFlowKeySpec(cfg.flowKey || 'connection');
  if (spec.kind !== 'connection' && spec.kind !== 'client-ip') {
    throw new TandemError(ErrorCodes.CONFIG_INVALID, `service ${cfg.name}: flowKey ${cfg.flowKey} does not apply to tcp`);
  }
  return spec;
}

export class TcpServiceProxy implements ServiceProxy {
  readonly name: string;
  readonly #ctx: ProxyContext;
  readonly #m: TcpMetrics;
  readonly #macKey: Buffer;
  #cfg: ServiceConfig;
  #spec: FlowKeySpec;
  #server: Server | null = null;
  #pool: PeerPool | null = null;
  #accepting = false;
  #refresh: NodeJS.Timeout | null = null;
  readonly #conns = new Set<Conn>();
  #idleWaiters: Array<() => void> = [];

  constructor(ctx: ProxyContext, cfg: ServiceConfig) {
    this.name = cfg.name;
    this.#ctx = ctx;
    this.#cfg = cfg;
    this.#spec = specOf(cfg);
    this.#m = tcpMetrics(ctx.registry);
    this.#macKey = deriveForwardKey(ctx.secret);
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
    this.#pool = acquirePeerPool(this.#ctx);
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
      releasePeerPool(this.#ctx);
      this.#pool = null;
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
    if (this.#pool) releasePeerPool(this.#ctx);
    this.#pool = null;
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
    let key: string;
    try {
      key = tcpFlowKey(this.#spec, { address, port });
    } catch {
      this.#reject(client, 'flow_key');
      return;
    }
    const origin: Origin = {
      client: { address: normalizeAddress(address), port },
      local: { address: normalizeAddress(client.localAddress ?? this.#ctx.self.host), port: client.localPort ?? cfg.port },
    };
    const conn: Conn = { front: client, upstream: null, pipe: null, served: null };
    this.#add(conn);
    this.#route(conn, key, origin).catch((err: unknown) => {
      this.#ctx.logger.error({ service: this.name, err }, 'tcp routing failed');
      this.#fail(conn, key, 'unavailable');
    });
  }

  async #route(conn: Conn, key: string, origin: Origin): Promise<void> {
    const { router, dataPlane } = this.#ctx;
    let entry = router.lookup(this.name, key);
    let hops = router.hops(entry, false);
    let reowned = false;
    if (hops.length === 0) {
      entry = router.reown(entry);
      hops = router.hops(entry, false);
      reowned = true;
    }
    const tried = new Set<string>();
    let reason: Failure = 'unavailable';
    for (;;) {
      for (const hop of hops) {
        const id = hop.kind === 'local' ? router.selfId : hop.id;
        if (tried.has(id)) continue;
        tried.add(id);
        if (conn.front.destroyed) return this.#fail(conn, key, 'aborted');
        const kind = reowned ? 'reowned' : hop.kind === 'local' ? 'local' : id === entry.primary ? 'to_primary' : 'to_backup';
        if (hop.kind === 'local') {
          const r = await connectLocal(this.#ctx, this.#cfg, entry);
          if (!r.ok) return this.#fail(conn, key, r.reason);
          conn.served = { entry: r.entry, state: r.state };
          return this.#join(conn, r.socket, kind, key, origin);
        }
        const r = await forwardToPeer(this.#pool!, id, () => this.#header(key, origin), this.#statusTimeout(), () => dataPlane.stateOf(id) === 'dead');
        if (r.ok) return this.#join(conn, r.stream, kind, key, origin);
        reason = r.reason;
        if (r.suspect) dataPlane.markSuspect(id);
        if (!r.next) return this.#fail(conn, key, reason);
      }
      // Step 6: no owner could take the connection. Re-own once, among the nodes not yet tried.
      if (reowned || reason !== 'unavailable') return this.#fail(conn, key, reason);
      entry = router.reown(entry);
      hops = router.hops(entry, false);
      reowned = true;
    }
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
      this.#m.rejected.inc({ service: this.name, reason: 'draining' });
      return void reply(ForwardStatus.DRAINING);
    }
    if (this.#conns.size >= this.#cfg.maxConnections) {
      this.#m.rejected.inc({ service: this.name, reason: 'limit' });
      return void reply(ForwardStatus.LIMIT);
    }
    const conn: Conn = { front: stream, upstream: null, pipe: null, served: null };
    this.#add(conn);
    // DESIGN.md section 1: a communication from a peer is served here (hops(entry, true) = [LOCAL]).
    let r: LocalResult;
    try {
      r = await connectLocal(this.#ctx, this.#cfg, this.#ctx.router.lookup(this.name, h.key));
    } catch (err) {
      this.#ctx.logger.error({ service: this.name, err }, 'tcp forwarded connection failed');
      r = { ok: false, reason: 'backend_failed' };
    }
    if (!r.ok) {
      this.#m.rejected.inc({ service: this.name, reason: r.reason });
      reply(LOCAL_STATUS[r.reason]);
      this.#remove(conn);
      return;
    }
    conn.served = { entry: r.entry, state: r.state };
    if (stream.destroyed) {
      r.socket.destroy();
      this.#closed(conn, h.key, null);
      return;
    }
    this.#m.forwards.inc({ service: this.name, kind: 'from_peer' });
    this.#proxyHeader(r.socket, { client: { address: h.clientAddress, port: h.clientPort }, local: { address: h.localAddress, port: h.localPort } });
    stream.write(STATUS_BYTES.get(ForwardStatus.OK));
    this.#pipe(conn, stream, r.socket, h.key, null);
  }

  // ---------------------------------------------------------------- shared

  #join(conn: Conn, upstream: Duplex, kind: string, key: string, origin: Origin): void {
    const client = conn.front as Socket;
    if (client.destroyed) {
      upstream.destroy();
      this.#closed(conn, key, null);
      return;
    }
    this.#m.forwards.inc({ service: this.name, kind });
    this.#m.connections.inc({ service: this.name, outcome: 'proxied' });
    if (conn.served) this.#proxyHeader(upstream, origin);
    this.#pipe(conn, client, upstream, key, client);
  }

  /** PROXY header before any payload (haproxy doc/proxy-protocol.txt section 2: sent "at once"). */
  #proxyHeader(backend: Duplex, origin: Origin): void {
    const v = this.#cfg.proxyProtocol;
    if (v) backend.write(encodeProxyHeader(v, origin.client, origin.local));
  }

  #pipe(conn: Conn, front: Duplex, upstream: Duplex, key: string, client: Socket | null): void {
    conn.upstream = upstream;
    if (conn.served) this.#ctx.router.active(conn.served.entry);
    conn.pipe = pipeBoth(front, upstream, {
      idleMs: this.#cfg.timeouts.idleMs,
      onClose: () => this.#closed(conn, key, client),
    });
  }

  /** Lifecycle at close (issue 5 "Flow end"): the owner ends a connection flow, refreshes a client-ip one. */
  #closed(conn: Conn, key: string, client: Socket | null): void {
    if (client) {
      this.#m.bytes.inc({ service: this.name, direction: 'in' }, client.bytesRead);
      this.#m.bytes.inc({ service: this.name, direction: 'out' }, client.bytesWritten);
    }
    const served = conn.served;
    if (served) {
      this.#ctx.pool(this.name)?.release(served.state);
      if (this.#spec.kind === 'connection') this.#ctx.router.end(this.name, key);
      else this.#ctx.router.active(served.entry);
    }
    this.#remove(conn);
  }

  #fail(conn: Conn, key: string, reason: Failure | 'aborted'): void {
    if (reason !== 'aborted') {
      this.#m.rejected.inc({ service: this.name, reason });
      this.#m.connections.inc({ service: this.name, outcome: 'failed' });
    }
    resetStream(conn.front);
    // A connection flow that never carried a byte is over; nobody else will end it.
    if (this.#spec.kind === 'connection') this.#ctx.router.end(this.name, key);
    this.#remove(conn);
  }

  #reject(client: Socket, reason: 'limit' | 'flow_key'): void {
    this.#m.rejected.inc({ service: this.name, reason });
    this.#m.connections.inc({ service: this.name, outcome: 'rejected' });
    resetStream(client);
  }

  #add(conn: Conn): void {
    this.#conns.add(conn);
    this.#m.active.inc({ service: this.name });
  }

  #remove(conn: Conn): void {
    if (!this.#conns.delete(conn)) return;
    this.#m.active.dec({ service: this.name });
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
