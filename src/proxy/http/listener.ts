/**
 * The client-facing node:http listener of a service and its limits. node:http's own strict parser
 * (insecureHTTPParser off) refuses the request-smuggling shapes: conflicting Content-Length,
 * Content-Length with Transfer-Encoding, bad chunk framing, obs-fold, bare CR/LF.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ServiceConfig } from '../../config/schema.js';
import { clientErrorKind, endWithError, type HttpErrorKind } from './errors.js';

/** Client request head limit; larger gets 431 (node:http's default, the usual 16 KB). */
export const MAX_HEADER_SIZE = 16 * 1024;

export function createClientServer(cfg: ServiceConfig): Server {
  const t = cfg.timeouts;
  const server = createServer({
    // Slowloris: the whole head must arrive within headerMs; the whole request within requestMs.
    headersTimeout: Math.min(t.headerMs, t.requestMs),
    requestTimeout: t.requestMs,
    keepAliveTimeout: t.idleMs,
    // How often node:http looks for connections past those limits (its default is 30 s).
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(t.headerMs / 4))),
    maxHeaderSize: MAX_HEADER_SIZE,
    insecureHTTPParser: false,
    // Checked by the proxy instead, so that the 400 carries a tandem-error code like every other error.
    requireHostHeader: false,
    noDelay: true,
  });
  server.maxConnections = cfg.maxConnections;
  return server;
}

/** A reload's new limits (node:http reads them per connection / per check). */
export function applyLimits(server: Server, cfg: ServiceConfig): void {
  const t = cfg.timeouts;
  server.headersTimeout = Math.min(t.headerMs, t.requestMs);
  server.requestTimeout = t.requestMs;
  server.keepAliveTimeout = t.idleMs;
  server.maxConnections = cfg.maxConnections;
}

/**
 * Stops accepting and waits up to `timeoutMs` for open connections to finish; idle keep-alive
 * connections are closed as they become idle (responses meanwhile say Connection: close).
 */
export async function drainServer(server: Server, timeoutMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const reaper = setInterval(() => server.closeIdleConnections(), 100);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
  await Promise.race([closed, timeout]);
  clearInterval(reaper);
  clearTimeout(timer);
}

/**
 * node:http's 'clientError' (parse error, head too large, head or request timeout): answers with
 * the matching error and closes, unless a response is already under way on the connection
 * (node:http's own rule), then only closes. Returns the error answered, or null.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): HttpErrorKind | null {
  const pending = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || (pending && pending.headersSent)) {
    socket.destroy();
    return null;
  }
  const kind = clientErrorKind(err.code);
  // Only a response to an earlier, complete request is waited for; a pending response whose own
  // request failed mid-body is that request's, and the error is answered now.
  if (pending && !pending.writableFinished && pending.req?.complete) {
    // RFC 9112 section 9.3.2: responses go in request order. A bad request pipelined behind a
    // good one is answered after the good one's response, then the connection closes.
    const answer = () => (socket.writable ? endWithError(socket, kind) : socket.destroy());
    pending.once('finish', answer);
    pending.once('close', () => (pending.writableFinished ? undefined : socket.destroy()));
    return kind;
  }
  endWithError(socket, kind);
  return kind;
}
