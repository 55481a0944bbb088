/**
 * Real backends for integration tests, each on port 0 of a loopback address.
 *  - http: replies JSON {id, via, xff, forwarded, method, url, bytes, sha256} and echoes nothing
 *    else; `/stream?bytes=N` sends N bytes chunked; `/ws` upgrades to a raw echo (WebSocket-like).
 *  - tcp: echoes every byte; half-close aware (ends its side after the client's FIN).
 *  - udp: replies "<id>:<payload>" to each datagram.
 */
import { createServer as createHttp, type Server as HttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTcp, type Server as TcpServer, type Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export interface Backend {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly address: string;
  /** Requests / connections / datagrams served. */
  readonly count: () => number;
  close(): Promise<void>;
}

export async function httpBackend(id: string, host = '127.0.0.1', port = 0): Promise<Backend & { server: HttpServer }> {
  let count = 0;
  const sockets = new Set<Socket>();
  const server = createHttp((req: IncomingMessage, res: ServerResponse) => {
    count++;
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/healthz') {
      res.end('ok');
      return;
    }
    if (url.pathname === '/stream') {
      const total = Number(url.searchParams.get('bytes') ?? '0');
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      let sent = 0;
      const h = createHash('sha256');
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-backend': id });
      const pump = () => {
        while (sent < total) {
          const n = Math.min(chunk.length, total - sent);
          const part = n === chunk.length ? chunk : chunk.subarray(0, n);
          h.update(part);
          sent += n;
          if (!res.write(part)) return void res.once('drain', pump);
        }
        res.addTrailers({ 'x-sha256': h.digest('hex') });
        res.end();
      };
      pump();
      return;
    }
    if (url.pathname === '/hang') return; // never answers
    const h = createHash('sha256');
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      h.update(c);
    });
    req.on('end', () => {
      const body = JSON.stringify({
        id,
        via: req.headers.via ?? null,
        xff: req.headers['x-forwarded-for'] ?? null,
        forwarded: req.headers.forwarded ?? null,
        method: req.method,
        url: req.url,
        bytes,
        sha256: h.digest('hex'),
        headers: req.headers,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'x-backend': id, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req, socket) => {
    count++;
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${req.headers.upgrade}\r\nConnection: Upgrade\r\nX-Backend: ${id}\r\n\r\n`);
    socket.pipe(socket);
  });
  await listen(server, port, host);
  const p = (server.address() as AddressInfo).port;
  return {
    id,
    host,
    port: p,
    address: `${host}:${p}`,
    count: () => count,
    server,
    close: () => closeServer(server, sockets),
  };
}

export async function tcpBackend(id: string, host = '127.0.0.1', port = 0, onData?: (socket: Socket, chunk: Buffer) => void): Promise<Backend & { server: TcpServer }> {
  let count = 0;
  const sockets = new Set<Socket>();
  const server = createTcp({ allowHalfOpen: true }, (s) => {
    count++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    if (onData) s.on('data', (c: Buffer) => onData(s, c));
    else s.pipe(s); // pipe ends the write side after the client's FIN: a true echo with half-close
  });
  await listen(server, port, host);
  const p = (server.address() as AddressInfo).port;
  return { id, host, port: p, address: `${host}:${p}`, count: () => count, server, close: () => closeServer(server, sockets) };
}

export async function udpBackend(id: string, host = '127.0.0.1', port = 0): Promise<Backend & { socket: UdpSocket }> {
  let count = 0;
  const socket = createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    count++;
    socket.send(Buffer.concat([Buffer.from(`${id}:`), msg]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(port, host, () => resolve()));
  const p = socket.address().port;
  return {
    id,
    host,
    port: p,
    address: `${host}:${p}`,
    count: () => count,
    socket,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

function listen(server: HttpServer | TcpServer, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function closeServer(server: HttpServer | TcpServer, sockets: Set<Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}
