/**
 * Keep-alive connections to a service's backends: per backend address a pool of raw sockets, each
 * with its own llhttp response parser and one request in flight at a time (no pipelining, so a slow
 * response never holds up another client's request). Idle sockets are reused last-in first-out (the
 * warmest first) and closed after BACKEND_KEEP_ALIVE_MS; at most MAX_IDLE are kept per address.
 *
 * Reads go into one shared buffer (`onread`), parsed at once, so that reading allocates nothing;
 * the parser hands over body bytes as copies. The response head is rewritten once for the client
 * (head.ts) and the body re-framed: Content-Length passed through, chunked re-encoded, unknown
 * length chunked (HTTP/1.1 client) or close-delimited (HTTP/1.0). Back-pressure both ways.
 *
 * A pooled socket that turns out closed before any response byte (the backend closed it idle while
 * the request was on its way) is retried once on a fresh socket, when the request body is still
 * held: nothing was answered, so nothing can have been done twice by tandem's doing.
 */
import net, { type Socket } from 'node:net';
import type { UpstreamPool } from '../../upstream/pool.js';
import { acquireParser, releaseParser, SKIP_BODY, type HttpParser, type ParserSink } from './parser.js';
import { applyHeaderRules } from '../../routes/header-rules.js';
import { Body, Framing, responseFraming, scanResponse, writeResponseHead } from './head.js';
import type { Exchange, Upstream } from './exchange.js';

/** Idle backend connections close after this (undici's default; backends usually allow more). */
export const BACKEND_KEEP_ALIVE_MS = 4000;
/** Response head limit from a backend; larger is a 502. */
export const BACKEND_MAX_HEADER_SIZE = 32 * 1024;
/** Idle sockets kept per backend address. */
const MAX_IDLE = 256;

export interface BackendTimeouts {
  readonly connectMs: number;
  /** The response head must come within this after the request was sent. */
  readonly requestMs: number;
  /** Silence while relaying a response body. */
  readonly idleMs: number;
}

/** What the pool tells its service. */
export interface BackendHost {
  readonly now: number;
  /** An exception from inside a parser callback (logged; the connection is dropped). */
  bug(err: unknown): void;
}

/** All reads of all backend sockets land here and are parsed before the next read. */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
const CRLF = '\r\n';
const LAST_CHUNK = '0\r\n\r\n';

class Address {
  readonly idle: BackendConnection[] = [];
  constructor(
    readonly address: string,
    readonly host: string,
    readonly port: number,
  ) {}
}

export class BackendPool {
  readonly #host: BackendHost;
  readonly #addresses = new Map<string, Address>();
  /** Connections with a request in flight or connecting (swept for timeouts). */
  readonly #busy = new Set<BackendConnection>();
  #closed = false;

  constructor(host: BackendHost) {
    this.#host = host;
  }

  get now(): number {
    return this.#host.now;
  }

  bug(err: unknown): void {
    this.#host.bug(err);
  }

  /** Open connections (busy and idle), for tests. */
  get size(): number {
    let n = this.#busy.size;
    for (const a of this.#addresses.values()) n += a.idle.length;
    return n;
  }

  /** Sends `ex` to the backend at `address` (`host:port` of `upstream`); failures end in ex.fail(). */
  dispatch(ex: Exchange, address: string, host: string, port: number, upstream: UpstreamPool): void {
    let a = this.#addresses.get(address);
    if (a === undefined) this.#addresses.set(address, (a = new Address(address, host, port)));
    const conn = a.idle.pop() ?? new BackendConnection(this, a);
    this.#busy.add(conn);
    conn.send(ex, upstream, false);
  }

  /** The retry on a fresh socket after a pooled one failed before any byte. */
  redispatch(ex: Exchange, a: Address, upstream: UpstreamPool): void {
    const conn = new BackendConnection(this, a);
    this.#busy.add(conn);
    conn.send(ex, upstream, true);
  }

  /** A connection finished its request and may be reused. */
  idle(conn: BackendConnection, a: Address): void {
    this.#busy.delete(conn);
    if (this.#closed || a.idle.length >= MAX_IDLE || this.#addresses.get(a.address) !== a) return conn.destroy();
    a.idle.push(conn);
  }

  /** A connection closed. */
  gone(conn: BackendConnection, a: Address): void {
    this.#busy.delete(conn);
    const i = a.idle.indexOf(conn);
    if (i >= 0) a.idle.splice(i, 1);
  }

  sweep(now: number, t: BackendTimeouts): void {
    for (const c of this.#busy) c.sweep(now, t);
    for (const a of this.#addresses.values()) {
      while (a.idle.length > 0 && now - a.idle[0].lastIo >= BACKEND_KEEP_ALIVE_MS) a.idle.shift()!.destroy();
    }
  }

  /** A reload: idle connections to backends no longer listed close (busy ones after their request). */
  update(addresses: readonly string[]): void {
    for (const [address, a] of this.#addresses) {
      if (addresses.includes(address)) continue;
      this.#addresses.delete(address);
      for (const c of a.idle.splice(0)) c.destroy();
    }
  }

  close(): void {
    this.#closed = true;
    for (const c of [...this.#busy]) c.destroy();
    for (const a of this.#addresses.values()) for (const c of a.idle.splice(0)) c.destroy();
    this.#addresses.clear();
  }
}

class BackendConnection implements ParserSink, Upstream {
  readonly #pool: BackendPool;
  readonly #addr: Address;
  readonly #socket: Socket;
  #parser: HttpParser | null;
  #ex: Exchange | null = null;
  #upstream: UpstreamPool | null = null;
  #connected = false;
  /** Served a request before: a failure before any byte may be a stale keep-alive socket. */
  #reused = false;
  #isRetry = false;
  #startedAt: number;
  /** When the request was fully sent (0: not yet): the response head timeout runs from here. */
  #sentAt = 0;
  lastIo: number;
  #gotBytes = false;
  #framing: Framing = Framing.NONE;
  /** The backend's body ends with its close (no length, no chunks), whatever the client framing. */
  #untilClose = false;
  /** A 1xx response is being parsed (not passed on). */
  #interim = false;
  #requestEnded = false;
  #responsePaused = false;
  #executing = false;
  #closed = false;

  constructor(pool: BackendPool, addr: Address) {
    this.#pool = pool;
    this.#addr = addr;
    this.#startedAt = this.lastIo = pool.now;
    this.#parser = acquireParser('response', this, BACKEND_MAX_HEADER_SIZE);
    const s = net.connect({ host: addr.host, port: addr.port, noDelay: true, onread: { buffer: READ_BUFFER, callback: this.#onRead } });
    this.#socket = s;
    s.once('connect', this.#onConnect);
    s.on('drain', this.#onDrain);
    s.on('end', this.#onEnd);
    s.on('close', this.#onClose);
    s.on('error', noop);
  }

  send(ex: Exchange, upstream: UpstreamPool, isRetry: boolean): void {
    this.#ex = ex;
    this.#upstream = upstream;
    this.#isRetry = isRetry;
    this.#sentAt = 0;
    this.#gotBytes = false;
    this.#interim = false;
    this.#requestEnded = false;
    this.#framing = Framing.NONE;
    this.#untilClose = false;
    this.lastIo = this.#pool.now;
    if (this.#connected) this.#startedAt = this.lastIo;
    const s = this.#socket;
    // net queues the bytes until the connection is up. Head and held body leave in one syscall.
    if (ex.body === Body.NONE) {
      s.write(ex.text, 'latin1');
      ex.attach(this);
      return;
    }
    s.cork();
    s.write(ex.text, 'latin1');
    ex.attach(this);
    s.uncork();
  }

  // ---- Upstream: the request body ------------------------------------------------------------

  writeBody(chunk: Buffer): boolean {
    const s = this.#socket;
    if (this.#ex?.body === Body.CHUNKED) {
      s.write(`${chunk.length.toString(16)}${CRLF}`, 'latin1');
      s.write(chunk);
      return s.write(CRLF, 'latin1');
    }
    return s.write(chunk);
  }

  endBody(): void {
    if (this.#ex?.body === Body.CHUNKED) this.#socket.write(LAST_CHUNK, 'latin1');
    this.#requestEnded = true;
    this.#sentAt = this.#pool.now;
  }

  resumeResponse(): void {
    if (!this.#responsePaused) return;
    this.#responsePaused = false;
    this.#socket.resume();
  }

  abort(): void {
    this.#ex = null;
    this.destroy();
  }

  readonly #onDrain = (): void => {
    this.#ex?.upstreamDrained();
  };

  // ---- the response ------------------------------------------------------------------------

  readonly #onConnect = (): void => {
    this.#connected = true;
    this.#upstream?.reportSuccess(this.#addr.address);
  };

  readonly #onRead = (n: number, buf: Buffer): boolean => {
    this.lastIo = this.#pool.now;
    const ex = this.#ex;
    const parser = this.#parser;
    if (ex === null || parser === null) {
      // Bytes nobody asked for: the connection is out of step.
      this.destroy();
      return false;
    }
    this.#gotBytes = true;
    const down = ex.down;
    down.cork();
    this.#executing = true;
    let r: number;
    try {
      r = parser.execute(buf.subarray(0, n));
    } catch (err) {
      // A bug of ours inside a parser callback: this connection is lost, the node serves on.
      r = -1;
      this.#pool.bug(err);
    } finally {
      this.#executing = false;
      down.uncork();
    }
    if (r < 0) this.#badResponse();
    if (this.#closed) this.#releaseParser();
    return !this.#responsePaused;
  };

  onHead(p: HttpParser): number {
    const ex = this.#ex;
    if (ex === null) return 0;
    const status = p.statusCode;
    if (status < 200) {
      // 100 was answered by tandem itself; other interim responses are not passed on.
      this.#interim = true;
      return 0;
    }
    // The route's response header rules (routing.ts) before the head is rewritten for the client.
    const rules = ex.lane?.responseHeaders;
    const fields = rules == null ? p.headers : applyHeaderRules(p.headers, rules);
    const r = scanResponse(fields);
    const noBody = ex.method === 'HEAD' || status === 204 || status === 304;
    this.#framing = responseFraming(r, noBody, ex.http10);
    this.#untilClose = !noBody && !r.chunked && r.contentLength < 0;
    const close = this.#framing === Framing.CLOSE || ex.mustClose;
    const up = this.#upstream!;
    if (status >= 500) up.reportFailure(this.#addr.address, '5xx');
    else up.reportSuccess(this.#addr.address);
    ex.respondHead(writeResponseHead(status, p.statusMessage, fields, r, this.#framing, ex.via, close, ex.http10), status, close);
    return ex.method === 'HEAD' ? SKIP_BODY : 0;
  }

  onBody(chunk: Buffer): void {
    const ex = this.#ex;
    if (ex === null || this.#interim) return;
    let ok: boolean;
    if (this.#framing === Framing.CHUNKED) {
      ex.respondData(`${chunk.length.toString(16)}${CRLF}`);
      ex.respondData(chunk);
      ok = ex.respondData(CRLF);
    } else ok = ex.respondData(chunk);
    if (!ok && !this.#responsePaused) {
      this.#responsePaused = true;
      this.#socket.pause();
    }
  }

  onMessageEnd(): void {
    if (this.#interim) {
      this.#interim = false;
      return;
    }
    const ex = this.#ex;
    const p = this.#parser;
    if (ex === null || p === null) return;
    this.#ex = null;
    ex.detach(this);
    if (this.#framing === Framing.CHUNKED) ex.respondData(LAST_CHUNK);
    const reusable = p.keepAlive && this.#requestEnded && !this.#untilClose && !this.#closed;
    const close = this.#framing === Framing.CLOSE || ex.mustClose;
    this.#reused = true;
    // The last body bytes may have filled the client's buffer (a paused read): a connection that
    // goes back to the pool reads again, or the next request on it would never see its response.
    if (this.#responsePaused) {
      this.#responsePaused = false;
      this.#socket.resume();
    }
    if (reusable) this.#pool.idle(this, this.#addr);
    else this.destroy();
    ex.respondEnd(close);
  }

  #badResponse(): void {
    const ex = this.#ex;
    this.#ex = null;
    this.destroy();
    if (ex === null) return;
    ex.detach(this);
    if (ex.responded) return ex.respondCut();
    this.#upstream?.reportFailure(this.#addr.address, 'connect');
    ex.fail('backend-failed');
  }

  readonly #onEnd = (): void => {
    // A body delimited by the close ends here; anything else cut short shows on 'close'.
    if (this.#ex !== null && this.#parser !== null && this.#untilClose && this.#ex.responded) {
      const ex = this.#ex;
      ex.down.cork();
      this.#parser.finish();
      ex.down.uncork();
    }
  };

  readonly #onClose = (): void => {
    this.#closed = true;
    this.#pool.gone(this, this.#addr);
    const ex = this.#ex;
    this.#ex = null;
    if (!this.#executing) this.#releaseParser();
    if (ex === null) return;
    ex.detach(this);
    if (ex.responded) return ex.respondCut();
    const up = this.#upstream!;
    if (this.#reused && !this.#gotBytes && !this.#isRetry && this.#connected && ex.replayable && !ex.gone) {
      // A stale keep-alive socket: once more on a fresh one.
      return this.#pool.redispatch(ex, this.#addr, up);
    }
    up.reportFailure(this.#addr.address, 'connect');
    ex.fail('backend-failed');
  };

  sweep(now: number, t: BackendTimeouts): void {
    const ex = this.#ex;
    if (ex === null) return;
    let timedOut = false;
    if (!this.#connected) timedOut = now - this.#startedAt >= t.connectMs;
    else if (!ex.responded) timedOut = this.#sentAt !== 0 && now - this.#sentAt >= t.requestMs;
    else if (now - this.lastIo >= t.idleMs && !this.#responsePaused) {
      this.#ex = null;
      ex.detach(this);
      this.destroy();
      ex.respondCut();
      return;
    }
    if (!timedOut) return;
    this.#ex = null;
    ex.detach(this);
    this.destroy();
    this.#upstream?.reportFailure(this.#addr.address, 'timeout');
    ex.fail('backend-timeout');
  }

  destroy(): void {
    this.#socket.destroy();
  }

  #releaseParser(): void {
    const p = this.#parser;
    if (p === null) return;
    this.#parser = null;
    releaseParser(p);
  }
}

function noop(): void {}
