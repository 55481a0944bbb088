/**
 * Upgrade requests (WebSocket, RFC 6455; any other RFC 9110 section 7.8 Upgrade): routed by the
 * same forwarding loop as any request, then the connection becomes a byte tunnel to the flow's
 * backend — a socket pair when this node serves the flow, a peer multiplexer stream to the owner
 * otherwise (the owner joins it to its backend socket). The backend's answer (101, or a refusal)
 * goes to the client as it came.
 *
 * Nothing is written to the client before the backend's first answer byte, so a peer that closes
 * or refuses before it is skipped for the next owner: an upgrade is a GET whose head (and first
 * tunnel bytes) are in memory. A tunnel silent both ways for idleMs is closed (HAProxy's
 * "timeout tunnel").
 */
import net, { type Socket } from 'node:net';
import type { ProxyContext } from '../context.js';
import type { TimeoutsConfig } from '../../config/schema.js';
import type { UpstreamPool } from '../../upstream/pool.js';
import type { MuxHandler, MuxStream } from '../mux/stream.js';
import { ResetCode, type ResetCodeValue } from '../mux/frame.js';
import { SERVED, stop, tryNext, type Attempt, type AttemptResult } from '../hops.js';
import { formatHostPort } from '../../flowkey/index.js';
import type { Exchange, Upstream } from './exchange.js';
import type { ClientConnection } from './client.js';
import type { HttpErrorKind } from './errors.js';
import type { ServiceMetrics } from './metrics.js';
import type { PeerMux } from '../mux/peer-mux.js';
import { FLAG_HTTP10, FLAG_UPGRADE, PREFIX_BYTES, encodePeerHead, encodePrefix } from './peer-head.js';

type Result = AttemptResult<HttpErrorKind>;

/** What tunnels need of their service. */
export interface TunnelHost {
  readonly name: string;
  readonly now: number;
  readonly mux: PeerMux;
  readonly metrics: ServiceMetrics;
  readonly config: { readonly timeouts: TimeoutsConfig };
}

/** Anything the sweep looks at: an attempt waiting for its answer, or an open tunnel. */
interface Swept {
  sweep(now: number, t: TimeoutsConfig): void;
  destroy(): void;
}

export class Tunnels {
  readonly #host: TunnelHost;
  readonly #ctx: ProxyContext;
  readonly #open = new Set<Swept>();

  constructor(host: TunnelHost, ctx: ProxyContext) {
    this.#host = host;
    this.#ctx = ctx;
  }

  get size(): number {
    return this.#open.size;
  }

  /** One attempt of a client's upgrade (the forwarding loop's attempt function). */
  attempt(ex: Exchange, conn: ClientConnection, a: Attempt): Result | Promise<Result> {
    if (ex.done) return stop('peer-unavailable');
    this.#host.metrics.forward(a.kind);
    if (a.hop.kind === 'local') {
      ex.servedBy = 'local';
      const b = this.#backend(ex, a.entry);
      if (b === null) return stop('no-backend');
      this.#track(new BackendTunnel(this, ex, conn, b.pool, b.address, b.host, b.port));
      return SERVED;
    }
    ex.servedBy = a.node === a.entry.primary ? 'primary' : 'backup';
    return new Promise<Result>((resolve) => this.#track(new PeerTunnel(this, ex, conn, a, resolve)));
  }

  /** An upgrade a peer forwarded: the stream is joined to the flow's backend from here. */
  fromPeer(ex: Exchange, stream: MuxStream): MuxHandler {
    const b = this.#backend(ex, ex.entry);
    if (b === null) {
      ex.fail('no-backend');
      return IGNORE;
    }
    const t = new OwnerTunnel(this, ex, stream, b.pool, b.address, b.host, b.port);
    this.#track(t);
    return t;
  }

  get host(): TunnelHost {
    return this.#host;
  }

  untrack(t: Swept): void {
    this.#open.delete(t);
  }

  sweep(now: number, t: TimeoutsConfig): void {
    for (const s of this.#open) s.sweep(now, t);
  }

  closeAll(): void {
    for (const s of [...this.#open]) s.destroy();
    this.#open.clear();
  }

  #track(t: Swept): void {
    this.#open.add(t);
  }

  #backend(ex: Exchange, entry: Exchange['entry']): { pool: UpstreamPool; address: string; host: string; port: number } | null {
    const pool = this.#ctx.pool(this.#host.name);
    if (pool === undefined) return null;
    const r = this.#ctx.router.assign(entry, (x) => pool.usable(x), (k) => pool.choose(k));
    ex.entry = r.entry;
    const b = r.backend === null ? undefined : pool.acquire(r.backend);
    if (b === undefined) return null;
    ex.backend = b;
    ex.backendPool = pool;
    return { pool, address: b.address, host: b.host, port: b.port };
  }
}

const IGNORE: MuxHandler = { onData() {}, onEnd() {}, onReset() {}, onDrain() {} };

/** Joins two sockets (the established local tunnel): both directions piped, either close ends both. */
function join(tunnels: Tunnels, self: Swept, a: Socket, b: Socket, idleMs: number): void {
  const close = (): void => {
    tunnels.untrack(self);
    a.destroy();
    b.destroy();
  };
  a.once('close', close);
  b.once('close', close);
  a.setTimeout(idleMs, close);
  b.setTimeout(idleMs, close);
  a.pipe(b);
  b.pipe(a);
}

/** The local tunnel: client socket ↔ backend socket. */
class BackendTunnel implements Upstream, Swept {
  readonly #tunnels: Tunnels;
  readonly #ex: Exchange;
  readonly #conn: ClientConnection;
  readonly #pool: UpstreamPool;
  readonly #address: string;
  readonly #up: Socket;
  readonly #startedAt: number;
  #connected = false;
  #established = false;

  constructor(tunnels: Tunnels, ex: Exchange, conn: ClientConnection, pool: UpstreamPool, address: string, host: string, port: number) {
    this.#tunnels = tunnels;
    this.#ex = ex;
    this.#conn = conn;
    this.#pool = pool;
    this.#address = address;
    this.#startedAt = tunnels.host.now;
    const up = (this.#up = net.connect({ host, port, noDelay: true }));
    up.on('error', noop);
    up.once('connect', () => (this.#connected = true));
    up.once('data', this.#onFirst);
    up.once('close', this.#onClose);
    up.write(ex.text, 'latin1');
    const rest = conn.upgradeRest;
    if (rest !== null && rest.length > 0) up.write(rest);
    ex.attach(this);
  }

  readonly #onFirst = (chunk: Buffer): void => {
    this.#established = true;
    const ex = this.#ex;
    ex.detach(this);
    const client = this.#conn.detachSocket();
    ex.handedOver(101);
    this.#up.pause();
    client.write(chunk);
    this.#pool.reportSuccess(this.#address);
    join(this.#tunnels, this, client, this.#up, this.#tunnels.host.config.timeouts.idleMs);
    client.resume();
    this.#up.resume();
  };

  readonly #onClose = (): void => {
    if (this.#established) return;
    this.#tunnels.untrack(this);
    const ex = this.#ex;
    ex.detach(this);
    if (ex.done) return;
    this.#pool.reportFailure(this.#address, 'connect');
    ex.fail('backend-failed');
  };

  sweep(now: number, t: TimeoutsConfig): void {
    if (this.#established) return;
    const limit = this.#connected ? t.requestMs : t.connectMs;
    if (now - this.#startedAt < limit) return;
    const ex = this.#ex;
    ex.detach(this);
    this.#tunnels.untrack(this);
    this.#up.destroy();
    this.#pool.reportFailure(this.#address, 'timeout');
    ex.fail('backend-timeout');
  }

  writeBody(): boolean {
    return true;
  }
  endBody(): void {}
  resumeResponse(): void {}
  abort(): void {
    this.#tunnels.untrack(this);
    this.#up.destroy();
  }

  destroy(): void {
    this.#up.destroy();
  }
}

/** A bidirectional pump between a socket and a multiplexer stream, with credit returned as bytes leave. */
class Pump {
  readonly #socket: Socket;
  readonly #stream: MuxStream;
  readonly #onClose: () => void;
  #owed = 0;
  #slow = false;
  #done = false;

  constructor(socket: Socket, stream: MuxStream, idleMs: number, onClose: () => void) {
    this.#socket = socket;
    this.#stream = stream;
    this.#onClose = onClose;
    socket.on('data', (chunk: Buffer) => {
      if (!stream.write(chunk)) socket.pause();
    });
    socket.on('end', () => stream.end());
    socket.on('drain', () => {
      if (!this.#slow) return;
      this.#slow = false;
      const n = this.#owed;
      this.#owed = 0;
      if (n > 0) stream.consumed(n);
    });
    socket.once('close', () => {
      if (!stream.closed) stream.reset(ResetCode.CANCEL, 'tunnel closed');
      this.#finish();
    });
    socket.setTimeout(idleMs, () => socket.destroy());
  }

  data(chunk: Buffer): void {
    if (this.#socket.write(chunk) && !this.#slow) this.#stream.consumed(chunk.length);
    else {
      this.#slow = true;
      this.#owed += chunk.length;
    }
  }

  end(): void {
    this.#socket.end();
  }

  reset(): void {
    this.#socket.destroy();
    this.#finish();
  }

  drain(): void {
    this.#socket.resume();
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#onClose();
  }
}

/** The ingress's tunnel to the owner: client socket ↔ multiplexer stream. */
class PeerTunnel implements Upstream, MuxHandler, Swept {
  readonly #tunnels: Tunnels;
  readonly #ex: Exchange;
  readonly #conn: ClientConnection;
  readonly #stream: MuxStream;
  readonly #startedAt: number;
  #resolve: ((r: Result) => void) | null;
  #prefix: Buffer | null = null;
  #pump: Pump | null = null;

  constructor(tunnels: Tunnels, ex: Exchange, conn: ClientConnection, a: Attempt, resolve: (r: Result) => void) {
    this.#tunnels = tunnels;
    this.#ex = ex;
    this.#conn = conn;
    this.#resolve = resolve;
    this.#startedAt = tunnels.host.now;
    const flags = FLAG_UPGRADE | (ex.http10 ? FLAG_HTTP10 : 0);
    const head = encodePeerHead(flags, tunnels.host.name, ex.key, formatHostPort(ex.clientIp, ex.clientPort), ex.text);
    this.#stream = tunnels.host.mux.open(a.node, head, this);
    const rest = conn.upgradeRest;
    if (rest !== null && rest.length > 0) this.#stream.write(rest);
    a.onAbort = () => this.#failed(tryNext('peer-unavailable', false));
    ex.attach(this);
  }

  onData(chunk: Buffer): void {
    if (this.#pump !== null) return this.#pump.data(chunk);
    // Before the tunnel is up the bytes go straight to the client's socket buffer.
    this.#stream.consumed(chunk.length);
    let data = chunk;
    if (this.#prefix !== null || chunk.length < PREFIX_BYTES) {
      data = this.#prefix = this.#prefix === null ? Buffer.from(chunk) : Buffer.concat([this.#prefix, chunk]);
      if (data.length < PREFIX_BYTES) return;
    }
    this.#prefix = null;
    const ex = this.#ex;
    ex.detach(this);
    const client = this.#conn.detachSocket();
    ex.handedOver(data.readUInt16BE(2));
    this.#settle(SERVED);
    const tunnels = this.#tunnels;
    this.#pump = new Pump(client, this.#stream, tunnels.host.config.timeouts.idleMs, () => tunnels.untrack(this));
    if (data.length > PREFIX_BYTES) client.write(data.subarray(PREFIX_BYTES));
    client.resume();
  }

  onEnd(): void {
    if (this.#pump !== null) return this.#pump.end();
    this.#failed(stop('peer-unavailable'));
  }

  onReset(code: ResetCodeValue): void {
    if (this.#pump !== null) return this.#pump.reset();
    // A GET whose head is in memory: any owner that did not answer may be skipped.
    this.#failed(code === ResetCode.REFUSED || code === ResetCode.DRAINING ? tryNext('peer-unavailable', false) : code === ResetCode.CONNECTION_LOST ? tryNext('peer-unavailable', true) : stop('peer-unavailable'));
  }

  onDrain(): void {
    this.#pump?.drain();
  }

  sweep(now: number, t: TimeoutsConfig): void {
    if (this.#pump !== null || this.#resolve === null) return;
    if (now - this.#startedAt < t.requestMs + 2000) return;
    this.#stream.reset(ResetCode.CANCEL, 'no answer in time');
    this.#failed(stop('backend-timeout'));
  }

  #failed(r: Result): void {
    if (this.#resolve === null) return;
    if (!this.#stream.closed) this.#stream.reset(ResetCode.CANCEL, 'attempt over');
    this.#tunnels.untrack(this);
    this.#ex.detach(this);
    if (r.ok === false && r.next) this.#tunnels.host.metrics.failover();
    this.#settle(r);
  }

  #settle(r: Result): void {
    const resolve = this.#resolve;
    this.#resolve = null;
    resolve?.(r);
  }

  writeBody(): boolean {
    return true;
  }
  endBody(): void {}
  resumeResponse(): void {}
  abort(): void {
    this.#failed(stop('peer-unavailable'));
  }

  destroy(): void {
    if (this.#pump !== null) this.#pump.reset();
    else this.#failed(stop('peer-unavailable'));
  }
}

/** The owner's side of a forwarded upgrade: multiplexer stream ↔ backend socket. */
class OwnerTunnel implements MuxHandler, Swept {
  readonly #tunnels: Tunnels;
  readonly #ex: Exchange;
  readonly #stream: MuxStream;
  readonly #pool: UpstreamPool;
  readonly #address: string;
  readonly #up: Socket;
  readonly #startedAt: number;
  #connected = false;
  #pump: Pump | null = null;
  #over = false;

  constructor(tunnels: Tunnels, ex: Exchange, stream: MuxStream, pool: UpstreamPool, address: string, host: string, port: number) {
    this.#tunnels = tunnels;
    this.#ex = ex;
    this.#stream = stream;
    this.#pool = pool;
    this.#address = address;
    this.#startedAt = tunnels.host.now;
    const up = (this.#up = net.connect({ host, port, noDelay: true }));
    up.on('error', noop);
    up.once('connect', () => (this.#connected = true));
    up.once('data', this.#onFirst);
    up.once('close', this.#onClose);
    up.write(ex.text, 'latin1');
  }

  readonly #onFirst = (chunk: Buffer): void => {
    const ex = this.#ex;
    const b = Buffer.allocUnsafe(PREFIX_BYTES + chunk.length);
    encodePrefix(b, 0, 101, false);
    chunk.copy(b, PREFIX_BYTES);
    this.#stream.write(b);
    ex.handedOver(101);
    this.#pool.reportSuccess(this.#address);
    const tunnels = this.#tunnels;
    this.#pump = new Pump(this.#up, this.#stream, tunnels.host.config.timeouts.idleMs, () => tunnels.untrack(this));
  };

  readonly #onClose = (): void => {
    if (this.#pump !== null || this.#over) return;
    this.#over = true;
    this.#tunnels.untrack(this);
    this.#pool.reportFailure(this.#address, 'connect');
    this.#ex.fail('backend-failed');
  };

  onData(chunk: Buffer): void {
    if (this.#pump !== null) return this.#pump.data(chunk);
    // The client's first tunnel bytes, before the backend answered: net queues them.
    this.#up.write(chunk);
    this.#stream.consumed(chunk.length);
  }

  onEnd(): void {
    if (this.#pump !== null) this.#pump.end();
    else this.#up.end();
  }

  onReset(): void {
    if (this.#pump !== null) return this.#pump.reset();
    this.#over = true;
    this.#tunnels.untrack(this);
    this.#up.destroy();
    this.#ex.clientGone();
  }

  onDrain(): void {
    this.#pump?.drain();
  }

  sweep(now: number, t: TimeoutsConfig): void {
    if (this.#pump !== null || this.#over) return;
    if (now - this.#startedAt < (this.#connected ? t.requestMs : t.connectMs)) return;
    this.#over = true;
    this.#tunnels.untrack(this);
    this.#up.destroy();
    this.#pool.reportFailure(this.#address, 'timeout');
    this.#ex.fail('backend-timeout');
  }

  destroy(): void {
    this.#up.destroy();
    if (!this.#stream.closed) this.#stream.reset(ResetCode.CANCEL, 'stopping');
  }
}

function noop(): void {}
