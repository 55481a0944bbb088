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

test('replay: a nonce is accepted once; out-of-window timestamps are stale', () => {
  const r = new ReplayCache({ windowMs: 30_000 });
  const now = 1_000_000;
  const n = Buffer.alloc(16, 7);
  assert.equal(r.check('lb1', now, n, now), 'ok');
  assert.equal(r.check('lb1', now, n, now + 10), 'replay');
  assert.equal(r.check('lb1', now - 30_001, Buffer.alloc(16, 8), now), 'stale');
  assert.equal(r.check('lb1', now + 30_001, Buffer.alloc(16, 9), now), 'stale');
  assert.equal(r.check('lb1', now + 29_000, Buffer.alloc(16, 9), now), 'ok');
  // After the window the remembered nonce may go: its timestamp alone refuses it now.
  assert.equal(r.check('lb1', now, n, now + 30_001), 'stale');
});

test('replay: bounded memory; eviction raises the origin floor so an evicted nonce stays refused', () => {
  const r = new ReplayCache({ windowMs: 30_000, maxEntries: 100 });
  const now = 5_000_000;
  const nonce = (i: number) => {
    const b = Buffer.alloc(16);
    b.writeUInt32BE(i, 0);
    return b;
  };
  for (let i = 0; i < 1000; i++) assert.equal(r.check('lb1', now + i, nonce(i), now + i), 'ok');
  assert.equal(r.stats.size, 100);
  assert.equal(r.stats.evicted, 900);
  // Nonce 5 was evicted long ago; its replay is refused by the floor.
  assert.equal(r.check('lb1', now + 5, nonce(5), now + 1000), 'stale');
  // Still remembered ones are replays; fresh ones pass; another origin has its own floor.
  assert.equal(r.check('lb1', now + 999, nonce(999), now + 1000), 'replay');
  assert.equal(r.check('lb1', now + 1000, nonce(5000), now + 1000), 'ok');
  assert.equal(r.check('lb2', now + 5, nonce(5), now + 1000), 'ok');
});

test('replay: entries outside the window are expired, not kept', () => {
  const r = new ReplayCache({ windowMs: 1000 });
  for (let i = 0; i < 50; i++) r.check('lb1', i, Buffer.alloc(16, i), i);
  r.check('lb1', 5000, Buffer.alloc(16, 200), 5000);
  assert.equal(r.stats.size, 1);
});
