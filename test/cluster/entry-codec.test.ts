import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes, isTandemError } from '../../src/errors.js';
import type { FlowEntry } from '../../src/cluster/flow-entry.js';
import { ByteReader, ByteWriter } from '../../src/cluster/frame.js';
import { EntryBatchEncoder, decodeEntryBatch, decodeEntryBatchBuffer, encodeEntryBatch, MAX_KEY_BYTES } from '../../src/cluster/entry-codec.js';
import { prng, randomKey } from '../helpers/prng.js';

function entry(i: number, over: Partial<FlowEntry> = {}): FlowEntry {
  return {
    service: i % 3 === 0 ? 'web' : 'db',
    key: `10.0.${i % 256}.${i % 7}:${30000 + i}`,
    primary: `lb${1 + (i % 3)}`,
    backup: i % 5 === 0 ? null : `lb${1 + ((i + 1) % 3)}`,
    backend: i % 4 === 0 ? null : `127.0.0.1:${9000 + (i % 3)}`,
    version: 1_700_000_000_000 * 1024 + i,
    writer: `lb${1 + (i % 3)}`,
    lastActive: 1_700_000_000_000 + i,
    ended: i % 11 === 0,
    ...over,
  };
}

const isMalformed = (e: unknown): boolean => isTandemError(e, ErrorCodes.FRAME_MALFORMED);

test('round trip: every field, nulls, tombstones, unicode keys', () => {
  const rand = prng(7);
  const entries: FlowEntry[] = [];
  for (let i = 0; i < 500; i++) entries.push(entry(i, i % 9 === 0 ? { key: randomKey(rand) + 'é😀' } : {}));
  entries.push(entry(1, { key: '', lastActive: -0.5, version: 0 }));
  entries.push(entry(2, { key: 'k'.repeat(MAX_KEY_BYTES) }));
  const buf = encodeEntryBatch(entries);
  assert.deepEqual(decodeEntryBatchBuffer(buf), entries);
});

test('compact: a typical entry costs about 40 bytes', () => {
  const entries = Array.from({ length: 1000 }, (_, i) => entry(i));
  const per = encodeEntryBatch(entries).length / entries.length;
  assert.ok(per < 48, `bytes per entry ${per}`);
});

test('an entry with an oversized key is refused before anything is written', () => {
  const w = new ByteWriter();
  const enc = new EntryBatchEncoder(w);
  enc.add(entry(1));
  const before = w.length;
  assert.throws(() => enc.add(entry(2, { key: 'k'.repeat(MAX_KEY_BYTES + 1) })), (e: unknown) => isTandemError(e, ErrorCodes.FRAME_TOO_LARGE));
  assert.equal(w.length, before);
  enc.add(entry(3));
  enc.finish();
  assert.deepEqual(decodeEntryBatchBuffer(Buffer.from(w.view())), [entry(1), entry(3)]);
});

test('malformed batches throw FRAME_MALFORMED (never a partial result)', () => {
  const good = encodeEntryBatch([entry(1), entry(2), entry(3)]);
  // Every truncation.
  for (let n = 0; n < good.length; n++) assert.throws(() => decodeEntryBatchBuffer(good.subarray(0, n)), isMalformed, `truncated at ${n}`);
  // Trailing garbage.
  assert.throws(() => decodeEntryBatchBuffer(Buffer.concat([good, Buffer.from([0])])), isMalformed);
  // A count larger than the bytes can hold.
  const big = Buffer.from(good);
  big.writeUInt32BE(0xffffffff, 0);
  assert.throws(() => decodeEntryBatchBuffer(big), isMalformed);
  // Unknown flag bit.
  const flags = Buffer.from(good);
  flags[4] |= 0x80;
  assert.throws(() => decodeEntryBatchBuffer(flags), isMalformed);
  // A string reference past the table.
  const one = encodeEntryBatch([entry(1, { backup: null, backend: null })]);
  const ref = Buffer.from(one);
  ref[5] = 9; // service ref: literal (0) -> #9
  assert.throws(() => decodeEntryBatchBuffer(ref), isMalformed);
  // NaN / fractional / negative version, infinite lastActive.
  for (const version of [NaN, 1.5, -1, 2 ** 53]) {
    assert.throws(() => decodeEntryBatchBuffer(encodeEntryBatch([entry(1, { version })])), isMalformed, `version ${version}`);
  }
  assert.throws(() => decodeEntryBatchBuffer(encodeEntryBatch([entry(1, { lastActive: Infinity })])), isMalformed);
  // Empty service / primary / writer.
  assert.throws(() => decodeEntryBatchBuffer(encodeEntryBatch([entry(1, { primary: '' })])), isMalformed);
});

test('random corruption never escapes as anything but FRAME_MALFORMED or a valid decode', () => {
  const rand = prng(99);
  const good = encodeEntryBatch(Array.from({ length: 20 }, (_, i) => entry(i)));
  for (let round = 0; round < 2000; round++) {
    const b = Buffer.from(good);
    const flips = 1 + Math.floor(rand() * 4);
    for (let k = 0; k < flips; k++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
    try {
      const out = decodeEntryBatchBuffer(b);
      for (const e of out) assert.ok(Number.isSafeInteger(e.version) && e.version >= 0);
    } catch (err) {
      assert.ok(isMalformed(err), String(err));
    }
  }
});

test('throughput sanity: encode+decode 100k entries', (t) => {
  const entries = Array.from({ length: 100_000 }, (_, i) => entry(i));
  const t0 = performance.now();
  const buf = encodeEntryBatch(entries);
  const t1 = performance.now();
  const back = decodeEntryBatchBuffer(buf);
  const t2 = performance.now();
  assert.equal(back.length, entries.length);
  t.diagnostic(`encode ${Math.round(entries.length / ((t1 - t0) / 1000))}/s, decode ${Math.round(entries.length / ((t2 - t1) / 1000))}/s, ${(buf.length / entries.length).toFixed(1)} B/entry`);
});

test('decode with receivedAt: lastActive is the receiver\'s clock, the sender\'s still validated', () => {
  const buf = encodeEntryBatch([entry(1, { lastActive: 5 }), entry(2, { lastActive: 1e300 })]);
  const r = new ByteReader(buf);
  const got = decodeEntryBatch(r, 1_800_000_000_000);
  assert.deepEqual(got.map((e) => e.lastActive), [1_800_000_000_000, 1_800_000_000_000]);
  assert.throws(() => decodeEntryBatch(new ByteReader(encodeEntryBatch([entry(1, { lastActive: Infinity })])), 1), isMalformed);
});
