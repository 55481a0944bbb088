/**
 * One HTTP/2 stream as the engine sees a request: the request source and the response sink
 * (Downstream) of one Exchange, so that routing, the forwarding loop, failover, backends and the
 * peer hop are the engine's own code, shared with HTTP/1.1 (docs/http.md, "HTTP/2").
 *
 * Request: the stream's head becomes the engine's head (h2-head.ts: method, path, Host from
 * :authority, fields minus connection-specific ones); its DATA frames are the body, with
 * back-pressure through the stream (pause/resume hold node:http2's WINDOW_UPDATEs, so the client's
 * flow-control window closes). A body of unknown length goes on chunked (RFC 9112 section 7.1).
 *
 * Response: the engine hands a downstream the response as HTTP/1.1 bytes for the client (head
 * rewritten, body framed), from a backend here or relayed from an owner. This adapter parses them
 * with the engine's llhttp response parser and answers in HTTP/2: HEADERS with `:status` and the
 * fields minus hop-by-hop ones, DATA with the body (chunked framing removed), END_STREAM at the
 * end. So the HTTP/1.1 path does no new work: only a request that came over HTTP/2 pays for the
 * second parse. Trailers are dropped, as on HTTP/1.1.
 */
import { constants, type ServerHttp2Stream } from 'node:http2';
import { acquireParser, releaseParser, SKIP_BODY, type HttpParser, type ParserSink } from './parser.js';
import { Exchange, type Downstream, type ExchangeHost } from './exchange.js';
import type { HttpErrorKind } from './errors.js';
import { firstValues, h2RequestHead, h2ResponseHeaders, headerListSize, H2_MAX_HEADER_LIST_SIZE, type H2RequestHead } from './h2-head.js';

/** The response head the engine writes for a client is at most this (a backend's head is limited to 32 KB; tandem adds Via). */
const RESPONSE_HEAD_MAX = 64 * 1024;

const { NGHTTP2_NO_ERROR, NGHTTP2_INTERNAL_ERROR } = constants;

/** What a stream needs of its service. */
export interface H2StreamHost extends ExchangeHost {
  readonly draining: boolean;
  readonly now: number;
  /** An HTTP/2 request head: fills the exchange (route, key, the head for the next hop) or names the error to answer. */
  prepareH2(ex: Exchange, head: H2RequestHead, bodyUnknownLength: boolean): HttpErrorKind | null;
  serve(ex: Exchange): void;
  bug(err: unknown): void;
}

/** What a stream tells its session (h2-session.ts). */
export interface H2StreamOwner {
  /** The stream closed (response complete, reset by either side, or the session ended). */
  streamClosed(s: H2Stream): void;
  /** The client reset the stream before its response was complete. */
  clientReset(): void;
  /** A head over the header list limit (answered 431). */
  oversized(): void;
}

export class H2Stream implements Downstream, ParserSink {
  readonly stream: ServerHttp2Stream;
  readonly ex: Exchange;
  readonly #host: H2StreamHost;
  readonly #owner: H2StreamOwner;
  #parser: HttpParser | null = null;
  #executing = false;
  /** The response head went out (HEADERS). */
  #headSent = false;
  /** The response is complete (END_STREAM sent) or was cut. */
  #over = false;
  #blocked = false;
  /** When the response was over while the request body was still coming (0: not so). */
  overAt = 0;
  #closed = false;
  #resetByUs = false;

  constructor(host: H2StreamHost, owner: H2StreamOwner, stream: ServerHttp2Stream, raw: readonly string[], ip: string, port: number) {
    this.#host = host;
    this.#owner = owner;
    this.stream = stream;
    const ex = (this.ex = new Exchange(host, this, false, host.now));
    ex.clientIp = ip;
    ex.clientPort = port;
    stream.on('close', this.#onClose);
    stream.on('error', noop);
    const ended = stream.endAfterHeaders;
    let kind: HttpErrorKind | null;
    // nghttp2 holds SETTINGS_MAX_HEADER_LIST_SIZE only once the client acknowledged it: a head
    // sent before (an HPACK bomb right after the preface) is measured here.
    if (headerListSize(raw) > H2_MAX_HEADER_LIST_SIZE) {
      kind = 'header-too-large';
      owner.oversized();
    } else {
      const head = h2RequestHead(raw);
      kind = head.problem !== null ? 'bad-request' : host.prepareH2(ex, head, !ended);
    }
    if (kind !== null) {
      // Refused before routing: answered in its turn; what the client still sends is dropped.
      ex.reject = kind;
      ex.bodyEnded = true;
    } else if (ended) ex.endBody();
    if (!ex.bodyEnded) {
      stream.on('data', this.#onData);
      stream.on('end', this.#onEnd);
    } else if (!ended) stream.on('data', noop);
    stream.on('drain', this.#onDrain);
    host.serve(ex);
  }

  get draining(): boolean {
    return this.#host.draining;
  }

  // ---- request body -------------------------------------------------------------------------

  readonly #onData = (chunk: Buffer): void => {
    this.ex.pushBody(chunk);
  };

  readonly #onEnd = (): void => {
    const ex = this.ex;
    if (!ex.bodyEnded) ex.endBody();
    this.overAt = 0;
  };

  pauseBody(): void {
    this.stream.pause();
  }

  resumeBody(): void {
    this.stream.resume();
  }

  // ---- Downstream: the response --------------------------------------------------------------

  cork(): void {}

  uncork(): void {}

  sendContinue(): void {
    // RFC 9113 section 8.1: an interim response is a HEADERS frame of its own.
    if (this.#closed || this.#headSent) return;
    try {
      this.stream.additionalHeaders({ ':status': 100 });
    } catch {
      /* the stream closed meanwhile */
    }
  }

  head(text: string, _status: number, _close: boolean): void {
    if (text.length > 0) this.#feed(Buffer.from(text, 'latin1'));
  }

  write(chunk: Buffer | string): boolean {
    this.#feed(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
    return !this.#blocked;
  }

  end(ex: Exchange, _close: boolean): void {
    if (!this.#over && this.#parser !== null && !this.#executing) this.#parser.finish();
    // The bytes did not make a whole response: the client must see the truncation.
    if (!this.#over) this.cut(ex);
    this.#release();
  }

  whole(ex: Exchange, bytes: Buffer, close: boolean): void {
    this.#feed(bytes);
    this.end(ex, close);
  }

  cut(_ex: Exchange): void {
    this.#over = true;
    this.#reset(NGHTTP2_INTERNAL_ERROR);
    this.#release();
  }

  /** Resets the stream (a timeout, the session's abuse guard, a cut). */
  #reset(code: number): void {
    if (this.#closed) return;
    this.#resetByUs = true;
    this.stream.close(code);
  }

  /** The request did not arrive within requestMs: 408 if nothing was answered yet, else the stream is cut. */
  timeout(): void {
    const ex = this.ex;
    if (ex.done) return this.#reset(NGHTTP2_NO_ERROR);
    if (ex.responded) return ex.respondCut();
    ex.fail('request-timeout');
  }

  /** The stream ends now (linger over: NO_ERROR; the session cut for abuse: CANCEL). */
  close(code: number = NGHTTP2_NO_ERROR): void {
    this.#reset(code);
  }

  #feed(buf: Buffer): void {
    if (this.#over || this.#closed) return;
    let p = this.#parser;
    if (p === null) p = this.#parser = acquireParser('response', this, RESPONSE_HEAD_MAX);
    this.#executing = true;
    let n: number;
    try {
      n = p.execute(buf);
    } catch (err) {
      n = -1;
      this.#host.bug(err);
    } finally {
      this.#executing = false;
    }
    // Bytes after the response (an error body after a HEAD's head) are not for the client.
    if (n < 0 && !this.#over) this.cut(this.ex);
    if (this.#over) this.#release();
  }

  // ---- ParserSink: the response bytes the engine made for the client ---------------------------

  onHead(p: HttpParser): number {
    if (this.#headSent || this.#over) return 0;
    const status = p.statusCode;
    // Interim responses were answered (100) or dropped by the engine; none reach here.
    if (status < 200) return 0;
    this.#headSent = true;
    const head = this.ex.method === 'HEAD';
    const headers = h2ResponseHeaders(status, p.headers);
    if (this.#closed) return head ? SKIP_BODY : 0;
    try {
      this.stream.respond(headers);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ERR_HTTP2_HEADER_SINGLE_VALUE') throw err;
      // A field HTTP/2 takes once came repeated from the backend: its first value goes on.
      this.stream.respond(firstValues(headers));
    }
    return head ? SKIP_BODY : 0;
  }

  onBody(chunk: Buffer): void {
    if (this.#closed || this.#over) return;
    if (!this.stream.write(chunk)) this.#blocked = true;
  }

  onMessageEnd(): void {
    if (this.#over) return;
    this.#over = true;
    if (this.#closed) return;
    if (!this.stream.writableEnded) this.stream.end();
    // RFC 9113 section 8.1: a complete response before the whole request; the rest is read and dropped, up to the linger.
    if (!this.ex.bodyEnded) this.overAt = this.#host.now;
  }

  readonly #onDrain = (): void => {
    this.#blocked = false;
    this.ex.downstreamDrained();
  };

  readonly #onClose = (): void => {
    if (this.#closed) return;
    this.#closed = true;
    const ex = this.ex;
    const code = this.stream.rstCode ?? NGHTTP2_NO_ERROR;
    if (!this.#over && !this.#resetByUs && code !== NGHTTP2_NO_ERROR) this.#owner.clientReset();
    if (!ex.done) ex.clientGone();
    this.#release();
    this.#owner.streamClosed(this);
  };

  #release(): void {
    const p = this.#parser;
    if (p === null || this.#executing) return;
    this.#parser = null;
    releaseParser(p);
  }
}

function noop(): void {}
