/**
 * Encapsulation of client datagrams between nodes (docs/design.md §4, "udp: the datagram
 * encapsulated with flow, client address and ingress node, authenticated").
 *
 * UDP has no connection to authenticate once, so every datagram carries its own proof: a
 * truncated HMAC-SHA256 (RFC 2104; truncation to 128 bits as RFC 4868 section 2.3 does for
 * IPsec) over the whole header and payload, with a key derived from the cluster secret by HKDF
 * (RFC 5869). Anti-replay is the receiver's job (replay.ts); this file only encodes, parses and
 * checks the MAC.
 *
 * Freshness comes from the authenticated control links, never from a clock: each datagram names
 * the sender's incarnation and the receiver's (8 random bytes per process start, which each node
 * announces in OPEN on its control links, docs/protocol.md) and a counter that the sender
 * increases per datagram. The receiver accepts only its own current incarnation and the one the
 * sender last announced, and each counter once (replay.ts): datagrams captured before either end
 * restarted are refused, whatever the two clocks say. (Version 1 carried a wall-clock timestamp
 * checked to ±30 s: a node whose clock was off could neither forward nor be forwarded to.)
 *
 * Wire format, big-endian (RFC 1700 network order), fields in this order:
 *
 *   magic u16 = 0x5444 ("TD") | version u8 = 2 | type u8 (1 forward, 2 reply)
 *   sender incarnation 8 bytes | receiver incarnation 8 bytes
 *   counter u64 (per sender process, from 1, increasing)
 *   sender   u8 length + UTF-8 node id   (the node that sent this datagram)
 *   service  u8 length + UTF-8 name
 *   key      u16 length + UTF-8 flow key
 *   client   u8 length + ASCII ip literal, u16 port
 *   ingress  u8 length + UTF-8 node id   (the node that received the client's datagram)
 *   payload  (everything up to the MAC)
 *   mac      16 bytes = HMAC-SHA256(key, all bytes before it)[0..16)
 *
 * Overhead is about 70-120 bytes for typical names; the largest encapsulated datagram must still
 * fit the 65,507-byte IPv4 UDP payload limit, so very large client datagrams are refused by the
 * sender (counted as a drop, never truncated).
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

export const ENCAP_MAGIC = 0x5444;
export const ENCAP_VERSION = 2;
export const MAC_BYTES = 16;
/** Bytes of an incarnation id (as in the control link's OPEN). */
export const INCARNATION_BYTES = 8;
/** RFC 768 length field minus the IPv4 and UDP headers: the largest datagram Node can send. */
export const MAX_UDP_PAYLOAD = 65_507;
const FIXED_BYTES = 2 + 1 + 1 + INCARNATION_BYTES + INCARNATION_BYTES + 8;
const SENDER_INC_AT = 4;
const RECEIVER_INC_AT = SENDER_INC_AT + INCARNATION_BYTES;
const COUNTER_AT = RECEIVER_INC_AT + INCARNATION_BYTES;
// Same salt as the peer handshake's authKey (docs/protocol.md); the info string separates the keys.
const HKDF_SALT = 'tandem';
const HKDF_INFO = 'tandem/udp/v1';

export const EncapType = { FORWARD: 1, REPLY: 2 } as const;
export type EncapTypeCode = (typeof EncapType)[keyof typeof EncapType];

export interface ClientAddress {
  readonly address: string;
  readonly port: number;
}

/** What travels in the header besides the framing. */
export interface EncapFields {
  readonly type: EncapTypeCode;
  readonly sender: string;
  readonly service: string;
  readonly key: string;
  readonly client: ClientAddress;
  readonly ingress: string;
}

/** The two ends' incarnations a datagram is bound to. */
export interface EncapEpochs {
  readonly sender: Uint8Array;
  readonly receiver: Uint8Array;
}

export interface EncapHeader extends EncapFields {
  /** Views into the received buffer, INCARNATION_BYTES each. */
  readonly senderIncarnation: Buffer;
  readonly receiverIncarnation: Buffer;
  readonly counter: bigint;
}

/** A parsed datagram; `payload` and `signed`/`mac` are views into the received buffer. */
export interface ParsedEncap extends EncapHeader {
  readonly payload: Buffer;
  readonly signed: Buffer;
  readonly mac: Buffer;
}

/** The MAC key of the UDP data plane: HKDF-SHA256 of the cluster secret, never the secret itself. */
export function deriveUdpKey(secret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), HKDF_SALT, HKDF_INFO, 32));
}

function mac(key: Buffer, data: Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest().subarray(0, MAC_BYTES);
}

/** Encoded length of the header fields of `f` (without payload and MAC), or -1 when a field is too long. */
function headerBytes(f: EncapFields): number {
  const s = Buffer.byteLength(f.sender);
  const v = Buffer.byteLength(f.service);
  const k = Buffer.byteLength(f.key);
  const a = Buffer.byteLength(f.client.address);
  const i = Buffer.byteLength(f.ingress);
  if (s > 255 || v > 255 || k > 65_535 || a > 255 || i > 255) return -1;
  return FIXED_BYTES + 1 + s + 1 + v + 2 + k + 1 + a + 2 + 1 + i;
}

function putStr8(buf: Buffer, at: number, s: string): number {
  const n = buf.write(s, at + 1, 'utf8');
  buf[at] = n;
  return at + 1 + n;
}

/**
 * One encapsulated, authenticated datagram, or null when it would exceed the UDP payload limit,
 * a field does not fit its length prefix or an incarnation is not INCARNATION_BYTES long.
 */
export function encodeEncap(key: Buffer, f: EncapFields, epochs: EncapEpochs, counter: bigint, payload: Uint8Array): Buffer | null {
  const hb = headerBytes(f);
  if (hb < 0 || epochs.sender.length !== INCARNATION_BYTES || epochs.receiver.length !== INCARNATION_BYTES) return null;
  const total = hb + payload.length + MAC_BYTES;
  if (total > MAX_UDP_PAYLOAD) return null;
  const buf = Buffer.allocUnsafe(total);
  buf.writeUInt16BE(ENCAP_MAGIC, 0);
  buf[2] = ENCAP_VERSION;
  buf[3] = f.type;
  buf.set(epochs.sender, SENDER_INC_AT);
  buf.set(epochs.receiver, RECEIVER_INC_AT);
  buf.writeBigUInt64BE(counter, COUNTER_AT);
  let at = putStr8(buf, FIXED_BYTES, f.sender);
  at = putStr8(buf, at, f.service);
  const kn = buf.write(f.key, at + 2, 'utf8');
  buf.writeUInt16BE(kn, at);
  at += 2 + kn;
  at = putStr8(buf, at, f.client.address);
  buf.writeUInt16BE(f.client.port, at);
  at = putStr8(buf, at + 2, f.ingress);
  buf.set(payload, at);
  at += payload.length;
  mac(key, buf.subarray(0, at)).copy(buf, at);
  return buf;
}

/**
 * Parses the framing of a received datagram without trusting it: null when it is not a
 * well-formed tandem datagram of this version. The MAC is checked separately (verifyEncap),
 * after the cheap checks on the sender, so that junk costs no HMAC.
 */
export function parseEncap(buf: Buffer): ParsedEncap | null {
  if (buf.length < FIXED_BYTES + 9 + MAC_BYTES) return null;
  if (buf.readUInt16BE(0) !== ENCAP_MAGIC || buf[2] !== ENCAP_VERSION) return null;
  const type = buf[3];
  if (type !== EncapType.FORWARD && type !== EncapType.REPLY) return null;
  const end = buf.length - MAC_BYTES;
  let at = FIXED_BYTES;
  const str8 = (): string | null => {
    if (at + 1 > end) return null;
    const n = buf[at];
    if (at + 1 + n > end) return null;
    const s = buf.toString('utf8', at + 1, at + 1 + n);
    at += 1 + n;
    return s;
  };
  const sender = str8();
  const service = str8();
  if (sender === null || service === null || at + 2 > end) return null;
  const kn = buf.readUInt16BE(at);
  if (at + 2 + kn > end) return null;
  const key = buf.toString('utf8', at + 2, at + 2 + kn);
  at += 2 + kn;
  const address = str8();
  if (address === null || at + 2 > end) return null;
  const port = buf.readUInt16BE(at);
  at += 2;
  const ingress = str8();
  if (ingress === null) return null;
  return {
    type: type,
    senderIncarnation: buf.subarray(SENDER_INC_AT, SENDER_INC_AT + INCARNATION_BYTES),
    receiverIncarnation: buf.subarray(RECEIVER_INC_AT, RECEIVER_INC_AT + INCARNATION_BYTES),
    counter: buf.readBigUInt64BE(COUNTER_AT),
    sender,
    service,
    key,
    client: { address, port },
    ingress,
    payload: buf.subarray(at, end),
    signed: buf.subarray(0, end),
    mac: buf.subarray(end),
  };
}

/** Whether the datagram's MAC is right, compared in constant time. */
export function verifyEncap(key: Buffer, p: ParsedEncap): boolean {
  return timingSafeEqual(mac(key, p.signed), p.mac);
}
