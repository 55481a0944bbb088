/**
 * TLS termination for a service: accepted TCP connections in, secured ones out. The HTTP engine
 * owns the listening socket; for every accepted connection it calls `accept(socket)`, and gets
 * `onSecure(tlsSocket, alpn)` once the handshake is done (alpn `h2` or `http/1.1`; a client that
 * negotiates no ALPN speaks HTTP/1.1).
 *
 * How a connection is handled:
 *   1. The ClientHello is read first, bounded in bytes and time (client-hello.ts, peek.ts), and put
 *      back untouched. Junk, plain HTTP (answered 400 `plain-http`), oversized or malformed hellos
 *      end there, counted.
 *   2. Its server name picks the certificate (store.ts); its session ticket, if any, names the
 *      ticket-key epoch that can open it (ticket-keys.ts).
 *   3. The connection goes to a node:tls Server made for that epoch — a Server is never listening
 *      here; it gets connections by `server.emit('connection', socket)`, the documented way to hand
 *      a net.Socket to a net.Server. Two Servers per epoch: one whose own context holds the default
 *      certificate (no SNI, or a name nothing else covers), and one without a certificate of its own
 *      whose SNICallback hands node:tls the chosen certificate's context. Without a certificate of
 *      its own, node:tls's SNI switch cannot leave the default's certificate beside the chosen one
 *      (Node adds the SNI certificate to the connection rather than replacing the context, so an
 *      ECDSA default would otherwise win over an RSA certificate for another name).
 *
 * Why one Server per ticket-key epoch: node:tls takes one ticket key set per context (`ticketKeys`)
 * and exposes no ticket-key callback, so a context can open only tickets of its own keys. OpenSSL
 * encrypts and decrypts tickets with the keys of the connection's initial context (SSL_CTX
 * session_ctx, which the SNI switch leaves alone), and the ClientHello names the key of the ticket
 * it offers. Routing the connection to the Server holding that key before the handshake starts
 * keeps the previous epoch's tickets (and the next's, for clocks a little ahead) resumable after a
 * rotation, with public APIs only. New tickets are issued under the current epoch's keys.
 */
import type { Socket } from 'node:net';
import { constants } from 'node:crypto';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ServiceTlsConfig } from '../config/schema.js';
import type { EpochSecretSource } from '../cluster/ticket-key-share.js';
import { ClientHelloReader, DEFAULT_MAX_CLIENT_HELLO_BYTES, type ClientHelloProblem } from './client-hello.js';
import { peekFirstBytes } from './peek.js';
import { CertificateStore } from './store.js';
import { CIPHERS, ECDH_CURVES, MIN_TLS_VERSION, SESSION_LIFETIME_S, sessionIdContext } from './options.js';
import { ServiceTicketKeys } from './ticket-keys.js';
import { ServiceTlsMetrics, type HandshakeFailure } from './metrics.js';

export type Alpn = 'h2' | 'http/1.1';
/** What the HTTP engine (http/1.1) or the HTTP/2 front (h2) does with a secured connection. */
export type SecureHandler = (socket: TLSSocket, alpn: Alpn) => void;

export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface TlsListenerOptions {
  readonly service: string;
  readonly clusterName: string;
  readonly tls: ServiceTlsConfig;
  readonly store: CertificateStore;
  /** Epoch secrets: the cluster's share for `cluster`, a LocalEpochSecrets for `node`, null for `off`. */
  readonly tickets: EpochSecretSource | null;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly onSecure: SecureHandler;
  /** Bounds reading the ClientHello, and then the handshake (each). Default 10 s. */
  readonly handshakeTimeoutMs?: number;
  readonly maxClientHelloBytes?: number;
  /** Wall clock (tests). */
  readonly now?: () => number;
}

export interface TlsListenerStats {
  readonly handshakes: number;
  readonly resumed: number;
  readonly failures: number;
  readonly certificates: ReadonlyArray<{ readonly names: readonly string[]; readonly notAfter: number }>;
}

interface Route {
  readonly epoch: number | null;
  /** The ticket-key name its Servers were made with (an epoch's secret can be replaced: a local stand-in by the cluster's). */
  readonly keyName: string | null;
  /** Holds the default certificate itself. */
  readonly byDefault: TlsServer;
  /** No certificate of its own: SNICallback gives the chosen one. */
  readonly bySni: TlsServer;
}

const PLAIN_HTTP_BODY = 'This port speaks HTTPS (TLS): send the request with https://\n';
const PLAIN_HTTP_RESPONSE = Buffer.from(
  `HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${PLAIN_HTTP_BODY.length}\r\ntandem-error: plain-http\r\nconnection: close\r\n\r\n${PLAIN_HTTP_BODY}`,
  'latin1',
);

const FAILURE_BY_PROBLEM: Record<ClientHelloProblem, HandshakeFailure> = {
  'plain-http': 'plain-http',
  'not-tls': 'not-tls',
  oversized: 'oversized',
  malformed: 'malformed',
};

/** Maps a node:tls handshake error to a failure reason (Node's codes mirror OpenSSL's reasons). */
export function classifyTlsError(err: unknown): HandshakeFailure {
  const code = (err as { code?: string } | null)?.code ?? '';
  switch (code) {
    case 'ERR_TLS_HANDSHAKE_TIMEOUT':
      return 'timeout';
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ERR_STREAM_PREMATURE_CLOSE':
      return 'reset';
    case 'ERR_SSL_NO_SHARED_CIPHER':
      return 'no-shared-cipher';
    case 'ERR_SSL_UNSUPPORTED_PROTOCOL':
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_VERSION_TOO_LOW':
    case 'ERR_SSL_NO_PROTOCOLS_AVAILABLE':
      return 'protocol-version';
    case 'ERR_SSL_NO_APPLICATION_PROTOCOL':
    case 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL':
      return 'alpn';
    case 'ERR_TLS_RENEGOTIATION_DISABLED':
    case 'ERR_TLS_SESSION_ATTACK':
      return 'renegotiation';
  }
  if (code.startsWith('ERR_SSL_SSLV3_ALERT_') || code.startsWith('ERR_SSL_TLSV1_ALERT_') || code.startsWith('ERR_SSL_TLSV13_ALERT_')) return 'client-alert';
  return 'other';
}

export class TlsListener {
  readonly #o: TlsListenerOptions;
  readonly #m: ServiceTlsMetrics;
  readonly #timeoutMs: number;
  readonly #maxHello: number;
  readonly #now: () => number;
  readonly #sid: string;
  readonly #keys: ServiceTicketKeys;
  #tls: ServiceTlsConfig;
  #tickets: EpochSecretSource | null;
  #routes = new Map<number | null, Route>();
  #closed = false;
  #handshakes = 0;
  #resumed = 0;
  #failures = 0;

  constructor(o: TlsListenerOptions) {
    this.#o = o;
    this.#m = new ServiceTlsMetrics(o.registry, o.service);
    this.#timeoutMs = o.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.#maxHello = o.maxClientHelloBytes ?? DEFAULT_MAX_CLIENT_HELLO_BYTES;
    this.#now = o.now ?? Date.now;
    this.#sid = sessionIdContext(o.clusterName, o.service);
    this.#keys = new ServiceTicketKeys(this.#sid);
    this.#tls = o.tls;
    this.#tickets = o.tls.sessionTickets === 'off' ? null : o.tickets;
    if (o.tls.sessionTickets !== 'off' && o.tickets === null) throw new TypeError(`service ${o.service}: sessionTickets ${o.tls.sessionTickets} needs a ticket-key source`);
    o.store.on('change', this.#onStoreChange);
    this.#tickets?.on('change', this.#onKeysChange);
    this.#keys.update(this.#tickets?.window() ?? []);
    this.#rebuild();
    this.#m.certificates(o.store.certificates.map((c) => c.info.notAfter));
  }

  /** Take an accepted connection: read its ClientHello, hand it to node:tls, then to onSecure. */
  accept(socket: Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    const reader = new ClientHelloReader(this.#maxHello);
    peekFirstBytes(
      socket,
      (chunk) => reader.push(chunk) !== 'need-more',
      () => reader.buffered,
      this.#timeoutMs,
      (outcome) => {
        if (outcome !== 'complete') {
          this.#fail(outcome === 'timeout' ? 'timeout' : 'reset');
          socket.destroy();
          return;
        }
        if (this.#closed) {
          socket.destroy();
          return;
        }
        const info = reader.info;
        if (reader.status !== 'done' || info === null) {
          const problem = reader.problem ?? 'malformed';
          this.#fail(FAILURE_BY_PROBLEM[problem]);
          if (problem === 'plain-http') refusePlainHttp(socket);
          else socket.destroy();
          return;
        }
        if (info.fragmented) this.#m.fragmented();
        const { certificate, how } = this.#o.store.select(info.serverName);
        this.#m.serverName(how);
        const route = this.#route(info.ticketKeyName);
        if (route === undefined) {
          // Unreachable: #rebuild always leaves a route for the encrypting epoch or null.
          this.#fail('other');
          socket.destroy();
          return;
        }
        (certificate.index === 0 ? route.byDefault : route.bySni).emit('connection', socket);
      },
    );
  }

  /** Adopt a reloaded service config (alpn, sessionTickets) and its ticket-key source. */
  update(tls: ServiceTlsConfig, tickets: EpochSecretSource | null): void {
    this.#tickets?.off('change', this.#onKeysChange);
    this.#tls = tls;
    this.#tickets = tls.sessionTickets === 'off' ? null : tickets;
    this.#tickets?.on('change', this.#onKeysChange);
    this.#keys.update(this.#tickets?.window() ?? []);
    this.#routes = new Map();
    this.#rebuild();
  }

  /** Re-read the certificate files (SIGHUP, POST /api/reload): swapped whole or refused whole. */
  reloadCertificates(pairs = this.#tls.certificates): ReturnType<CertificateStore['reload']> {
    const r = this.#o.store.reload(pairs);
    this.#m.reload(!r.ok ? 'refused' : r.changed ? 'applied' : 'unchanged');
    if (!r.ok) this.#o.logger.warn({ service: this.#o.service, problems: r.problems }, 'certificate reload refused; the previous certificates stay');
    return r;
  }

  /** Stop taking connections (established ones are not touched) and let go of the sources. */
  close(): void {
    this.#closed = true;
    this.#o.store.off('change', this.#onStoreChange);
    this.#tickets?.off('change', this.#onKeysChange);
    this.#routes.clear();
  }

  stats(): TlsListenerStats {
    return {
      handshakes: this.#handshakes,
      resumed: this.#resumed,
      failures: this.#failures,
      certificates: this.#o.store.certificates.map((c) => ({ names: c.info.names, notAfter: c.info.notAfter })),
    };
  }

  #fail(reason: HandshakeFailure): void {
    this.#failures++;
    this.#m.failure(reason);
  }

  #route(ticketKeyName: Buffer | null): Route | undefined {
    if (this.#tickets === null) return this.#routes.get(null);
    const named = ticketKeyName === null ? undefined : this.#keys.byName(ticketKeyName);
    const keys = named ?? this.#keys.forEncryption(Math.floor(this.#now() / this.#tickets.rotationMs));
    // No epoch yet (a source that has not made or received any): node:tls's own random keys.
    return this.#routes.get(keys === undefined ? null : keys.epoch);
  }

  readonly #onStoreChange = (): void => {
    this.#m.certificates(this.#o.store.certificates.map((c) => c.info.notAfter));
    this.#routes = new Map();
    this.#rebuild();
  };

  readonly #onKeysChange = (): void => {
    if (this.#tickets === null) return;
    if (this.#keys.update(this.#tickets.window())) this.#rebuild();
  };

  /** Make the Servers for the current epochs (and certificates); keep those still valid. */
  #rebuild(): void {
    const next = new Map<number | null, Route>();
    const all = this.#keys.all();
    if (this.#tickets === null) next.set(null, this.#routes.get(null) ?? this.#makeRoute(null, 'off'));
    else if (all.length === 0) next.set(null, this.#routes.get(null) ?? this.#makeRoute(null, 'random'));
    else {
      for (const k of all) {
        const prev = this.#routes.get(k.epoch);
        next.set(k.epoch, prev !== undefined && prev.keyName === k.name ? prev : this.#makeRoute(k.epoch, k.keys, k.name));
      }
    }
    this.#routes = next;
  }

  /** Ticket keys: an epoch's, none at all ('off'), or node:tls's own random ones until a source has any. */
  #makeRoute(epoch: number | null, keys: Buffer | 'off' | 'random', keyName: string | null = null): Route {
    const d = this.#o.store.default;
    return { epoch, keyName, byDefault: this.#server(keys, { cert: d.pem.cert, key: d.pem.key }), bySni: this.#server(keys, null) };
  }

  #server(ticketKeys: Buffer | 'off' | 'random', own: { cert: Buffer; key: Buffer } | null): TlsServer {
    const s = createTlsServer({
      minVersion: MIN_TLS_VERSION,
      ciphers: CIPHERS,
      ecdhCurve: ECDH_CURVES,
      honorCipherOrder: false,
      sessionIdContext: this.#sid,
      sessionTimeout: SESSION_LIFETIME_S,
      ...(ticketKeys === 'off' ? { secureOptions: constants.SSL_OP_NO_TICKET } : ticketKeys === 'random' ? {} : { ticketKeys }),
      ALPNProtocols: [...this.#tls.alpn],
      handshakeTimeout: this.#timeoutMs,
      ...(own !== null ? own : { SNICallback: this.#sni }),
    });
    s.on('secureConnection', this.#onSecure);
    s.on('tlsClientError', this.#onClientError);
    return s;
  }

  readonly #sni = (name: string, cb: (err: Error | null, ctx?: SecureContext) => void): void => {
    cb(null, this.#o.store.select(name).certificate.context);
  };

  readonly #onSecure = (socket: TLSSocket): void => {
    // TLS 1.2 renegotiation is refused: it costs the server a handshake per request of the client
    // (CVE-2011-1473) and nothing here needs it. node:tls reports it as an error on the socket.
    socket.disableRenegotiation();
    socket.on('error', (err: Error) => this.#onSocketError(socket, err));
    const alpn = socket.alpnProtocol;
    const resumed = socket.isSessionReused();
    const version = socket.getProtocol() ?? 'unknown';
    this.#handshakes++;
    if (resumed) this.#resumed++;
    this.#m.handshake(version.startsWith('TLSv') ? version.slice(4) : version, alpn === false || alpn === null ? 'none' : alpn, resumed);
    this.#o.onSecure(socket, alpn === 'h2' ? 'h2' : 'http/1.1');
  };

  #onSocketError(socket: TLSSocket, err: Error): void {
    if (classifyTlsError(err) !== 'renegotiation') return;
    this.#fail('renegotiation');
    socket.destroy();
  }

  readonly #onClientError = (err: Error): void => {
    const reason = classifyTlsError(err);
    this.#fail(reason);
    if (reason === 'other') this.#o.logger.debug({ service: this.#o.service, code: (err as { code?: string }).code, err: err.message }, 'TLS handshake failed');
  };
}

/** Answer a cleartext request on the TLS port once, like NGINX's "plain HTTP request was sent to HTTPS port". */
function refusePlainHttp(socket: Socket): void {
  socket.on('error', () => {});
  socket.end(PLAIN_HTTP_RESPONSE);
  setTimeout(() => socket.destroy(), 1000).unref();
}
