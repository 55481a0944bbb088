import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes, isTandemError } from '../../src/errors.js';
import {
  ByteReader,
  ByteWriter,
  CONTROL_FRAME_TYPES,
  FrameDecoder,
  FrameType,
  PROTOCOL_VERSION,
  encodeFrame,
  type Frame,
} from '../../src/cluster/frame.js';
import { prng } from '../helpers/prng.js';

function drain(d: FrameDecoder): Frame[] {
  const out: Frame[] = [];
  for (let f = d.next(); f !== null; f = d.next()) out.push({ type: f.type, payload: Buffer.from(f.payload), size: f.size });
  return out;
}

test('header layout: u32 length, version, type, payload', () => {
  const f = encodeFrame(FrameType.ACK, Buffer.from([1, 2, 3]));
  assert.deepEqual([...f], [0, 0, 0, 5, PROTOCOL_VERSION, FrameType.ACK, 1, 2, 3]);
  const w = ByteWriter.frame(FrameType.OPEN);
  w.u8(7);
  w.u64(2 ** 53 - 1);
  assert.deepEqual([...w.finish().subarray(0, 7)], [0, 0, 0, 11, PROTOCOL_VERSION, FrameType.OPEN, 7]);
});

test('ByteWriter/ByteReader round trip and bounds', () => {
  const w = new ByteWriter(4);
  w.u8(255);
  w.u16(65535);
  w.u32(0xdeadbeef);
  w.u64(2 ** 53 - 1);
  w.f64(-1.5);
  for (const v of [0, 1, 127, 128, 300, 16383, 16384, 2 ** 31 - 1]) w.varint(v);
  w.str('');
  w.str('ascii');
  w.str('é€😀');
  w.str('x'.repeat(1000));
  const r = new ByteReader(Buffer.from(w.view()));
  assert.equal(r.u8(), 255);
  assert.equal(r.u16(), 65535);
  assert.equal(r.u32(), 0xdeadbeef);
  assert.equal(r.u64(), 2 ** 53 - 1);
  assert.equal(r.f64(), -1.5);
  for (const v of [0, 1, 127, 128, 300, 16383, 16384, 2 ** 31 - 1]) assert.equal(r.varint(), v);
  assert.equal(r.str(10), '');
  assert.equal(r.str(10), 'ascii');
  assert.equal(r.str(20), 'é€😀');
  assert.equal(r.str(1000), 'x'.repeat(1000));
  r.end();
  assert.throws(() => r.u8(), (e: unknown) => isTandemError(e, ErrorCodes.FRAME_MALFORMED));
  // A string over its limit is refused before it is read.
  const long = new ByteWriter();
  long.str('y'.repeat(50));
  assert.throws(() => new ByteReader(Buffer.from(long.view())).str(49), (e: unknown) => isTandemError(e, ErrorCodes.FRAME_MALFORMED));
  // Invalid UTF-8 is refused, not replaced with U+FFFD.
  assert.throws(() => new ByteReader(Buffer.from([2, 0xc3, 0x28])).str(10), (e: unknown) => isTandemError(e, ErrorCodes.FRAME_MALFORMED));
  // u64 above 2^53 and over-long varints are refused.
  assert.throws(() => new ByteReader(Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0])).u64(), (e: unknown) => isTandemError(e, ErrorCodes.FRAME_MALFORMED));
  assert.throws(() => new ByteReader(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x01])).varint(), (e: unknown) => isTandemError(e, ErrorCodes.FRAME_MALFORMED));
  assert.throws(() => new ByteReader(Buffer.from([0x01, 0x02])).end(), (e: unknown) => isTandemError(e, ErrorCodes.FRAME_MALFORMED));
});

test('decoder: random chunking yields the same frames (fuzz-ish, 300 rounds)', () => {
  const rand = prng(42);
  for (let round = 0; round < 300; round++) {
    const frames: Buffer[] = [];
    const n = 1 + Math.floor(rand() * 20);
    for (let i = 0; i < n; i++) {
      const len = Math.floor(rand() ** 3 * 5000);
      const payload = Buffer.alloc(len);
      for (let j = 0; j < len; j++) payload[j] = Math.floor(rand() * 256);
      frames.push(encodeFrame(FrameType.ENTRIES, payload));
    }
    const all = Buffer.concat(frames);
    const d = new FrameDecoder({ types: CONTROL_FRAME_TYPES });
    const got: Frame[] = [];
    let pos = 0;
    while (pos < all.length) {
      const step = 1 + Math.floor(rand() ** 2 * 3000);
      d.push(all.subarray(pos, pos + step));
      pos += step;
      got.push(...drain(d));
    }
    assert.equal(got.length, frames.length, `round ${round}`);
    for (let i = 0; i < n; i++) {
      assert.equal(got[i].type, FrameType.ENTRIES);
      assert.ok(got[i].payload.equals(frames[i].subarray(6)), `round ${round} frame ${i}`);
      assert.equal(got[i].size, frames[i].length);
    }
    assert.equal(d.bufferedBytes, 0);
  }
});

test('decoder: a frame inside one chunk is a view, not a copy', () => {
  const f = encodeFrame(FrameType.ACK, Buffer.from('abcdefgh'));
  const chunk = Buffer.concat([f, f]);
  const d = new FrameDecoder({ types: CONTROL_FRAME_TYPES });
  d.push(chunk);
  const a = d.next()!;
  assert.equal(a.payload.buffer, chunk.buffer);
  assert.equal(a.payload.byteOffset, chunk.byteOffset + 6);
});

test('decoder: oversized length refused from the first 4 bytes', () => {
  const d = new FrameDecoder({ maxFrameBytes: 1024 * 1024, types: CONTROL_FRAME_TYPES });
  const h = Buffer.alloc(4);
  h.writeUInt32BE(1024 * 1024 + 1);
  d.push(h);
  assert.throws(() => d.next(), (e: unknown) => isTandemError(e, ErrorCodes.FRAME_TOO_LARGE));
  // Exactly the limit is fine.
  const ok = new FrameDecoder({ maxFrameBytes: 100, types: CONTROL_FRAME_TYPES });
  ok.push(encodeFrame(FrameType.ACK, Buffer.alloc(98)));
  assert.equal(ok.next()?.payload.length, 98);
});

test('decoder: unknown version, unknown type, short length are FRAME_MALFORMED before the body arrives', () => {
  const bad = (bytes: number[]): void => {
    const d = new FrameDecoder({ types: CONTROL_FRAME_TYPES });
    d.push(Buffer.from(bytes));
    assert.throws(() => d.next(), (e: unknown) => isTandemError(e, ErrorCodes.FRAME_MALFORMED), JSON.stringify(bytes));
  };
  bad([0, 0, 1, 0, 99, FrameType.ACK]); // version 99, body not here yet
  bad([0, 0, 1, 0, PROTOCOL_VERSION, 0x7f]); // unknown type
  bad([0, 0, 0, 1, PROTOCOL_VERSION]); // length < 2
  bad([0, 0, 0, 2, PROTOCOL_VERSION, FrameType.HELLO]); // a handshake type on a control link
});

test('decoder: truncated input yields nothing; remaining() returns the untouched bytes', () => {
  const f = encodeFrame(FrameType.HEARTBEAT);
  const tail = Buffer.from('GET / HTTP/1.1\r\n');
  const d = new FrameDecoder({ types: CONTROL_FRAME_TYPES });
  d.push(Buffer.concat([f, tail.subarray(0, 5)]));
  d.push(tail.subarray(5));
  assert.equal(d.next()?.type, FrameType.HEARTBEAT);
  assert.ok(d.remaining().equals(tail));
  assert.equal(d.bufferedBytes, 0);
  assert.equal(d.next(), null);
});
