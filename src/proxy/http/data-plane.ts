/**
 * The peer side of HTTP forwarding: authenticated 'http' streams from peers (the cluster transport
 * did the mutual authentication) are fed into one internal node:http server per node, which parses
 * the forwarded requests and hands each to its service's proxy. A forwarded request is served here
 * and never forwarded again (DESIGN.md section 1).
 *
 * Because the stream is authenticated, the x-tandem-* fields on it are trusted; the client-facing
 * listeners drop those fields from client requests, so a client can never forge them.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ProxyContext } from '../context.js';
import type { HttpServiceProxy } from './service.js';
import { sendError, endWithError } from './errors.js';
import { H_SERVICE } from './headers.js';
import { PEER_MAX_HEADER_SIZE, PEER_SERVER_KEEP_ALIVE_MS } from './peer-pool.js';

function noop(): void {}

/** The x-tandem-service value, found without building req.headers. */
function serviceOf(raw: readonly string[]): string | undefined {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    if (name.length === H_SERVICE.length && name.toLowerCase() === H_SERVICE) return raw[i + 1];
  }
  return undefined;
}

export class HttpDataPlane {
  readonly #ctx: ProxyContext;
  readonly #lookup: (service: string) => HttpServiceProxy | undefined;
  readonly #server: Server;
  readonly #sockets = new Set<Duplex>();
  #started = false;
  #stopped = false;

  constructor(ctx: ProxyContext, lookup: (service: string) => HttpServiceProxy | undefined) {
    this.#ctx = ctx;
    this.#lookup = lookup;
    this.#server = createServer({
      // Peers keep connections open longer than the forwarding side does, so that the forwarding
      // side always closes first and never sends on a connection being closed under it.
      keepAliveTimeout: PEER_SERVER_KEEP_ALIVE_MS,
      headersTimeout: 30_000,
      // The receiving node already bounds the client's request time; a forwarded body streams.
      requestTimeout: 0,
      maxHeaderSize: PEER_MAX_HEADER_SIZE,
      insecureHTTPParser: false,
      requireHostHeader: false,
      noDelay: true,
    });
    this.#server.on('request', this.#onRequest);
    this.#server.on('upgrade', this.#onUpgrade);
    this.#server.on('clientError', (_err: Error, socket: Duplex) => endWithError(socket, 'bad-request'));
  }

  /** Registers for the 'http' channel; call once per node, after the cluster transport exists. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#ctx.dataPlane.onChannel('http', this.#onSocket);
  }

  /** Closes every peer connection (in-flight forwarded requests are cut). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#server.closeAllConnections();
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }

  /** Open peer streams, for tests and metrics. */
  get connections(): number {
    return this.#sockets.size;
  }

  #onSocket = (socket: Duplex, _peerId: string): void => {
    if (this.#stopped) {
      socket.destroy();
      return;
    }
    const sockets = this.#sockets;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', noop);
    (socket as Partial<Socket>).setNoDelay?.(true);
    this.#server.emit('connection', socket);
    // The transport hands sockets over paused (bytes sent right after the handshake unshifted).
    socket.resume();
  };

  #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const name = serviceOf(req.rawHeaders);
    const proxy = name === undefined ? undefined : this.#lookup(name);
    if (proxy?.draining) {
      // This node is stopping and has handed its flows over: close without a response, which
      // the forwarding node reads as "failed before any byte" and retries on the flow's next owner.
      req.socket.destroy();
      return;
    }
    if (proxy === undefined) {
      // The peers disagree about the services (a reload in progress): the sender gets a 503.
      sendError(res, name === undefined ? 'bad-request' : 'unknown-service', !req.complete);
      return;
    }
    proxy.serveForwarded(req, res);
  };

  #onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const name = serviceOf(req.rawHeaders);
    const proxy = name === undefined ? undefined : this.#lookup(name);
    if (proxy === undefined) return endWithError(socket, name === undefined ? 'bad-request' : 'unknown-service');
    proxy.serveForwardedUpgrade(req, socket, head);
  };
}
