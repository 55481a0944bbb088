/**
 * The authenticated header that opens every TCP connection forwarded to a peer (docs/design.md §§
 * 4 and 5: "a stream to the peer that starts with an authenticated header carrying flow and client
 * address"; a client must never be able to forge a forwarded flow or a client address).
 *
 * The data-plane stream itself is already mutually authenticated by the cluster transport, with
 * fresh nonces from both ends: that handshake is what makes a forward fresh (replay.ts), no clock
 * is involved. The header is authenticated on its own, with a key derived from the cluster secret
 * (HKDF-SHA256, RFC 5869, info "tandem/tcp-forward/v1"), so that it verifies independently of the
 * session, and a header copied into another stream is still caught by the nonce cache.
 *
 * Layout (all integers big-endian):
 *
 *   offset size
 *   0      4    magic "TDTF"
 *   4      1    version (1)
 *   5      2    N = body length (<= MAX_BODY_BYTES)
 *   7      N    body:
 *                 8   timestamp, ms since the epoch by the sender's clock (two uint32: high,
 *                     low); diagnostics only, never checked: clocks of nodes may disagree
 *                 16  random nonce
 *                 2   client port        2  local (destination) port
 *                 1+s service            1+s ingress node id
 *                 1+s client address     1+s local address      (text, as Node reports them)
 *                 2+s flow key                                   (s = UTF-8 bytes)
 *   7+N    32   HMAC-SHA256(key, bytes 0 .. 7+N)
 */
import { createHmac, hkdfSync, randomFillSync, timingSafeEqual } from 'node:crypto';
import { TandemError, ErrorCodes } from '../../errors.js';

export const HEADER_MAGIC = Buffer.from('TDTF', 'latin1');
export const HEADER_VERSION = 1;
/** Magic, version and body length: what must be read before the rest's length is known. */
export const HEADER_PREFIX_BYTES = 7;
export const MAC_BYTES = 32;
export const NONCE_BYTES = 16;
/** Fixed body part (timestamp, nonce, ports) plus the longest strings; the bound keeps a peer from
 * making the receiver buffer much before it can check the MAC. */
export const MAX_BODY_BYTES = 2048;
const KEY_INFO = 'tandem/tcp-forward/v1';

/** What the ingress node tells the owner about a forwarded connection. */
export interface ForwardHeader {
  readonly service: string;
  readonly key: string;
  readonly clientAddress: string;
  readonly clientPort: number;
  /** The address and port the client connected to (the ingress node's service address). */
  readonly localAddress: string;
  readonly localPort: number;
  /** Node that accepted the client connection. */
  readonly ingress: string;
  readonly timestampMs: number;
  readonly nonce: Buffer;
}

export type ForwardHeaderInput = Omit<ForwardHeader, 'timestampMs' | 'nonce'> & {
  readonly timestampMs?: number;
  readonly nonce?: Uint8Array;
};

export type HeaderDecodeFailure = 'malformed' | 'bad_mac';
export type HeaderDecodeResult = { ok: true; header: ForwardHeader } | { ok: false; reason: HeaderDecodeFailure };

/** The header MAC key: HKDF-SHA256(secret, salt "", info "tandem/tcp-forward/v1"), 32 bytes. */
export function deriveForwardKey(secret: string | Uint8Array): Buffer {
  if (secret.length === 0) throw new TandemError(ErrorCodes.AUTH_FAILED, 'empty cluster secret');
  return Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), KEY_INFO, 32));
}

function strBytes(s: string, max: number, what: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  if (b.length > max) throw new TandemError(ErrorCodes.BAD_REQUEST, `${what} longer than ${max} bytes`);
  return b;
}

function checkPort(p: number, what: string): number {
  if (!Number.isInteger(p) || p < 0 || p > 65535) throw new TandemError(ErrorCodes.BAD_REQUEST, `${what} ${p} out of range`);
  return p;
}

/** Builds a header with a fresh nonce and the current time (unless given, for tests). */
export function encodeForwardHeader(key: Uint8Array, h: ForwardHeaderInput): Buffer {
  const service = strBytes(h.service, 255, 'service name');
  const ingress = strBytes(h.ingress, 255, 'node id');
  const client = strBytes(h.clientAddress, 255, 'client address');
  const local = strBytes(h.localAddress, 255, 'local address');
  const flow = strBytes(h.key, 1024, 'flow key');
  const bodyLen = 8 + NONCE_BYTES + 4 + 4 + service.length + ingress.length + client.length + local.length + 2 + flow.length;
  if (bodyLen > MAX_BODY_BYTES) throw new TandemError(ErrorCodes.BAD_REQUEST, 'forward header too large');
  const buf = Buffer.allocUnsafe(HEADER_PREFIX_BYTES + bodyLen + MAC_BYTES);
  HEADER_MAGIC.copy(buf, 0);
  buf[4] = HEADER_VERSION;
  buf.writeUInt16BE(bodyLen, 5);
  let o = HEADER_PREFIX_BYTES;
  const ts = h.timestampMs ?? Date.now();
  buf.writeUInt32BE(Math.floor(ts / 0x1_0000_0000), o);
  buf.writeUInt32BE(ts % 0x1_0000_0000, o + 4);
  o += 8;
  if (h.nonce) {
    if (h.nonce.length !== NONCE_BYTES) throw new TandemError(ErrorCodes.BAD_REQUEST, 'nonce must be 16 bytes');
    buf.set(h.nonce, o);
  } else {
    randomFillSync(buf, o, NONCE_BYTES);
  }
  o += NONCE_BYTES;
  o = buf.writeUInt16BE(checkPort(h.clientPort, 'client port'), o);
  o = buf.writeUInt16BE(checkPort(h.localPort, 'local port'), o);
  for (const s of [service, ingress, client, local]) {
    buf[o++] = s.length;
    o += s.copy(buf, o);
  }
  o = buf.writeUInt16BE(flow.length, o);
  o += flow.copy(buf, o);
  createHmac('sha256', key).update(buf.subarray(0, o)).digest().copy(buf, o);
  return buf;
}

/**
 * Reads the prefix: the number of bytes still to read (body + MAC), or null when the prefix is not
 * a header of this version or announces a body over the bound.
 */
export function remainingHeaderBytes(prefix: Uint8Array): number | null {
  if (prefix.length < HEADER_PREFIX_BYTES) return null;
  for (let i = 0; i < HEADER_MAGIC.length; i++) if (prefix[i] !== HEADER_MAGIC[i]) return null;
  if (prefix[4] !== HEADER_VERSION) return null;
  const n = (prefix[5] << 8) | prefix[6];
  if (n < 8 + NONCE_BYTES + 4 + 4 + 2 || n > MAX_BODY_BYTES) return null;
  return n + MAC_BYTES;
}

/**
 * Verifies the MAC (constant time) and decodes a complete header (prefix + body + MAC). Duplicates
 * are the caller's (ReplayCache), because they need state.
 */
export function decodeForwardHeader(key: Uint8Array, buf: Buffer): HeaderDecodeResult {
  const rest = remainingHeaderBytes(buf);
  if (rest === null || buf.length !== HEADER_PREFIX_BYTES + rest) return { ok: false, reason: 'malformed' };
  const macAt = buf.length - MAC_BYTES;
  const mac = createHmac('sha256', key).update(buf.subarray(0, macAt)).digest();
  if (!timingSafeEqual(mac, buf.subarray(macAt))) return { ok: false, reason: 'bad_mac' };
  // From here on the bytes come from a cluster member; bounds are still checked so that a bug in
  // a sender cannot make this node read out of range.
  let o = HEADER_PREFIX_BYTES;
  const timestampMs = buf.readUInt32BE(o) * 0x1_0000_0000 + buf.readUInt32BE(o + 4);
  o += 8;
  const nonce = Buffer.from(buf.subarray(o, o + NONCE_BYTES));
  o += NONCE_BYTES;
  const clientPort = buf.readUInt16BE(o);
  const localPort = buf.readUInt16BE(o + 2);
  o += 4;
  const strs: string[] = [];
  for (let i = 0; i < 4; i++) {
    if (o >= macAt) return { ok: false, reason: 'malformed' };
    const n = buf[o++];
    if (o + n > macAt) return { ok: false, reason: 'malformed' };
    strs.push(buf.toString('utf8', o, o + n));
    o += n;
  }
  if (o + 2 > macAt) return { ok: false, reason: 'malformed' };
  const kn = buf.readUInt16BE(o);
  o += 2;
  if (o + kn !== macAt) return { ok: false, reason: 'malformed' };
  const flowKey = buf.toString('utf8', o, o + kn);
  const [service, ingress, clientAddress, localAddress] = strs as [string, string, string, string];
  if (service.length === 0 || ingress.length === 0 || clientAddress.length === 0) return { ok: false, reason: 'malformed' };
  return {
    ok: true,
    header: { service, key: flowKey, clientAddress, clientPort, localAddress, localPort, ingress, timestampMs, nonce },
  };
}
