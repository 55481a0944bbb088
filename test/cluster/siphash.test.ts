import { test } from 'node:test';
import assert from 'assert/strict';
import { sipKey, siphash24, siphash24Hex, siphash24Into } from '../../src/cluster/siphash.js';
import { prng } from '../helpers/prng.js';

/**
 * vectors_sip64 of the SipHash reference implementation (github.com/veorq/SipHash, vectors.h):
 * SipHash-2-4 under key 00 01 .. 0f of the messages of length i = 00 01 .. (i-1), i = 0..63.
 * Each entry is the output's 8 bytes in the order vectors.h lists them, i.e. little-endian.
 */
const VECTORS: readonly string[] = [
  '310e0edd47db6f72', // 0
  'fd67dc93c539f874', // 1
  '5a4fa9d909806c0d', // 2
  '2d7efbd796666785', // 3
  'b7877127e09427cf', // 4
  '8da699cd64557618', // 5
  'cee3fe586e46c9cb', // 6
  '37d1018bf50002ab', // 7
  '6224939a79f5f593', // 8
  'b0e4a90bdf82009e', // 9
  'f3b9dd94c5bb5d7a', // 10
  'a7ad6b22462fb3f4', // 11
  'fbe50e86bc8f1e75', // 12
  '903d84c02756ea14', // 13
  'eef27a8e90ca23f7', // 14
  'e545be4961ca29a1', // 15
  'db9bc2577fcc2a3f', // 16
  '9447be2cf5e99a69', // 17
  '9cd38d96f0b3c14b', // 18
  'bd6179a71dc96dbb', // 19
  '98eea21af25cd6be', // 20
  'c7673b2eb0cbf2d0', // 21
  '883ea3e395675393', // 22
  'c8ce5ccd8c030ca8', // 23
  '94af49f6c650adb8', // 24
  'eab8858ade92e1bc', // 25
  'f315bb5bb835d817', // 26
  'adcf6b0763612e2f', // 27
  'a5c91da7acaa4dde', // 28
  '716595876650a2a6', // 29
  '28ef495c53a387ad', // 30
  '42c341d8fa92d832', // 31
  'ce7cf2722f512771', // 32
  'e37859f94623f3a7', // 33
  '381205bb1ab0e012', // 34
  'ae97a10fd434e015', // 35
  'b4a31508beff4d31', // 36
  '81396229f0907902', // 37
  '4d0cf49ee5d4dcca', // 38
  '5c73336a76d8bf9a', // 39
  'd0a704536ba93e0e', // 40
  '925958fcd6420cad', // 41
  'a915c29bc8067318', // 42
  '952b79f3bc0aa6d4', // 43
  'f21df2e41d4535f9', // 44
  '87577519048f53a9', // 45
  '10a56cf5dfcd9adb', // 46
  'eb75095ccd986cd0', // 47
  '51a9cb9ecba312e6', // 48
  '96afadfc2ce666c7', // 49
  '72fe52975a4364ee', // 50
  '5a1645b276d592a1', // 51
  'b274cb8ebf87870a', // 52
  '6f9bb4203de7b381', // 53
  'eaecb2a30b22a87f', // 54
  '9924a43cc1315724', // 55
  'bd838d3aafbf8db7', // 56
  '0b1a2a3265d51aea', // 57
  '135079a3231ce660', // 58
  '932b2846e4d70666', // 59
  'e1915f5cb1eca46c', // 60
  'f325965ca16d629f', // 61
  '575ff28e60381be5', // 62
  '724506eb4c328a95', // 63
];

const KEY = Uint8Array.from({ length: 16 }, (_, i) => i);
const message = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => i);
/** Little-endian byte string to the 64-bit integer's hex, most significant digit first. */
const leToHex = (le: string): string => (le.match(/../g) ?? []).reverse().join('');

/** Straightforward BigInt SipHash-2-4 after the paper, as an oracle independent of the 32-bit split. */
function referenceSipHash(key: Uint8Array, msg: Uint8Array): bigint {
  const M = (1n << 64n) - 1n;
  const le64 = (b: Uint8Array, o: number, n = 8): bigint => {
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[o + i]);
    return v;
  };
  const rotl = (x: bigint, r: bigint): bigint => ((x << r) | (x >> (64n - r))) & M;
  const k0 = le64(key, 0), k1 = le64(key, 8);
  let v0 = k0 ^ 0x736f6d6570736575n, v1 = k1 ^ 0x646f72616e646f6dn;
  let v2 = k0 ^ 0x6c7967656e657261n, v3 = k1 ^ 0x7465646279746573n;
  const round = (): void => {
    v0 = (v0 + v1) & M; v1 = rotl(v1, 13n); v1 ^= v0; v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & M; v3 = rotl(v3, 16n); v3 ^= v2;
    v0 = (v0 + v3) & M; v3 = rotl(v3, 21n); v3 ^= v0;
    v2 = (v2 + v1) & M; v1 = rotl(v1, 17n); v1 ^= v2; v2 = rotl(v2, 32n);
  };
  const full = msg.length - (msg.length % 8);
  const words: bigint[] = [];
  for (let o = 0; o < full; o += 8) words.push(le64(msg, o));
  words.push((BigInt(msg.length & 0xff) << 56n) | le64(msg, full, msg.length - full));
  for (const m of words) {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  v2 ^= 0xffn;
  for (let i = 0; i < 4; i++) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

test('siphash: all 64 reference vectors (lengths 0 to 63)', () => {
  assert.equal(VECTORS.length, 64);
  for (let i = 0; i < 64; i++) {
    assert.equal(siphash24Hex(KEY, message(i)), leToHex(VECTORS[i]), `vector ${i}`);
  }
});

test('siphash: the 63-byte vector and the empty message, spelled out', () => {
  assert.equal(siphash24Hex(KEY, message(0)), '726fdb47dd0e0e31');
  assert.equal(siphash24Hex(KEY, message(63)), '958a324ceb064572');
  assert.equal(siphash24(KEY, message(0)), 0x726fdb47dd0e0e31n);
});

test('siphash: siphash24Into writes [hi, lo] unsigned and honours length', () => {
  const out = new Uint32Array(2);
  const buf = new Uint8Array(100);
  buf.set(message(15));
  buf.fill(0xee, 15); // bytes past `length` must not matter
  siphash24Into(sipKey(KEY), buf, 15, out);
  const expected = BigInt(`0x${leToHex(VECTORS[15])}`);
  assert.equal(out[0], Number(expected >> 32n));
  assert.equal(out[1], Number(expected & 0xffffffffn));
});

test('siphash: agrees with a BigInt reference on random keys and messages', () => {
  const rand = prng(0x5197);
  for (let n = 0; n < 300; n++) {
    const key = Uint8Array.from({ length: 16 }, () => Math.floor(rand() * 256));
    // Lengths up to 300 so the length byte wraps (length mod 256) at least once.
    const msg = Uint8Array.from({ length: n % 100 === 99 ? 280 + (n % 7) : n % 70 }, () => Math.floor(rand() * 256));
    assert.equal(siphash24(key, msg), referenceSipHash(key, msg), `key ${Buffer.from(key).toString('hex')} len ${msg.length}`);
  }
});

test('siphash: the BigInt oracle itself reproduces the reference vectors', () => {
  for (let i = 0; i < 64; i += 9) {
    assert.equal(referenceSipHash(KEY, message(i)).toString(16).padStart(16, '0'), leToHex(VECTORS[i]));
  }
});

test('siphash: sipKey rejects keys that are not 16 bytes', () => {
  assert.throws(() => sipKey(new Uint8Array(15)), RangeError);
  assert.throws(() => sipKey(new Uint8Array(32)), RangeError);
});
