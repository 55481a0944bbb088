/**
 * A tiny TLS test server on the listener factory (src/tls/listener.ts): what the HTTP engine will
 * be, reduced to answering 200. HTTP/1.1 goes to a node:http server and h2 to a node:http2 server,
 * both fed secured sockets through `emit('connection', socket)` — the way the engine and a future
 * HTTP/2 front plug into `onSecure`. The body says what the connection negotiated:
 *
 *   <servername>|<alpn>|<TLS version>|<new|resumed>|<node>
 */
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createH2Server } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { ServiceTlsConfig } from '../../src/config/schema.js';
import type { EpochSecretSource } from '../../src/cluster/ticket-key-share.js';
import { CertificateStore } from '../../src/tls/store.js';
import { TlsListener, type Alpn } from '../../src/tls/listener.js';

export interface TestTlsServer {
  readonly port: number;
  readonly listener: TlsListener;
  readonly store: CertificateStore;
  readonly registry: Registry;
  /** Sockets handed to onSecure, by ALPN. */
  readonly secured: { h2: number; 'http/1.1': number };
  close(): Promise<void>;
}

export interface TestTlsServerOptions {
  readonly host: string;
  readonly port: number;
  readonly tls: ServiceTlsConfig;
  readonly tickets: EpochSecretSource | null;
  readonly node?: string;
  readonly registry?: Registry;
  readonly handshakeTimeoutMs?: number;
  readonly clusterName?: string;
  readonly now?: () => number;
}

function describe(socket: TLSSocket, alpn: Alpn, node: string): string {
  const name = typeof socket.servername === 'string' ? socket.servername : '-';
  return `${name}|${alpn}|${socket.getProtocol() ?? '?'}|${socket.isSessionReused() ? 'resumed' : 'new'}|${node}`;
}

export async function startTestTlsServer(o: TestTlsServerOptions): Promise<TestTlsServer> {
  const node = o.node ?? 'node';
  const registry = o.registry ?? new Registry();
  const store = new CertificateStore(o.tls.certificates);
  const info = new WeakMap<object, string>();
  const http1 = createHttpServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(info.get(req.socket) ?? '?');
  });
  // node:http2 makes the session synchronously inside emit('connection'), so the text of the
  // connection being handed over is known when 'session' fires.
  let handing = '?';
  const h2 = createH2Server((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end((req.stream.session && info.get(req.stream.session)) ?? '?');
  });
  h2.on('session', (session) => info.set(session, handing));
  const secured = { h2: 0, 'http/1.1': 0 };
  const sockets = new Set<Socket>();
  const listener = new TlsListener({
    service: 'web',
    clusterName: o.clusterName ?? 'test',
    tls: o.tls,
    store,
    tickets: o.tickets,
    registry,
    logger: pino({ level: 'silent' }),
    handshakeTimeoutMs: o.handshakeTimeoutMs,
    now: o.now,
    onSecure: (socket, alpn) => {
      secured[alpn]++;
      const text = describe(socket, alpn, node);
      info.set(socket, text);
      if (alpn === 'h2') {
        handing = text;
        h2.emit('connection', socket);
      } else http1.emit('connection', socket);
    },
  });
  const server: NetServer = createNetServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    listener.accept(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  return {
    port: o.port,
    listener,
    store,
    registry,
    secured,
    async close() {
      listener.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      http1.close();
      h2.close();
    },
  };
}
