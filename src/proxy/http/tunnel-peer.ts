/**
 * The peer-hop halves of upgrade tunnels (tunnel.ts routes them): the ingress joins its client's
 * socket to a multiplexer stream to the owner, the owner joins the stream to its backend socket.
 * Either way a Pump moves the bytes, with the stream's credit returned as bytes leave.
 */
import net, { type Socket } from 'node:net';
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
export interface Swept {
  sweep(now: number, t: TimeoutsConfig): void;
  destroy(): void;
}

/** The set of a service's tunnels (tunnel.ts). */
export interface TunnelRegistry {
  readonly host: TunnelHost;
  untrack(t: Swept): void;
  /** The tunnel is up: its backend slot is held until the returned release. */
  holdBackend(ex: Exchange): () => void;
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
export class PeerTunnel implements Upstream, MuxHandler, Swept {
  readonly #tunnels: TunnelRegistry;
  readonly #ex: Exchange;
  readonly #conn: ClientConnection;
  readonly #stream: MuxStream;
  readonly #startedAt: number;
  #resolve: ((r: Result) => void) | null;
  #prefix: Buffer | null = null;
  #pump: Pump | null = null;

  constructor(tunnels: TunnelRegistry, ex: Exchange, conn: ClientConnection, a: Attempt, resolve: (r: Result) => void) {
    this.#tunnels = tunnels;
    this.#ex = ex;
    this.#conn = conn;
    this.#resolve = resolve;
    this.#startedAt = tunnels.host.now;
    const flags = FLAG_UPGRADE | (ex.http10 ? FLAG_HTTP10 : 0);
    const head = encodePeerHead(flags, ex.lane?.flowService ?? tunnels.host.name, ex.key, formatHostPort(ex.clientIp, ex.clientPort), ex.text);
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
    this.#failed(code === ResetCode.REFUSED || code === ResetCode.DRAINING ? tryNext('peer-unavailable', false) : code === ResetCode.CONNECTION_LOST || code === ResetCode.UNREACHABLE ? tryNext('peer-unavailable', true) : stop('peer-unavailable'));
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
export class OwnerTunnel implements MuxHandler, Swept {
  readonly #tunnels: TunnelRegistry;
  readonly #ex: Exchange;
  readonly #stream: MuxStream;
  readonly #pool: UpstreamPool;
  readonly #address: string;
  readonly #up: Socket;
  readonly #startedAt: number;
  #connected = false;
  #pump: Pump | null = null;
  #over = false;

  constructor(tunnels: TunnelRegistry, ex: Exchange, stream: MuxStream, pool: UpstreamPool, address: string, host: string, port: number) {
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
    const release = this.#tunnels.holdBackend(ex);
    ex.handedOver(101);
    this.#pool.reportSuccess(this.#address);
    const tunnels = this.#tunnels;
    this.#pump = new Pump(this.#up, this.#stream, tunnels.host.config.timeouts.idleMs, () => {
      release();
      tunnels.untrack(this);
    });
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
