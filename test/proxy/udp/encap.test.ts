import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  EncapType,
  MAC_BYTES,
  MAX_UDP_PAYLOAD,
  deriveUdpKey,
  encodeEncap,
  parseEncap,
  verifyEncap,
  type EncapFields,
} from '../../../src/proxy/udp/encap.js';
import { DatagramFreshness, ReplayWindow, WINDOW_BITS } from '../../../src/proxy/udp/replay.js';

const KEY = deriveUdpKey('unit-test-secret-0123456789');
const INC_A = Buffer.from('a1a2a3a4a5a6a7a8', 'hex');
const INC_B = Buffer.from('b1b2b3b4b5b6b7b8', 'hex');
const EPOCHS = { sender: INC_A, receiver: INC_B };
const FIELDS: EncapFields = {
  type: EncapType.FORWARD,
  sender: 'lb1',
  service: 'dns',
  key: '[2001:db8::1]:5353',
  client: { address: '2001:db8::1', port: 5353 },
  ingress: 'lb1',
};

test('encap: round trip keeps every field and the payload, and the MAC verifies', () => {
  const payload = randomBytes(1200);
  const buf = encodeEncap(KEY, FIELDS, EPOCHS, 0x0123_4567_89ab_cdefn, payload)!;
  assert.ok(buf);
  const p = parseEncap(buf)!;
  assert.ok(p);
  assert.equal(p.type, EncapType.FORWARD);
  assert.equal(p.sender, 'lb1');
  assert.equal(p.service, 'dns');
  assert.equal(p.key, FIELDS.key);
  assert.deepEqual(p.client, FIELDS.client);
  assert.equal(p.ingress, 'lb1');
  assert.deepEqual(Buffer.from(p.senderIncarnation), INC_A);
  assert.deepEqual(Buffer.from(p.receiverIncarnation), INC_B);
  assert.equal(p.counter, 0x0123_4567_89ab_cdefn);
  assert.deepEqual(Buffer.from(p.payload), payload);
  assert.equal(verifyEncap(KEY, p), true);
  // Empty payloads are datagrams too.
  const empty = parseEncap(encodeEncap(KEY, { ...FIELDS, type: EncapType.REPLY, key: 'ab'.repeat(20) }, EPOCHS, 1n, Buffer.alloc(0))!)!;
  assert.equal(empty.payload.length, 0);
  assert.equal(empty.type, EncapType.REPLY);
  assert.equal(verifyEncap(KEY, empty), true);
});

test('encap: any flipped bit, a wrong key or a cut MAC fails verification', () => {
  const buf = encodeEncap(KEY, FIELDS, EPOCHS, 42n, Buffer.from('hello'))!;
  for (let i = 0; i < buf.length; i++) {
    const bad = Buffer.from(buf);
    bad[i] ^= 0x01;
    const p = parseEncap(bad);
    // Either the framing no longer parses, or the MAC catches it.
    if (p) assert.equal(verifyEncap(KEY, p), false, `bit flip at byte ${i} went unnoticed`);
  }
  assert.equal(verifyEncap(deriveUdpKey('another-secret-0123456789'), parseEncap(buf)!), false);
  assert.equal(parseEncap(buf.subarray(0, 20)), null);
});

test('encap: the key is derived, not the secret; different secrets give different keys', () => {
  assert.equal(KEY.length, 32);
  assert.notDeepEqual(KEY, Buffer.from('unit-test-secret-0123456789'));
  assert.notDeepEqual(KEY, deriveUdpKey('unit-test-secret-0123456780'));
});

test('encap: malformed framing is refused before any MAC work', () => {
  assert.equal(parseEncap(Buffer.alloc(0)), null);
  assert.equal(parseEncap(randomBytes(200)), null); // wrong magic (with overwhelming probability)
  const buf = encodeEncap(KEY, FIELDS, EPOCHS, 1n, Buffer.from('x'))!;
  const v = Buffer.from(buf);
  v[2] = 9; // version
  assert.equal(parseEncap(v), null);
  const t = Buffer.from(buf);
  t[3] = 7; // type
  assert.equal(parseEncap(t), null);
  const l = Buffer.from(buf);
  l[28] = 250; // sender length runs past the end
  assert.equal(parseEncap(l), null);
});

test('encap: a datagram that would exceed the UDP limit once encapsulated is refused, never cut', () => {
  const room = MAX_UDP_PAYLOAD - encodeEncap(KEY, FIELDS, EPOCHS, 1n, Buffer.alloc(0))!.length;
  assert.ok(encodeEncap(KEY, FIELDS, EPOCHS, 1n, Buffer.alloc(room)));
  assert.equal(encodeEncap(KEY, FIELDS, EPOCHS, 1n, Buffer.alloc(room + 1)), null);
  assert.equal(encodeEncap(KEY, { ...FIELDS, sender: 'x'.repeat(256) }, EPOCHS, 1n, Buffer.alloc(1)), null);
  assert.equal(encodeEncap(KEY, FIELDS, { sender: INC_A, receiver: Buffer.alloc(4) }, 1n, Buffer.alloc(1)), null, 'an incarnation of the wrong size');
  assert.ok(room > 65_000 && MAC_BYTES === 16);
});

test('replay window: accepts each number once, in any order within the window', () => {
  const w = new ReplayWindow(1000n);
  assert.equal(w.accept(1000n), false, 'at the floor');
  assert.equal(w.accept(1005n), true);
  assert.equal(w.accept(1005n), false, 'duplicate');
  assert.equal(w.accept(1003n), true, 'late but inside the window');
  assert.equal(w.accept(1003n), false);
  assert.equal(w.accept(1001n), true);
  assert.equal(w.top, 1005n);
});

test('replay window: numbers older than the window are refused; a jump clears the ring', () => {
  const w = new ReplayWindow(0n);
  const base = 1n << 40n;
  assert.equal(w.accept(base), true);
  const top = base + BigInt(WINDOW_BITS) + 100n;
  assert.equal(w.accept(top), true);
  assert.equal(w.accept(base), false, 'below the window now');
  assert.equal(w.accept(top - BigInt(WINDOW_BITS)), false, 'exactly one window back is out');
  assert.equal(w.accept(top - BigInt(WINDOW_BITS) + 1n), true, 'the oldest slot still inside');
  // Sliding over bits that were set must not leave stale marks behind.
  const w2 = new ReplayWindow(0n);
  for (let i = 1n; i <= 2000n; i++) assert.equal(w2.accept(i), true);
  for (let i = 2000n - BigInt(WINDOW_BITS) + 1n; i <= 2000n; i++) assert.equal(w2.accept(i), false);
  for (let i = 2001n; i <= 4000n; i += 3n) assert.equal(w2.accept(i), true);
  for (let i = 2002n; i <= 4000n; i += 3n) if (4000n - i < BigInt(WINDOW_BITS)) assert.equal(w2.accept(i), true, `fresh ${i}`);
});

test('replay window: random order, no duplicate accepted, every fresh in-window number accepted', () => {
  const w = new ReplayWindow(0n);
  const seen = new Set<bigint>();
  let top = 0n;
  let x = 12345;
  for (let i = 0; i < 20_000; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const seq = 1n + BigInt(Math.floor(i * 1.5)) + BigInt(x % 400) - 200n;
    if (seq <= 0n) continue;
    const inWindow = seq > top || top - seq < BigInt(WINDOW_BITS);
    const expect = inWindow && !seen.has(seq);
    assert.equal(w.accept(seq), expect, `seq ${seq} top ${top}`);
    if (expect) {
      seen.add(seq);
      if (seq > top) top = seq;
    }
  }
});

test('freshness: only the current pair of incarnations passes; a new sender incarnation starts a new window', () => {
  const f = new DatagramFreshness(INC_B);
  assert.equal(f.current(INC_A, INC_A, INC_B), true);
  assert.equal(f.current(null, INC_A, INC_B), false, 'the sender announced nothing yet');
  assert.equal(f.current(INC_A, INC_B, INC_B), false, 'another (older) incarnation of the sender');
  assert.equal(f.current(INC_A, INC_A, INC_A), false, 'addressed to another incarnation of the receiver');
  assert.equal(f.accept('lb1', INC_A, 1n), true);
  assert.equal(f.accept('lb1', INC_A, 1n), false, 'replay');
  assert.equal(f.accept('lb1', INC_A, 2n), true);
  // The sender restarted (a new OPEN announced INC_C): its counter starts at 1 again.
  const INC_C = Buffer.from('c1c2c3c4c5c6c7c8', 'hex');
  assert.equal(f.accept('lb1', INC_C, 1n), true);
  assert.equal(f.accept('lb1', INC_C, 1n), false);
  assert.equal(f.accept('lb2', INC_C, 1n), true, 'windows are per sender');
});
