/**
 * What the receiving node (ingress) and a flow's owner say to each other about one forwarded HTTP
 * request, on a stream of the peer multiplexer (docs/http.md, "The peer hop"). Pure: no I/O.
 *
 * OPEN payload, ingress → owner:
 *
 *   | v u8 = 1 | flags u8 | service len u8 | service | key len u16 | key (UTF-8) | client len u8 | client | request head |
 *
 * flags: bit 0 upgrade (the stream becomes a tunnel), bit 1 the client spoke HTTP/1.0, bit 2 the
 * client wants the connection closed after this response. `client` is the client's `ip:port`;
 * `request head` is the request head as the ingress rewrote it (request line, fields, Via,
 * X-Forwarded-For, Forwarded, framing, blank line), latin1, up to the end of the payload. The body
 * follows as stream data, framed as that head says; END after it.
 *
 * The owner answers with stream data: a 4-byte prefix, then the exact bytes for the client
 * (response head already rewritten for it, body already framed), END at the response's end:
 *
 *   | v u8 = 1 | flags u8 (bit 0: close the client connection after this response) | status u16 |
 *
 * so the ingress writes the response to its client without parsing it again. The link is mutually
 * authenticated (src/cluster/handshake.ts): no MAC, no timestamp here.
 */

export const PEER_HEAD_VERSION = 1;
export const FLAG_UPGRADE = 0x01;
export const FLAG_HTTP10 = 0x02;
export const FLAG_CLOSE = 0x04;
export const PREFIX_BYTES = 4;
/** Response prefix flag: the ingress closes the client connection after the response. */
export const PREFIX_CLOSE = 0x01;

export interface PeerHead {
  readonly flags: number;
  readonly service: string;
  readonly key: string;
  readonly client: string;
  /** Offset of the request head text in the payload. */
  readonly headAt: number;
}

/** The OPEN payload for a forwarded request. */
export function encodePeerHead(flags: number, service: string, key: string, client: string, head: string): Buffer {
  const keyBytes = Buffer.byteLength(key, 'utf8');
  const n = 3 + service.length + 2 + keyBytes + 1 + client.length + head.length;
  const b = Buffer.allocUnsafe(n);
  let o = 0;
  b[o++] = PEER_HEAD_VERSION;
  b[o++] = flags;
  b[o++] = service.length;
  o += b.write(service, o, 'latin1');
  b.writeUInt16BE(keyBytes, o);
  o += 2;
  o += b.write(key, o, 'utf8');
  b[o++] = client.length;
  o += b.write(client, o, 'latin1');
  b.write(head, o, 'latin1');
  return b;
}

/** Decodes an OPEN payload; null when it is not one (a bad or newer peer: refused, counted). */
export function decodePeerHead(b: Buffer): PeerHead | null {
  if (b.length < 8 || b[0] !== PEER_HEAD_VERSION) return null;
  const flags = b[1];
  let o = 2;
  const sl = b[o++];
  if (o + sl + 2 > b.length) return null;
  const service = b.toString('latin1', o, o + sl);
  o += sl;
  const kl = b.readUInt16BE(o);
  o += 2;
  if (o + kl + 1 > b.length) return null;
  const key = b.toString('utf8', o, o + kl);
  o += kl;
  const cl = b[o++];
  if (o + cl > b.length) return null;
  const client = b.toString('latin1', o, o + cl);
  o += cl;
  return { flags, service, key, client, headAt: o };
}

/** The response prefix: status for the ingress's metrics, and whether it closes the client connection after. */
export function encodePrefix(into: Buffer, at: number, status: number, close: boolean): void {
  into[at] = PEER_HEAD_VERSION;
  into[at + 1] = close ? PREFIX_CLOSE : 0;
  into.writeUInt16BE(status, at + 2);
}
