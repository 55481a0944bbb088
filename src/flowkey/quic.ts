/**
 * QUIC connection ids as flow keys (flowKey `quic-cid`). QUIC names a connection by the Destination
 * Connection ID of its packets, not by the 4-tuple, so that a client survives a NAT rebinding or a
 * move between networks (RFC 9000 section 9). Keying the flow on the DCID keeps such a client on its
 * backend when its source address changes.
 *
 * Only the version-independent header invariants of RFC 8999 section 5 are used, so the parser
 * works for QUIC v1 (RFC 9000 section 17), v2 (RFC 9369) and version negotiation alike:
 *
 *   long header  (first bit 1): flags(1) version(4) dcid_len(1) dcid scid_len(1) scid ...
 *   short header (first bit 0): flags(1) dcid(length known only to the server) ...
 *
 * Limits on what this can do, by design of QUIC rather than of this code:
 * - A short header does not carry its DCID length; the server fleet must use one fixed length,
 *   configured here as `shortHeaderCidLength` (RFC 9000 section 5.1 leaves the choice to servers,
 *   and QUIC-LB, draft-ietf-quic-load-balancers, relies on the same arrangement).
 * - The DCID of a client's first Initial is chosen by the client; from the server's first reply on,
 *   the client addresses the server by the CID the server chose (its SCID, RFC 9000 section 7.2).
 *   `quicSourceCid` reads that SCID from server packets, so the UDP proxy can record it as a second
 *   key for the same flow and backend.
 */
import { TandemError, ErrorCodes } from '../errors.js';

/** RFC 9000 section 17.2: "In QUIC version 1, this value MUST NOT exceed 20 bytes." */
export const MAX_CID_LENGTH = 20;

// RFC 9001 section 5.4.2: the header-protection sample is 16 bytes taken 4 bytes after the start of
// the packet number, so a short-header packet shorter than this cannot be opened by any server.
const SHORT_HEADER_MIN_AFTER_CID = 4 + 16;

function checkCidLength(n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > MAX_CID_LENGTH) {
    throw new TandemError(ErrorCodes.FLOW_KEY, `shortHeaderCidLength must be an integer from 0 to ${MAX_CID_LENGTH}, got ${n}`);
  }
}

interface LongHeaderIds {
  readonly dcid: Uint8Array;
  readonly scid: Uint8Array;
}

/**
 * Both connection ids of a long-header packet, or null when the bytes are not one. Lengths above
 * 20 are refused for every version: RFC 8999 would allow up to 255 for unknown versions, but no
 * published version uses them and a 255-byte id would break the flow-key length cap; such packets
 * fall back to the connection key, which is merely less sticky.
 */
function longHeaderIds(d: Uint8Array): LongHeaderIds | null {
  if (d.length < 7 || (d[0] & 0x80) === 0) return null;
  // No fixed-bit (0x40) check on long headers: version negotiation packets leave it unused
  // (RFC 9000 section 17.2.1) and a version we do not know may define it otherwise.
  const dcidLen = d[5];
  if (dcidLen > MAX_CID_LENGTH) return null;
  const scidLenAt = 6 + dcidLen;
  if (d.length < scidLenAt + 1) return null;
  const scidLen = d[scidLenAt];
  if (scidLen > MAX_CID_LENGTH || d.length < scidLenAt + 1 + scidLen) return null;
  return { dcid: d.subarray(6, scidLenAt), scid: d.subarray(scidLenAt + 1, scidLenAt + 1 + scidLen) };
}

/**
 * The Destination Connection ID of a datagram's first QUIC packet (a view into `datagram`, not a
 * copy), or null when the datagram does not look like QUIC. Version negotiation packets (version 0)
 * and Retry packets are long-header packets and yield their DCID, which may be empty.
 */
export function quicDestinationCid(datagram: Uint8Array, shortHeaderCidLength: number): Uint8Array | null {
  checkCidLength(shortHeaderCidLength);
  if (datagram.length === 0) return null;
  const first = datagram[0];
  if (first & 0x80) return longHeaderIds(datagram)?.dcid ?? null;
  // Short header: the fixed bit must be 1 (RFC 9000 section 17.3.1); it is what tells QUIC from
  // most other UDP traffic. (A peer that negotiated RFC 9287 "greasing the QUIC bit" may clear it;
  // such packets fall back to the connection key.)
  if ((first & 0x40) === 0) return null;
  if (datagram.length < 1 + shortHeaderCidLength + SHORT_HEADER_MIN_AFTER_CID) return null;
  return datagram.subarray(1, 1 + shortHeaderCidLength);
}

/**
 * The Source Connection ID of a long-header packet (typically a server's Initial, Handshake or
 * Retry), or null for short headers and non-QUIC bytes. The client will use it as its DCID.
 */
export function quicSourceCid(datagram: Uint8Array): Uint8Array | null {
  return longHeaderIds(datagram)?.scid ?? null;
}

const HEX: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]];
  return s;
}

/**
 * The `quic-cid` flow key: lower-case hex of the DCID, or null when the datagram is not QUIC or its
 * DCID is empty (an empty id names nothing); the caller then falls back to the connection key.
 * Hex keys contain no ':' so they can never collide with an `ip:port` connection key.
 */
export function quicFlowKey(datagram: Uint8Array, shortHeaderCidLength: number): string | null {
  const cid = quicDestinationCid(datagram, shortHeaderCidLength);
  return cid === null || cid.length === 0 ? null : toHex(cid);
}
