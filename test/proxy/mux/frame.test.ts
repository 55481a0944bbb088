import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FLAG_END, FrameDecoder, FrameType, ResetCode, encodeDataHeader, encodeFrame, encodeReset, encodeWindow, type FrameSink } from '../../../src/proxy/mux/frame.js';
import { prng } from '../../helpers/prng.js';

interface Sink extends FrameSink {
  readonly frames: Array<{ type: number; flags: number; stream: number; payload: string }>;
  readonly problems: string[];
}

function sink(): Sink {
  const frames: Sink['frames'] = [];
  const problems: string[] = [];
  return {
    frames,
    problems,
    frame(type, flags, stream, payload) {
      frames.push({ type, flags, stream, payload: payload.toString('hex') });
    },
    malformed(reason) {
      problems.push(reason);
    },
  };
}

test('golden bytes: the wire layout of each frame type', () => {
  assert.equal(encodeFrame(FrameType.OPEN, FLAG_END, 1, Buffer.from('hi')).toString('hex'), '00000008' + '01' + '01' + '00000001' + '6869');
  assert.equal(encodeFrame(FrameType.END, 0, 0x01020304).toString('hex'), '00000006' + '03' + '00' + '01020304');
  assert.equal(encodeReset(7, ResetCode.DRAINING, 'x').toString('hex'), '00000008' + '04' + '00' + '00000007' + '02' + '78');
  assert.equal(encodeWindow(7, 65536).toString('hex'), '0000000a' + '05' + '00' + '00000007' + '00010000');
  assert.equal(encodeDataHeader(9, 3, true).toString('hex'), '00000009' + '02' + '01' + '00000009');
});

test('frames decode the same whatever the chunking (every split point, seeded random splits)', () => {
  const frames = [
    encodeFrame(FrameType.OPEN, 0, 1, Buffer.from('GET / HTTP/1.1\r\n\r\n')),
    encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(300, 7)),
    encodeFrame(FrameType.DATA, FLAG_END, 1, Buffer.from('tail')),
    encodeWindow(1, 1000),
    encodeReset(2, ResetCode.CANCEL, 'gone'),
  ];
  const all = Buffer.concat(frames);
  const whole = sink();
  new FrameDecoder(whole).push(all);
  assert.equal(whole.frames.length, 5);
  for (let cut = 1; cut < all.length; cut++) {
    const s = sink();
    const d = new FrameDecoder(s);
    d.push(all.subarray(0, cut));
    d.push(all.subarray(cut));
    assert.deepEqual(s.frames, whole.frames, `split at ${cut}`);
  }
  const rnd = prng(42);
  for (let round = 0; round < 200; round++) {
    const s = sink();
    const d = new FrameDecoder(s);
    let off = 0;
    while (off < all.length) {
      const n = 1 + Math.floor(rnd() * 40);
      d.push(all.subarray(off, off + n));
      off += n;
    }
    assert.deepEqual(s.frames, whole.frames);
  }
});

test('a length out of bounds is malformed and stops the decoder', () => {
  for (const len of [0, 5, 200 * 1024]) {
    const s = sink();
    const b = Buffer.alloc(10);
    b.writeUInt32BE(len, 0);
    const d = new FrameDecoder(s);
    d.push(b);
    d.push(encodeFrame(FrameType.END, 0, 1));
    assert.equal(s.problems.length, 1, `len ${len}`);
    assert.equal(s.frames.length, 0);
  }
});

test('an oversized DATA frame is malformed', () => {
  const s = sink();
  new FrameDecoder(s).push(encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(80 * 1024)));
  assert.equal(s.problems.length, 1);
});

test('reset reasons are cut to 255 bytes', () => {
  const f = encodeReset(1, ResetCode.INTERNAL, 'y'.repeat(1000));
  assert.equal(f.length, 10 + 1 + 255);
});
