/**
 * llhttp, the HTTP/1.1 parser Node itself uses, through Node's own binding (`_http_common`'s
 * HTTPParser): strict mode, no lenient flag, so the request-smuggling shapes — conflicting
 * Content-Length, Content-Length with Transfer-Encoding, bad chunk framing, obs-fold, bare CR or
 * LF, invalid tokens — are refused by the same code that guards node:http. Nothing here parses a
 * byte by hand.
 *
 * The binding calls back by slot number (kOnHeaders, kOnHeadersComplete, kOnBody,
 * kOnMessageComplete); the signatures used here are the same from Node 20 to 26 (lib/_http_common.js):
 *   kOnHeaders(headers, url)                    head flushed in parts (> 32 fields or a split read); trailers
 *   kOnHeadersComplete(major, minor, headers, method, url, statusCode, statusMessage, upgrade, keepAlive)
 *                                               headers/url undefined when they came through kOnHeaders;
 *                                               returns 0, or 1 for "no body" (a response to HEAD)
 *   kOnBody(chunk)                              a copy of the body bytes
 *   kOnMessageComplete()
 *   kOnMessageBegin()                           the first byte of a message
 * execute(buffer) returns the bytes parsed (less than the buffer after an upgrade head) or an Error
 * with `code` (HPE_*) and `bytesParsed`. Like node:http's server, a parser may also `consume` a
 * socket's stream handle: the binding then reads the socket itself into its own buffer (no
 * JavaScript Buffer per read), parses, and reports each read through kOnExecute(bytes | Error).
 * Callbacks run inside the binding's read handler there, so the wrapper never lets an exception
 * out of them: it is kept in `threw` and the owner drops the connection.
 *
 * Parsers are reused (a free list, as Node's `parsers`): the native object and the callbacks bound
 * to it are made once, not per connection or per message.
 */
import { createRequire } from 'node:module';
import { METHODS } from 'node:http';

/** The native binding could not be loaded: this Node does not expose llhttp the way tandem needs. */
export class ParserUnavailableError extends Error {
  readonly code = 'TANDEM_HTTP_PARSER_UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ParserUnavailableError';
  }
}

interface NativeError {
  readonly code?: string;
  readonly bytesParsed?: number;
}

interface NativeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(buf: Buffer): number | NativeError | undefined;
  finish(): NativeError | undefined;
  consume(handle: object): void;
  unconsume(): void;
  getCurrentBuffer(): Buffer;
  remove?(): void;
  free?(): void;
  close(): void;
  [slot: number]: unknown;
}

interface NativeParserClass {
  new (): NativeParser;
  readonly REQUEST: number;
  readonly RESPONSE: number;
  readonly kOnMessageBegin: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
  readonly kOnExecute: number;
}

function loadBinding(): NativeParserClass {
  let P: NativeParserClass | undefined;
  try {
    P = (createRequire(import.meta.url)('_http_common') as { HTTPParser?: NativeParserClass }).HTTPParser;
  } catch (err) {
    throw new ParserUnavailableError(`llhttp binding not available in Node ${process.version}: require('_http_common') failed`, { cause: err });
  }
  const slots = P && [P.REQUEST, P.RESPONSE, P.kOnMessageBegin, P.kOnHeaders, P.kOnHeadersComplete, P.kOnBody, P.kOnMessageComplete, P.kOnExecute];
  if (typeof P !== 'function' || !slots!.every((n) => typeof n === 'number')) {
    throw new ParserUnavailableError(`llhttp binding not available in Node ${process.version}: _http_common has no usable HTTPParser`);
  }
  return P;
}

let Native: NativeParserClass | null = null;
/** llhttp method number → name, found by parsing each method once (the binding's tables are internal). */
let methodNames: string[] = [];
const RESOURCE = Object.freeze({});

/**
 * Loads the binding and learns its method numbers. Called by the HTTP service at start-up so that a
 * Node without it fails there, with ParserUnavailableError, rather than on the first request.
 */
export function ensureParser(): void {
  if (Native !== null) return;
  const P = loadBinding();
  const names: string[] = [];
  const probe = new P();
  let got = -1;
  probe[P.kOnMessageBegin] = null;
  probe[P.kOnHeaders] = noop;
  probe[P.kOnHeadersComplete] = (_a: number, _b: number, _h: unknown, method: number): number => ((got = method), 0);
  probe[P.kOnBody] = noop;
  probe[P.kOnMessageComplete] = noop;
  probe[P.kOnExecute] = null;
  for (const m of METHODS) {
    probe.initialize(P.REQUEST, RESOURCE, 0, 0);
    const r = probe.execute(Buffer.from(`${m} / HTTP/1.1\r\nHost: x\r\n\r\n`, 'latin1'));
    if (typeof r === 'number' && got >= 0) names[got] = m;
    got = -1;
  }
  probe.close();
  if (names[1] !== 'GET' && !names.includes('GET')) throw new ParserUnavailableError(`llhttp binding in Node ${process.version} does not report methods as expected`);
  methodNames = names;
  Native = P;
}

function noop(): void {}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/** What a parser reports to its owner (a client connection, a backend connection, a peer stream). */
export interface ParserSink {
  /** The first byte of a message arrived (only when the parser was acquired with `begin`). */
  onMessageBegin?(): void;
  /** The head is complete (fields in `p.headers`). Return SKIP_BODY for a message without body (a response to HEAD). */
  onHead(p: HttpParser): number;
  onBody(chunk: Buffer): void;
  onMessageEnd(): void;
  /** A read of a consumed socket was parsed: `n` bytes, or -1 on a parse error (errorCode). */
  onExecute?(n: number): void;
}

/** The stream handle of a net.Socket, as node:http's server uses it to let the parser read. */
interface StreamHandle {
  isStreamBase?: boolean;
  _consumed?: boolean;
  reading?: boolean;
  readStart(): number;
  readStop(): number;
}

export const SKIP_BODY = 1;
export type ParserKind = 'request' | 'response';

/** One llhttp parser with its message's head; reused through acquireParser / releaseParser. */
export class HttpParser {
  readonly kind: ParserKind;
  readonly #native: NativeParser;
  #sink: ParserSink | null = null;
  /** Field lines of the current head, flat `[name, value, …]` as received. */
  headers: string[] = [];
  /** Request target (request parsers). */
  url = '';
  /** Method name (request parsers); '' when llhttp reports one tandem does not know. */
  method = '';
  statusCode = 0;
  statusMessage = '';
  versionMajor = 1;
  versionMinor = 1;
  /** llhttp saw an upgrade (Connection: upgrade + Upgrade, or CONNECT / a 101). */
  upgrade = false;
  /** llhttp's keep-alive verdict for this message (version, Connection). */
  keepAlive = true;
  /** After a failed execute/finish: the llhttp error code (HPE_*) and where it stopped. */
  errorCode = '';
  errorPos = 0;
  /** Between onHead and onMessageEnd. */
  inBody = false;
  /** An exception thrown by the sink inside a callback; the parser ignores the rest of that connection. */
  threw: unknown = undefined;
  #partial = false;
  /** Inside the binding's parse of a read (a callback may run; releasing or unconsuming must wait). */
  executing = false;
  #handle: StreamHandle | null = null;

  constructor(kind: ParserKind) {
    const P = Native!;
    this.kind = kind;
    const n = new P();
    n[P.kOnMessageBegin] = null;
    n[P.kOnHeaders] = this.#onHeaders;
    n[P.kOnHeadersComplete] = this.#onHeadersComplete;
    n[P.kOnBody] = this.#onBody;
    n[P.kOnMessageComplete] = this.#onMessageComplete;
    n[P.kOnExecute] = null;
    this.#native = n;
  }

  /** Ready for a new connection's messages. */
  reset(sink: ParserSink, maxHeaderSize: number): void {
    const P = Native!;
    this.#sink = sink;
    this.#native[P.kOnMessageBegin] = sink.onMessageBegin === undefined ? null : this.#onMessageBegin;
    this.#native[P.kOnExecute] = null;
    this.#native.initialize(this.kind === 'request' ? P.REQUEST : P.RESPONSE, RESOURCE, maxHeaderSize, 0);
    this.threw = undefined;
    this.executing = false;
    this.headers = [];
    this.url = '';
    this.#partial = false;
    this.inBody = false;
    this.errorCode = '';
    this.errorPos = 0;
  }

  /**
   * Parses `buf`. Returns the bytes consumed — all of them, or fewer after an upgrade head (the
   * rest belongs to the new protocol) — or -1 on a parse error (errorCode, errorPos). Exceptions
   * thrown by the sink propagate.
   */
  execute(buf: Buffer): number {
    this.executing = true;
    const r = this.#native.execute(buf);
    this.executing = false;
    if (this.threw !== undefined) throw asError(this.threw);
    if (typeof r === 'number') return r;
    return this.#failed(r);
  }

  /**
   * Lets the binding read `socket` itself (node:http's server does the same); reads are reported
   * through the sink's onExecute. False when the socket has no stream handle to give (a wrapped
   * stream): then feed execute() from 'data'.
   */
  consume(socket: object): boolean {
    const h = (socket as { _handle?: StreamHandle | null })._handle;
    if (h == null || h.isStreamBase !== true || h._consumed === true) return false;
    h._consumed = true;
    this.#handle = h;
    this.#native[Native!.kOnExecute] = this.#onExecute;
    this.#native.consume(h);
    return true;
  }

  get consuming(): boolean {
    return this.#handle !== null;
  }

  /** Gives the socket's reads back to its own stream (not while `executing`). */
  unconsume(): void {
    const h = this.#handle;
    if (h === null) return;
    this.#handle = null;
    this.#native[Native!.kOnExecute] = null;
    this.#native.unconsume();
    h._consumed = false;
  }

  /** While consuming: stop or restart reading the socket (flow control). */
  readStop(): void {
    const h = this.#handle;
    if (h === null || h.reading === false) return;
    h.reading = false;
    h.readStop();
  }

  readStart(): void {
    const h = this.#handle;
    if (h === null || h.reading === true) return;
    h.reading = true;
    h.readStart();
  }

  /** A copy of the read being parsed (inside onExecute): the bytes after an upgrade head are in it. */
  currentBuffer(): Buffer {
    return this.#native.getCurrentBuffer();
  }

  /** The peer ended its side: completes a message delimited by the close; -1 if one was cut short. */
  finish(): number {
    this.executing = true;
    const r = this.#native.finish();
    this.executing = false;
    if (this.threw !== undefined) throw asError(this.threw);
    return r === undefined ? 0 : this.#failed(r);
  }

  #failed(r: NativeError | undefined): number {
    this.errorCode = r?.code ?? 'HPE_UNKNOWN';
    this.errorPos = r?.bytesParsed ?? 0;
    return -1;
  }

  /** Detaches from its owner (before going back to the free list). */
  detach(): void {
    this.unconsume();
    this.#sink = null;
    this.headers = [];
  }

  close(): void {
    this.unconsume();
    this.#sink = null;
    this.#native.close();
  }

  readonly #onExecute = (r: number | NativeError): void => {
    this.executing = false;
    const n = typeof r === 'number' ? r : this.#failed(r);
    if (this.threw !== undefined) return this.#sink?.onExecute?.(-1);
    this.#sink?.onExecute?.(n);
  };

  readonly #onMessageBegin = (): void => {
    this.executing = true;
    if (this.threw !== undefined) return;
    try {
      this.#sink?.onMessageBegin?.();
    } catch (err) {
      this.threw = err;
    }
  };

  readonly #onHeaders = (headers: string[], url: string): void => {
    this.executing = true;
    // After the head: trailer fields of a chunked body, which tandem does not pass on.
    if (this.inBody) return;
    if (!this.#partial) {
      this.#partial = true;
      this.headers = [];
      this.url = '';
    }
    for (let i = 0; i < headers.length; i++) this.headers.push(headers[i]);
    if (url) this.url += url;
  };

  readonly #onHeadersComplete = (major: number, minor: number, headers: string[] | undefined, method: number | undefined, url: string | undefined, statusCode: number | undefined, statusMessage: string | undefined, upgrade: boolean, keepAlive: boolean): number => {
    if (this.#partial) {
      this.#partial = false;
      if (headers !== undefined) for (let i = 0; i < headers.length; i++) this.headers.push(headers[i]);
      if (url !== undefined) this.url += url;
    } else {
      this.headers = headers ?? [];
      this.url = url ?? '';
    }
    this.versionMajor = major;
    this.versionMinor = minor;
    this.method = method === undefined ? '' : (methodNames[method] ?? '');
    this.statusCode = statusCode ?? 0;
    this.statusMessage = statusMessage ?? '';
    this.upgrade = upgrade;
    this.keepAlive = keepAlive;
    this.inBody = true;
    this.executing = true;
    if (this.#sink === null || this.threw !== undefined) return 0;
    try {
      return this.#sink.onHead(this);
    } catch (err) {
      this.threw = err;
      return 0;
    }
  };

  readonly #onBody = (chunk: Buffer): void => {
    this.executing = true;
    if (this.threw !== undefined) return;
    try {
      this.#sink?.onBody(chunk);
    } catch (err) {
      this.threw = err;
    }
  };

  readonly #onMessageComplete = (): void => {
    this.inBody = false;
    this.executing = true;
    if (this.threw !== undefined) return;
    try {
      this.#sink?.onMessageEnd();
    } catch (err) {
      this.threw = err;
    }
  };
}

const FREE_MAX = 1000;
const freeRequest: HttpParser[] = [];
const freeResponse: HttpParser[] = [];

/** A parser of `kind` for `sink`, from the free list when one is there. */
export function acquireParser(kind: ParserKind, sink: ParserSink, maxHeaderSize: number): HttpParser {
  if (Native === null) ensureParser();
  const p = (kind === 'request' ? freeRequest : freeResponse).pop() ?? new HttpParser(kind);
  p.reset(sink, maxHeaderSize);
  return p;
}

/** Back to the free list (or closed when the list is full). Never call from inside the parser's own callbacks. */
export function releaseParser(p: HttpParser): void {
  p.detach();
  p.threw = undefined;
  const list = p.kind === 'request' ? freeRequest : freeResponse;
  if (list.length < FREE_MAX) list.push(p);
  else p.close();
}

/** Parse errors that mean "head too large" (431) rather than "malformed" (400). */
export function isHeaderOverflow(code: string): boolean {
  return code === 'HPE_HEADER_OVERFLOW';
}
