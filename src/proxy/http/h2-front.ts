/**
 * The HTTP/2 front of an http service with `tls:` (docs/http.md, "HTTP/2"): a TLS connection that
 * negotiated `h2` (ALPN, RFC 7301) becomes a node:http2 server session, and each of its streams an
 * exchange of the engine (h2-stream.ts) routed by the same rule as an HTTP/1.1 request.
 *
 * The node:http2 Server here never listens: TlsListener made the TLS connection (SNI, session
 * tickets, its metrics) and the Server only turns it into a session, by
 * `server.emit('connection', tlsSocket)` — the documented way to hand a socket to a net.Server,
 * which node:http2's connection listener takes as it takes its own (it checks the socket's ALPN).
 *
 * Limits node:http2 enforces (options below; Node 20 to 26 take the same ones):
 *  - SETTINGS_MAX_CONCURRENT_STREAMS 100: further streams are refused (RST_STREAM);
 *  - SETTINGS_MAX_HEADER_LIST_SIZE 32 KB and 128 fields: a larger head (an HPACK bomb, whose
 *    decoded size is what counts) is refused with RST_STREAM ENHANCE_YOUR_CALM before it is
 *    buffered further — once the client acknowledged the setting: before that nghttp2 applies only
 *    its own ceiling and maxSessionMemory, so h2-stream.ts checks the size again (431);
 *  - maxSessionInvalidFrames 100, maxSessionRejectedStreams 100: past them the session ends;
 *  - maxOutstandingPings / maxOutstandingSettings 10 (ours, unanswered), maxSessionMemory 10 MB;
 *  - nghttp2 (1.57+, bundled since Node 20.9) caps stream resets per second, and (1.61+, Node
 *    20.12.1+) CONTINUATION frames per header block; it ends a session whose client does not read
 *    the frames it is answered (outbound queue), as a flood.
 * What it does not bound per client is the abuse guard of h2-session.ts.
 */
import { createServer, type Http2Server, type ServerHttp2Session, type ServerOptions } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { normalizeAddress } from '../../flowkey/index.js';
import { H2_MAX_HEADER_LIST_SIZE, H2_MAX_HEADER_PAIRS } from './h2-head.js';
import { H2Session, type H2SessionFront, type H2Timeouts } from './h2-session.js';
import type { H2StreamHost } from './h2-stream.js';
import { H2Metrics } from './h2-metrics.js';

export const H2_MAX_CONCURRENT_STREAMS = 100;

/** node:http2 takes maxOutstandingSettings (Node 20+) though @types/node does not list it. */
const OPTIONS: ServerOptions & { readonly maxOutstandingSettings: number } = {
  maxSessionInvalidFrames: 100,
  maxSessionRejectedStreams: 100,
  maxOutstandingPings: 10,
  maxOutstandingSettings: 10,
  maxHeaderListPairs: H2_MAX_HEADER_PAIRS,
  maxSessionMemory: 10,
  peerMaxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS,
  settings: {
    maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS,
    maxHeaderListSize: H2_MAX_HEADER_LIST_SIZE,
    enablePush: false,
  },
};

export interface H2FrontOptions {
  readonly service: string;
  readonly host: H2StreamHost;
  readonly registry: Registry;
  readonly logger: Logger;
  /** A new client connection (the service tombstones `connection` flow keys when it closes). */
  readonly opened?: (socket: TLSSocket, ip: string, port: number) => void;
}

export class H2Front implements H2SessionFront {
  readonly host: H2StreamHost;
  readonly metrics: H2Metrics;
  readonly logger: Logger;
  readonly service: string;
  readonly #server: Http2Server;
  readonly #sessions = new Set<H2Session>();
  readonly #opened: H2FrontOptions['opened'];
  #closed = false;

  constructor(o: H2FrontOptions) {
    this.host = o.host;
    this.service = o.service;
    this.logger = o.logger;
    this.metrics = new H2Metrics(o.registry, o.service);
    this.#opened = o.opened;
    this.#server = createServer(OPTIONS);
    this.#server.on('session', this.#onSession);
  }

  /** Open HTTP/2 connections. */
  get size(): number {
    return this.#sessions.size;
  }

  /** A TLS connection that negotiated h2. */
  accept(socket: TLSSocket): void {
    if (this.#closed || socket.remoteAddress === undefined) return void socket.destroy();
    this.#server.emit('connection', socket);
  }

  readonly #onSession = (session: ServerHttp2Session): void => {
    const socket = session.socket as TLSSocket;
    const ip = normalizeAddress(socket.remoteAddress ?? '');
    const port = socket.remotePort ?? 0;
    this.metrics.session();
    this.#sessions.add(new H2Session(this, session, ip, port));
    this.#opened?.(socket, ip, port);
  };

  sessionClosed(s: H2Session): void {
    this.#sessions.delete(s);
  }

  sweep(now: number, t: H2Timeouts): void {
    for (const s of this.#sessions) s.sweep(now, t);
  }

  /** The node drains: GOAWAY to every session; open streams finish. */
  drain(): void {
    for (const s of this.#sessions) s.close();
  }

  close(): void {
    this.#closed = true;
    for (const s of [...this.#sessions]) s.destroy();
  }
}
