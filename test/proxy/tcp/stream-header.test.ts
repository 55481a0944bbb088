import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeForwardHeader,
  deriveForwardKey,
  encodeForwardHeader,
  remainingHeaderBytes,
  HEADER_PREFIX_BYTES,
  MAC_BYTES,
} from '../../../src/proxy/tcp/stream-header.js';
import { ReplayCache } from '../../../src/proxy/tcp/replay.js';

const KEY = deriveForwardKey('a-cluster-secret-of-some-length');
const H = {
  service: 'db',
  key: '[2001:db8::7]:40000',
  clientAddress: '2001:db8::7',
  clientPort: 40000,
  localAddress: '127.0.0.2',
  localPort: 17310,
  ingress: 'lb2',
};

test('forward header: round trip, with the prefix announcing the rest', () => {
  const b = encodeForwardHeader(KEY, { ...H, timestampMs: 1_750_000_000_123 });
  assert.equal(b.subarray(0, 4).toString('latin1'), 'TDTF');
  assert.equal(remainingHeaderBytes(b.subarray(0, HEADER_PREFIX_BYTES)), b.length - HEADER_PREFIX_BYTES);
  const d = decodeForwardHeader(KEY, b);
  assert.ok(d.ok);
  assert.equal(d.header.timestampMs, 1_750_000_000_123);
  assert.equal(d.header.nonce.length, 16);
  const { timestampMs: _t, nonce: _n, ...rest } = d.header;
  assert.deepEqual(rest, H);
});

test('forward header: HKDF key is stable and distinct per secret', () => {
  assert.deepEqual(deriveForwardKey('a-cluster-secret-of-some-length'), KEY);
  assert.notDeepEqual(deriveForwardKey('another-cluster-secret'), KEY);
  assert.equal(KEY.length, 32);
});

test('forward header: every flipped byte and a wrong key are refused', () => {
  const b = encodeForwardHeader(KEY, H);
  for (let i = 0; i < b.length; i++) {
    const t = Buffer.from(b);
    t[i] ^= 0x01;
    const d = decodeForwardHeader(KEY, t);
    assert.equal(d.ok, false, `byte ${i}`);
  }
  const other = decodeForwardHeader(deriveForwardKey('another-cluster-secret'), b);
  assert.deepEqual(other, { ok: false, reason: 'bad_mac' });
  assert.deepEqual(decodeForwardHeader(KEY, b.subarray(0, b.length - 1)), { ok: false, reason: 'malformed' });
  const junk = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.padEnd(200, 'x'));
  assert.equal(remainingHeaderBytes(junk), null);
});

test('forward header: a made-up header with a random MAC is bad_mac', () => {
  const b = encodeForwardHeader(KEY, H);
  b.fill(0xaa, b.length - MAC_BYTES);
  assert.deepEqual(decodeForwardHeader(KEY, b), { ok: false, reason: 'bad_mac' });
});

test('replay: a nonce is accepted once per origin, whatever the header\'s timestamp says', () => {
  const r = new ReplayCache();
  const n = Buffer.alloc(16, 7);
  assert.equal(r.check('lb1', n), 'ok');
  assert.equal(r.check('lb1', n), 'replay');
  assert.equal(r.check('lb2', n), 'ok', 'another ingress node');
  assert.equal(r.check('lb1', Buffer.alloc(16, 8)), 'ok');
});

test('replay: bounded memory, the oldest nonce forgotten first', () => {
  const r = new ReplayCache({ maxEntries: 100 });
  const nonce = (i: number) => {
    const b = Buffer.alloc(16);
    b.writeUInt32BE(i, 0);
    return b;
  };
  for (let i = 0; i < 1000; i++) assert.equal(r.check('lb1', nonce(i)), 'ok');
  assert.equal(r.stats.size, 100);
  assert.equal(r.stats.evicted, 900);
  assert.equal(r.check('lb1', nonce(999)), 'replay', 'recent ones are remembered');
  assert.equal(r.check('lb1', nonce(950)), 'replay');
});
