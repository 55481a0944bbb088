/**
 * One client connection of an HTTP service: a raw socket, one llhttp request parser that reads the
 * socket itself (as node:http's server lets it: no JavaScript Buffer per read; fed from 'data' when
 * the socket has no stream handle to give), and the requests on it in order. Requests are served one at a time; pipelined ones
 * are parsed behind it (their bodies held, the socket paused past a bound) and answered in order
 * (RFC 9112 section 9.3.2). Keep-alive, limits (head size → 431, head and request timeouts → 408,
 * keep-alive idle) and the close after an error follow node:http's rules.
 *
 * The connection is the Downstream of its current exchange: response bytes are written to the
 * socket as they come; the writes of one upstream read are gathered and leave in one write (one
 * buffer when small), which is one syscall.
 */
import type { Socket } from 'node:net';
import { acquireParser, releaseParser, isHeaderOverflow, type HttpParser, type ParserSink } from './parser.js';
import { Exchange, type Downstream, type ExchangeHost } from './exchange.js';
import { CONTINUE, errorBytes, type HttpErrorKind } from './errors.js';

/** Client request head limit; larger gets 431 (node:http's default, the usual 16 KB). */
export const MAX_HEADER_SIZE = 16 * 1024;
/** Requests parsed ahead of the one being answered before the socket is paused. */
const MAX_QUEUED = 16;
/** After a response that ends the connection: how long unread input is drained before a hard close. */
const LINGER_MS = 2000;
/** Gathered writes up to this are joined into one buffer (Node's pool serves most of them). */
const JOIN_BYTES = 16 * 1024;

/** What a connection needs of its service. */
export interface ClientHost extends ExchangeHost {
  readonly draining: boolean;
  readonly now: number;
  /** A parsed head: fills the exchange (key, rewritten head) or names the error to answer. */
  prepare(ex: Exchange, p: HttpParser, conn: ClientConnection): HttpErrorKind | null;
  /** The exchange's turn: route and serve it (or answer its `reject`). */
  serve(ex: Exchange): void;
  /** An upgrade's turn: the socket and the bytes after the head now belong to the tunnel. */
  tunnel(ex: Exchange, conn: ClientConnection): void;
  closed(conn: ClientConnection): void;
  /** An exception from inside a parser callback (logged; the connection is dropped). */
  bug(err: unknown): void;
}

export interface ClientTimeouts {
  readonly headerMs: number;
  readonly requestMs: number;
  readonly idleMs: number;
}

export class ClientConnection implements ParserSink, Downstream {
  readonly socket: Socket;
  readonly ip: string;
  readonly port: number;
  readonly #host: ClientHost;
  #parser: HttpParser | null;
  /** The exchange being answered. */
  #current: Exchange | null = null;
  /** Requests parsed behind it. */
  readonly #queue: Exchange[] = [];
  /** The exchange whose body the parser is reading. */
  #reading: Exchange | null = null;
  /** No more input is parsed (an error, an upgrade, or the end of the connection). */
  #dead = false;
  #closing = false;
  #closed = false;
  #pausedBody = false;
  #pausedQueue = false;
  /** When the head being read began (0: none), when the current request began, last input. */
  #headAt: number;
  #requestAt = 0;
  #lastInput: number;
  /** When the connection was ended by us (0: not yet): past LINGER_MS the sweep destroys it. */
  #endedAt = 0;
  /** Bytes after an upgrade head: the tunnel's first bytes. */
  upgradeRest: Buffer | null = null;
  // -- output gathered during one upstream read
  #corked = false;
  readonly #pending: Array<Buffer | string> = [];
  #pendingBytes = 0;
  /** The socket's buffer is over its mark: the upstream waits for 'drain'. */
  #blocked = false;

  constructor(host: ClientHost, socket: Socket, ip: string, port: number) {
    this.#host = host;
    this.socket = socket;
    this.ip = ip;
    this.port = port;
    const now = host.now;
    // The head timeout runs from the connection's start: a client that never sends is cut too.
    this.#headAt = now;
    this.#lastInput = now;
    const parser = (this.#parser = acquireParser('request', this, MAX_HEADER_SIZE));
    if (!parser.consume(socket)) socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onClose);
    socket.on('drain', this.#onDrain);
    socket.on('error', noop);
  }

  get draining(): boolean {
    return this.#host.draining;
  }

  /** No request in progress or queued (a drain closes such connections at once). */
  get idle(): boolean {
    return this.#current === null && this.#reading === null && this.#queue.length === 0;
  }

  // ---- input ---------------------------------------------------------------------------------

  /** A socket without a stream handle: its reads come as 'data'. */
  readonly #onData = (chunk: Buffer): void => {
    if (this.#dead) return;
    const parser = this.#parser!;
    let n: number;
    try {
      n = parser.execute(chunk);
    } catch (err) {
      return this.#bug(err);
    }
    this.#afterRead(n, chunk);
  };

  /** A read of the consumed socket was parsed. */
  onExecute(n: number): void {
    const parser = this.#parser;
    if (parser === null) return;
    if (parser.threw !== undefined) return this.#bug(parser.threw);
    this.#afterRead(n, null);
    // Input stopped inside a callback (an error, an upgrade): the socket's reads go back to it now.
    if (this.#dead && parser.consuming) {
      parser.unconsume();
      // Ended: what still comes is drained; stopped (an upgrade): it waits for the tunnel.
      if (this.#endedAt !== 0) this.socket.resume();
      else this.socket.pause();
    }
  }

  #afterRead(n: number, chunk: Buffer | null): void {
    const parser = this.#parser!;
    this.#lastInput = this.#host.now;
    if (this.#closed) return this.#releaseParser();
    if (n < 0) return this.#parseError(isHeaderOverflow(parser.errorCode) ? 'header-too-large' : 'bad-request');
    if (this.upgradeRest === EMPTY) {
      // The rest of this read (and everything after) belongs to the tunnel.
      this.upgradeRest = (chunk ?? parser.currentBuffer()).subarray(n);
      this.#stopInput();
    }
  }

  /** A bug of ours inside a parser callback: this connection is lost, the node serves on. */
  #bug(err: unknown): void {
    this.#dead = true;
    this.#host.bug(err);
    this.socket.destroy();
  }

  onMessageBegin(): void {
    // The head timeout runs from a request's first byte.
    if (this.#headAt === 0) this.#headAt = this.#host.now;
  }

  onHead(p: HttpParser): number {
    if (this.#dead) return 0;
    const host = this.#host;
    this.#requestAt = this.#headAt !== 0 ? this.#headAt : host.now;
    this.#headAt = 0;
    const ex = new Exchange(host, this, false, host.now);
    ex.clientIp = this.ip;
    ex.clientPort = this.port;
    const kind = host.prepare(ex, p, this);
    if (kind !== null) {
      // Nothing after a refused head is trusted: answered in its turn, then the connection ends.
      ex.reject = kind;
      ex.bodyEnded = true;
      this.#dead = true;
    } else if (ex.upgrade) {
      ex.bodyEnded = true;
      this.upgradeRest = EMPTY;
      this.#dead = true;
    } else this.#reading = ex;
    this.#enqueue(ex);
    return 0;
  }

  onBody(chunk: Buffer): void {
    this.#reading?.pushBody(chunk);
  }

  onMessageEnd(): void {
    if (this.#dead && this.#reading === null) return;
    const ex = this.#reading;
    if (ex === null) return;
    this.#reading = null;
    this.#requestAt = 0;
    ex.endBody();
    // The response may have ended before the body did (the rest was discarded): next request.
    if (ex.done && this.#current === null) this.#next();
  }

  #enqueue(ex: Exchange): void {
    if (this.#current === null) {
      this.#current = ex;
      this.#start(ex);
      return;
    }
    this.#queue.push(ex);
    if (this.#queue.length >= MAX_QUEUED && !this.#pausedQueue) {
      this.#pausedQueue = true;
      this.#readStop();
    }
  }

  #start(ex: Exchange): void {
    if (ex.upgrade && ex.reject === null) this.#host.tunnel(ex, this);
    else this.#host.serve(ex);
  }

  #parseError(kind: HttpErrorKind): void {
    this.#dead = true;
    this.#stopInput();
    const r = this.#reading;
    this.#reading = null;
    if (r !== null) {
      // Bad framing inside a body: that request is refused (or its response cut).
      if (r === this.#current) return r.fail(kind);
      r.reject = kind;
      return;
    }
    const ex = new Exchange(this.#host, this, false, this.#host.now);
    ex.clientIp = this.ip;
    ex.clientPort = this.port;
    ex.reject = kind;
    ex.bodyEnded = true;
    this.#enqueue(ex);
  }

  /** No more input is parsed; what arrives stays unread (or is drained by #end). */
  #stopInput(): void {
    this.#dead = true;
    const p = this.#parser;
    if (p !== null && p.consuming) {
      // Inside the parse, onExecute gives the reads back once it is over.
      if (p.executing) return p.readStop();
      p.unconsume();
    }
    this.socket.pause();
  }

  #readStop(): void {
    const p = this.#parser;
    if (p !== null && p.consuming) p.readStop();
    else this.socket.pause();
  }

  #readStart(): void {
    const p = this.#parser;
    if (p !== null && p.consuming) p.readStart();
    else this.socket.resume();
  }

  readonly #onEnd = (): void => {
    // The client will send nothing more: answer what is complete, then close.
    const r = this.#reading;
    if (!this.#dead) {
      try {
        this.#parser?.finish();
      } catch (err) {
        return this.#bug(err);
      }
      this.#dead = true;
    }
    if (r !== null && !r.bodyEnded) {
      this.#reading = null;
      if (r === this.#current) r.fail('bad-request');
      else r.reject = 'bad-request';
    }
    if (this.#current === null && this.#queue.length === 0) this.#end();
    else this.#closing = true;
  };

  readonly #onClose = (): void => {
    if (this.#closed) return;
    this.#closed = true;
    this.#dead = true;
    const cur = this.#current;
    this.#current = null;
    cur?.clientGone();
    for (const ex of this.#queue.splice(0)) ex.clientGone();
    if (this.#reading !== null && !this.#reading.done) this.#reading.clientGone();
    this.#reading = null;
    if (this.#parser?.executing !== true) this.#releaseParser();
    this.#host.closed(this);
  };

  #releaseParser(): void {
    const p = this.#parser;
    if (p === null) return;
    this.#parser = null;
    releaseParser(p);
  }

  // ---- timers (the service sweeps its connections) ----------------------------------------

  /** Closes the connection if one of its limits passed; true when it did. */
  sweep(now: number, t: ClientTimeouts): boolean {
    if (this.#closed) return false;
    if (this.#endedAt !== 0) {
      if (now - this.#endedAt < LINGER_MS) return false;
      this.socket.destroy();
      return true;
    }
    if (this.#headAt !== 0 && !this.#dead && now - this.#headAt >= t.headerMs) {
      // Slowloris, or a connection that never sent a request (node:http's headersTimeout).
      if (this.#current === null && this.#queue.length === 0) {
        this.#timeout();
        return true;
      }
    }
    if (this.#requestAt !== 0 && this.#reading !== null && now - this.#requestAt >= t.requestMs) {
      const r = this.#reading;
      this.#reading = null;
      this.#dead = true;
      if (r === this.#current && !r.responded) r.fail('request-timeout');
      else this.socket.destroy();
      return true;
    }
    if (this.idle && this.#headAt === 0 && now - this.#lastInput >= t.idleMs) {
      this.socket.destroy();
      return true;
    }
    return false;
  }

  #timeout(): void {
    this.#stopInput();
    this.#host.answeredError('request-timeout');
    this.#out(errorBytes('request-timeout', true));
    this.#end();
  }

  /** The node drains: an idle keep-alive connection closes now. */
  closeIfIdle(): void {
    if (this.idle && !this.#closed) this.socket.destroy();
  }

  // ---- output (Downstream of the current exchange) ----------------------------------------

  cork(): void {
    this.#corked = true;
  }

  uncork(): void {
    this.#corked = false;
    this.#flush();
  }

  sendContinue(): void {
    if (!this.#closed) this.#out(CONTINUE);
  }

  head(text: string, _status: number, close: boolean): void {
    if (close) this.#closing = true;
    if (text.length > 0) this.#out(text);
  }

  write(chunk: Buffer | string): boolean {
    this.#out(chunk);
    return !this.#blocked;
  }

  end(ex: Exchange, close: boolean): void {
    if (close) this.#closing = true;
    this.#responseDone(ex);
  }

  whole(ex: Exchange, bytes: Buffer, close: boolean): void {
    if (close) this.#closing = true;
    if (!this.#closed) this.#out(bytes);
    this.#responseDone(ex);
  }

  #out(chunk: Buffer | string): void {
    if (!this.#corked) return this.#send(chunk);
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
  }

  #send(chunk: Buffer | string): void {
    const ok = typeof chunk === 'string' ? this.socket.write(chunk, 'latin1') : this.socket.write(chunk);
    if (!ok) this.#blocked = true;
  }

  /** What one upstream read produced: one write, joined when small. */
  #flush(): void {
    const p = this.#pending;
    const n = p.length;
    if (n === 0) return;
    if (n === 1) this.#send(p[0]);
    else if (this.#pendingBytes <= JOIN_BYTES) {
      const b = Buffer.allocUnsafe(this.#pendingBytes);
      let o = 0;
      for (let i = 0; i < n; i++) {
        const c = p[i];
        o += typeof c === 'string' ? b.write(c, o, 'latin1') : c.copy(b, o);
      }
      this.#send(b);
    } else {
      this.socket.cork();
      for (let i = 0; i < n; i++) this.#send(p[i]);
      this.socket.uncork();
    }
    p.length = 0;
    this.#pendingBytes = 0;
  }

  cut(ex: Exchange): void {
    if (this.#current === ex) this.#current = null;
    this.socket.destroy();
  }

  pauseBody(): void {
    if (this.#pausedBody) return;
    this.#pausedBody = true;
    this.#readStop();
  }

  resumeBody(): void {
    if (!this.#pausedBody) return;
    this.#pausedBody = false;
    if (!this.#pausedQueue && !this.#dead) this.#readStart();
  }

  readonly #onDrain = (): void => {
    this.#blocked = false;
    this.#current?.downstreamDrained();
  };

  #responseDone(ex: Exchange): void {
    if (this.#current !== ex) return;
    this.#current = null;
    this.#lastInput = this.#host.now;
    if (this.#closing) return this.#end();
    // The rest of the body is still to be read (and dropped): the next request waits for its end.
    if (this.#reading === ex) {
      if (this.#pausedBody) this.resumeBody();
      return;
    }
    this.#next();
  }

  #next(): void {
    const ex = this.#queue.shift();
    if (this.#pausedQueue && this.#queue.length < MAX_QUEUED) {
      this.#pausedQueue = false;
      if (!this.#pausedBody && !this.#dead) this.#readStart();
    }
    if (ex === undefined) {
      if (this.#dead && this.upgradeRest === null) this.#end();
      return;
    }
    this.#current = ex;
    this.#start(ex);
  }

  /**
   * Ends the connection after what was written: FIN, unread input drained so that the close does
   * not turn into a reset that destroys the response in flight, and a hard stop after LINGER_MS
   * (by the sweep: no timer per connection).
   */
  #end(): void {
    if (this.#closed || this.#endedAt !== 0) return;
    this.#dead = true;
    this.#endedAt = this.#host.now;
    for (const ex of this.#queue.splice(0)) ex.clientGone();
    // The last response may still be gathered (this runs inside an upstream read).
    this.#corked = false;
    this.#flush();
    const s = this.socket;
    const p = this.#parser;
    if (p !== null && p.consuming && !p.executing) p.unconsume();
    s.resume();
    s.end();
  }

  /** Hands the socket over (an upgrade's tunnel): the connection lets go of it. */
  detachSocket(): Socket {
    this.#closed = true;
    this.#dead = true;
    const s = this.socket;
    s.off('data', this.#onData);
    s.off('end', this.#onEnd);
    s.off('close', this.#onClose);
    s.off('drain', this.#onDrain);
    if (this.#parser?.executing !== true) this.#releaseParser();
    this.#host.closed(this);
    return s;
  }
}

const EMPTY = Buffer.alloc(0);

function noop(): void {}
