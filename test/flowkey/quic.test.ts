import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { quicDestinationCid, quicSourceCid, quicFlowKey, toHex } from '../../src/flowkey/quic.js';
import { udpFlowKey, tcpFlowKey } from '../../src/flowkey/transport.js';
import { parseFlowKeySpec } from '../../src/flowkey/spec.js';
import { ErrorCodes, isTandemError } from '../../src/errors.js';
import { prng } from '../helpers/prng.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

/** `head` followed by deterministic filler up to `size` bytes (stands for ciphertext the parser never reads). */
function padded(head: string, size: number): Uint8Array {
  const out = new Uint8Array(size);
  const h = hex(head);
  out.set(h);
  const r = prng(9001);
  for (let i = h.length; i < size; i++) out[i] = Math.floor(r() * 256);
  return out;
}

// RFC 9001 Appendix A.2, the client Initial after protection: first byte c0, version 00000001,
// DCID length 08, DCID 8394c8f03e515708, SCID length 00, token length 00, length 449e, then the
// protected packet number and payload. The datagram is padded to 1200 bytes (RFC 9000 section 14.1);
// only these header bytes are taken from the RFC, the rest is filler.
const RFC9001_A2_CLIENT_INITIAL = padded('c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11', 1200);
// RFC 9001 Appendix A.3 server Initial (header): DCID empty, SCID f067a5502a4262b5.
const RFC9001_A3_SERVER_INITIAL = padded('cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a58', 135);
// RFC 9001 Appendix A.4 Retry, complete: ff 00000001 00 08 f067a5502a4262b5 "token" integrity tag.
const RFC9001_A4_RETRY = hex('ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba');
// RFC 9001 Appendix A.5 ChaCha20-Poly1305 short-header packet, complete: zero-length DCID.
const RFC9001_A5_SHORT = hex('4cfe4189655e5cd55c41f69080575d7999c25a5bfb');

/** A 1-RTT short-header packet (RFC 9000 section 17.3.1) to `dcid`, with a 1-byte packet number. */
function shortHeader(dcid: string, payloadBytes = 40): Uint8Array {
  return padded(`41${dcid}`, 1 + dcid.length / 2 + 1 + payloadBytes);
}

describe('quicDestinationCid', () => {
  it('reads the DCID of the RFC 9001 A.2 client Initial', () => {
    assert.equal(toHex(quicDestinationCid(RFC9001_A2_CLIENT_INITIAL, 8)!), '8394c8f03e515708');
    assert.equal(quicFlowKey(RFC9001_A2_CLIENT_INITIAL, 8), '8394c8f03e515708');
    // The short-header length setting plays no part for long headers.
    assert.equal(quicFlowKey(RFC9001_A2_CLIENT_INITIAL, 0), '8394c8f03e515708');
    assert.equal(quicSourceCid(RFC9001_A2_CLIENT_INITIAL)!.length, 0);
  });

  it('server Initial and Retry: empty DCID gives no key; their SCID is the CID the client will use', () => {
    assert.equal(quicDestinationCid(RFC9001_A3_SERVER_INITIAL, 8)!.length, 0);
    assert.equal(quicFlowKey(RFC9001_A3_SERVER_INITIAL, 8), null);
    assert.equal(toHex(quicSourceCid(RFC9001_A3_SERVER_INITIAL)!), 'f067a5502a4262b5');
    assert.equal(quicFlowKey(RFC9001_A4_RETRY, 8), null);
    assert.equal(toHex(quicSourceCid(RFC9001_A4_RETRY)!), 'f067a5502a4262b5');
    // ...and the client's next packets to that CID key on it.
    assert.equal(quicFlowKey(shortHeader('f067a5502a4262b5'), 8), 'f067a5502a4262b5');
  });

  it('reads the DCID of a short-header 1-RTT packet with the configured length', () => {
    const pkt = shortHeader('0011223344556677');
    assert.equal(quicFlowKey(pkt, 8), '0011223344556677');
    assert.equal(quicFlowKey(pkt, 4), '00112233');
    assert.equal(quicFlowKey(shortHeader('a1b2c3d4e5f60718293a4b5c6d7e8f9001020304'), 20), 'a1b2c3d4e5f60718293a4b5c6d7e8f9001020304');
    assert.equal(quicSourceCid(pkt), null);
  });

  it('RFC 9001 A.5 short header with a zero-length CID: parses, but names no flow', () => {
    assert.equal(quicDestinationCid(RFC9001_A5_SHORT, 0)!.length, 0);
    assert.equal(quicFlowKey(RFC9001_A5_SHORT, 0), null);
    // With an 8-byte CID configured, 21 bytes cannot hold CID + packet number + sample: not QUIC.
    assert.equal(quicDestinationCid(RFC9001_A5_SHORT, 8), null);
  });

  it('version negotiation (version 0) still carries a DCID', () => {
    // RFC 9000 section 17.2.1: 1xxxxxxx, version 0, DCID (the client's SCID), SCID, versions.
    const vn = hex('80 00000000 04 c0ffee01 08 8394c8f03e515708 00000001 6b3343cf');
    assert.equal(quicFlowKey(vn, 8), 'c0ffee01');
    assert.equal(toHex(quicSourceCid(vn)!), '8394c8f03e515708');
  });

  it('rejects DCID lengths above 20 and truncated headers', () => {
    const tooLong = padded(`c0 00000001 15 ${'ab'.repeat(21)} 00`, 1200);
    assert.equal(quicDestinationCid(tooLong, 8), null);
    assert.equal(quicDestinationCid(hex('c0 00000001 08 8394c8f03e51'), 8), null);
    assert.equal(quicDestinationCid(hex('c0 00000001 08 8394c8f03e515708'), 8), null); // no SCID length
    assert.equal(quicDestinationCid(hex('c0 000000'), 8), null);
    assert.equal(quicDestinationCid(hex('c0 00000001 04 01020304 16'), 8), null); // SCID length 22
  });

  it('returns null for garbage, empty and too-short datagrams', () => {
    assert.equal(quicDestinationCid(new Uint8Array(0), 8), null);
    assert.equal(quicDestinationCid(hex('41'), 8), null);
    assert.equal(quicDestinationCid(shortHeader('0011223344556677').subarray(0, 28), 8), null);
    // Fixed bit clear: not a QUIC short header (DNS queries, for instance, usually start so).
    assert.equal(quicDestinationCid(padded('01', 64), 8), null);
    assert.equal(quicFlowKey(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 8), null);
  });

  it('validates the configured short-header length', () => {
    for (const n of [-1, 21, 1.5, Number.NaN]) {
      assert.throws(() => quicDestinationCid(RFC9001_A5_SHORT, n), (e: unknown) => isTandemError(e, ErrorCodes.FLOW_KEY));
    }
  });
});

describe('udp and tcp flow keys', () => {
  const quic = parseFlowKeySpec('quic-cid');
  const conn = parseFlowKeySpec('connection');
  const ip = parseFlowKeySpec('client-ip');

  it('a QUIC client that changes source address keeps its key', () => {
    const before = udpFlowKey(quic, { address: '198.51.100.1', port: 50000 }, shortHeader('0011223344556677'));
    const afterNat = udpFlowKey(quic, { address: '198.51.100.1', port: 61234 }, shortHeader('0011223344556677', 90));
    const afterMove = udpFlowKey(quic, { address: '::ffff:203.0.113.9', port: 443 }, shortHeader('0011223344556677'));
    assert.equal(before, '0011223344556677');
    assert.equal(afterNat, before);
    assert.equal(afterMove, before);
    // Whereas the connection key changes with the address.
    assert.notEqual(udpFlowKey(conn, { address: '198.51.100.1', port: 50000 }, shortHeader('0011223344556677')),
      udpFlowKey(conn, { address: '198.51.100.1', port: 61234 }, shortHeader('0011223344556677')));
  });

  it('quic-cid falls back to the connection key for non-QUIC datagrams', () => {
    assert.equal(udpFlowKey(quic, { address: '::ffff:10.1.2.3', port: 53 }, hex('1234')), '10.1.2.3:53');
    assert.equal(udpFlowKey(quic, { address: '10.1.2.3', port: 53 }, RFC9001_A4_RETRY), '10.1.2.3:53');
    assert.equal(udpFlowKey(quic, { address: '10.1.2.3', port: 53 }, shortHeader('00112233'), { shortHeaderCidLength: 4 }), '00112233');
  });

  it('connection and client-ip', () => {
    const r = { address: '::ffff:10.1.2.3', port: 5353 };
    assert.equal(udpFlowKey(conn, r, new Uint8Array(0)), '10.1.2.3:5353');
    assert.equal(udpFlowKey(ip, r, new Uint8Array(0)), '10.1.2.3');
    assert.equal(tcpFlowKey(conn, { address: '::1', port: 9 }), '[::1]:9');
    assert.equal(tcpFlowKey(ip, r), '10.1.2.3');
    const isFlowKey = (e: unknown): boolean => isTandemError(e, ErrorCodes.FLOW_KEY);
    assert.throws(() => tcpFlowKey(quic, r), isFlowKey);
    assert.throws(() => tcpFlowKey(parseFlowKeySpec('header:x'), r), isFlowKey);
    assert.throws(() => udpFlowKey(parseFlowKeySpec('cookie:x'), r, new Uint8Array(0)), isFlowKey);
  });
});
