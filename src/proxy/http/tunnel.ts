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
import { SERVED, stop, type Attempt, type AttemptResult } from '../hops.js';
import type { Exchange, Upstream } from './exchange.js';
import type { ClientConnection } from './client.js';
import type { HttpErrorKind } from './errors.js';
import { OwnerTunnel, PeerTunnel, type Swept, type TunnelHost, type TunnelRegistry } from './tunnel-peer.js';

export type { TunnelHost } from './tunnel-peer.js';

type Result = AttemptResult<HttpErrorKind>;

export class Tunnels implements TunnelRegistry {
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

  /**
   * The tunnel is up: its backend slot stays taken for the tunnel's life (least-connections sees
   * it), not only for the exchange's; the flow counts as active now. Returns the release.
   */
  holdBackend(ex: Exchange): () => void {
    const b = ex.backend;
    const pool = ex.backendPool;
    ex.backend = undefined;
    this.#ctx.router.active(ex.entry);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      pool?.release(b);
    };
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
    const pool = this.#ctx.pool(ex.lane?.flowService ?? this.#host.name);
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
function join(tunnels: Tunnels, self: Swept, a: Socket, b: Socket, idleMs: number, release: () => void): void {
  const close = (): void => {
    release();
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
    const release = this.#tunnels.holdBackend(ex);
    ex.handedOver(101);
    this.#up.pause();
    client.write(chunk);
    this.#pool.reportSuccess(this.#address);
    join(this.#tunnels, this, client, this.#up, this.#tunnels.host.config.timeouts.idleMs, release);
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

function noop(): void {}
