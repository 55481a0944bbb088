/**
 * HTTP/2 clients for the tests: node:http2 over a TLS connection made to a node's address with the
 * server name asked for (like `curl --resolve`), and raw frames written by hand for the abuse
 * cases (RFC 9113 section 4.1 frame layout, section 3.4 preface).
 */
import { connect as h2connect, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

/** An h2 session to host:port presenting `servername`. */
export function h2Session(servername: string, host: string, port: number): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = h2connect(`https://${servername}:${port}`, {
      createConnection: () => tlsConnect({ host, port, servername, ALPNProtocols: ['h2'], rejectUnauthorized: false }),
    });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

export interface H2Response {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** One request on a session; `body` sent as one or several DATA frames (an array: one write each). */
export function h2Request(s: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: Buffer | Buffer[], timeoutMs = 30_000): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const req = s.request(headers, { endStream: body === undefined });
    const parts: Buffer[] = [];
    let head: IncomingHttpHeaders = {};
    const timer = setTimeout(() => {
      req.close();
      reject(new Error(`h2 request ${String(headers[':path'])} timed out`));
    }, timeoutMs);
    req.on('response', (h) => (head = h));
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      clearTimeout(timer);
      resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(parts) });
    });
    req.on('error', (err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
    if (body === undefined) return;
    const list = Array.isArray(body) ? body : [body];
    const pump = (i: number): void => {
      for (; i < list.length; i++) {
        if (!req.write(list[i])) return void req.once('drain', () => pump(i + 1));
      }
      req.end();
    };
    pump(0);
  });
}

// ---- raw frames ---------------------------------------------------------------------------

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 1, ACK: 1, END_HEADERS: 4 } as const;

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(9 + payload.length);
  b.writeUIntBE(payload.length, 0, 3);
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(stream & 0x7fffffff, 5);
  payload.copy(b, 9);
  return b;
}

/** An HPACK string literal without Huffman (RFC 7541 section 5.2), length as a 7-bit prefix integer. */
function hpackString(s: string): Buffer {
  const v = Buffer.from(s, 'latin1');
  return Buffer.concat([hpackInt(v.length, 7, 0), v]);
}

/** RFC 7541 section 5.1. */
export function hpackInt(n: number, prefix: number, high: number): Buffer {
  const max = (1 << prefix) - 1;
  if (n < max) return Buffer.from([high | n]);
  const out = [high | max];
  n -= max;
  while (n >= 128) {
    out.push((n % 128) + 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** A literal field without indexing (section 6.2.2), new name. */
export function hpackLiteral(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x00]), hpackString(name), hpackString(value)]);
}

/** A literal field with incremental indexing (section 6.2.1), new name: it enters the dynamic table at index 62. */
export function hpackIndexed(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x40]), hpackString(name), hpackString(value)]);
}

/** A GET request's header block: static-table :method GET (2), :scheme https (7), :path / (4), and :authority (not indexed). */
export function getBlock(authority: string, extra: Buffer[] = []): Buffer {
  return Buffer.concat([Buffer.from([0x82, 0x87, 0x84]), Buffer.concat([Buffer.from([0x01]), hpackString(authority)]), ...extra]);
}

/** A raw TLS connection with ALPN h2 that has sent the preface and an empty SETTINGS; collects what the server sends. */
export interface RawH2 {
  readonly socket: TLSSocket;
  /** Frames received, in order, with GOAWAY's error code and last stream id, RST_STREAM's code. */
  readonly frames: Array<{ type: number; flags: number; stream: number; payload: Buffer; code?: number; last?: number }>;
  readonly closed: Promise<void>;
  goaway(): { code: number } | undefined;
}

export function rawH2(servername: string, host: string, port: number): Promise<RawH2> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host, port, servername, ALPNProtocols: ['h2'], rejectUnauthorized: false });
    const frames: RawH2['frames'] = [];
    let buf = Buffer.alloc(0);
    let onClosed!: () => void;
    const closed = new Promise<void>((r) => (onClosed = r));
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const type = buf[3];
        const f: RawH2['frames'][number] = { type, flags: buf[4], stream: buf.readUInt32BE(5) & 0x7fffffff, payload: Buffer.from(buf.subarray(9, 9 + len)) };
        if (type === FRAME.GOAWAY) {
          f.last = buf.readUInt32BE(9) & 0x7fffffff;
          f.code = buf.readUInt32BE(13);
        }
        if (type === FRAME.RST_STREAM) f.code = buf.readUInt32BE(9);
        // The server's SETTINGS are acknowledged, as any client must (RFC 9113 section 6.5.3).
        if (type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0 && !socket.destroyed) socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
        frames.push(f);
        buf = buf.subarray(9 + len);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => onClosed());
    socket.once('secureConnect', () => {
      if (socket.alpnProtocol !== 'h2') return reject(new Error(`ALPN ${String(socket.alpnProtocol)}`));
      socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
      resolve({
        socket,
        frames,
        closed,
        goaway: () => {
          const g = frames.find((f) => f.type === FRAME.GOAWAY);
          return g === undefined ? undefined : { code: g.code ?? -1 };
        },
      });
    });
    socket.once('error', reject);
  });
}

/** Writes `frames` in batches, waiting for the socket to drain; stops when the socket closed. */
export async function writeAll(socket: TLSSocket, frames: Iterable<Buffer>, batch = 64): Promise<number> {
  let n = 0;
  let pending: Buffer[] = [];
  for (const f of frames) {
    if (socket.destroyed) break;
    pending.push(f);
    n++;
    if (pending.length < batch) continue;
    const ok = socket.write(Buffer.concat(pending));
    pending = [];
    if (!ok) await new Promise<void>((r) => {
      const done = () => r();
      socket.once('drain', done);
      socket.once('close', done);
    });
  }
  if (pending.length > 0 && !socket.destroyed) socket.write(Buffer.concat(pending));
  return n;
}
