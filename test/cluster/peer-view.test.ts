import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Witnesses, decodeView, encodeViewHeartbeat } from '../../src/cluster/peer-view.js';
import { FRAME_HEADER_BYTES, FrameType } from '../../src/cluster/frame.js';
import { ErrorCodes, TandemError } from '../../src/errors.js';

test('a view rides on a heartbeat and round-trips; an empty heartbeat (an older peer) is no view', () => {
  const f = encodeViewHeartbeat([{ id: 'lb1', silenceMs: 12.4 }, { id: 'lb3', silenceMs: null }, { id: 'lb4', silenceMs: 1e12 }]);
  assert.equal(f[5], FrameType.HEARTBEAT);
  assert.deepEqual(decodeView(f.subarray(FRAME_HEADER_BYTES)), [{ id: 'lb1', silenceMs: 12 }, { id: 'lb3', silenceMs: null }, { id: 'lb4', silenceMs: 0xffff_fffe }]);
  assert.equal(decodeView(Buffer.alloc(0)), null);
  const malformed = (b: Buffer) => assert.throws(() => decodeView(b), (e: unknown) => e instanceof TandemError && e.code === ErrorCodes.FRAME_MALFORMED);
  malformed(f.subarray(FRAME_HEADER_BYTES, f.length - 2));
  malformed(Buffer.concat([f.subarray(FRAME_HEADER_BYTES), Buffer.from([1])]));
});

test('witnessed silence: the least over the views, each aged since it arrived; a node is not its own witness', () => {
  const w = new Witnesses();
  assert.equal(w.silence('lb1', 0), Infinity);
  w.record('lb3', [{ id: 'lb1', silenceMs: 100 }, { id: 'lb2', silenceMs: 5 }], 1000);
  w.record('lb4', [{ id: 'lb1', silenceMs: 900 }, { id: 'lb2', silenceMs: null }], 1100);
  w.record('lb1', [{ id: 'lb1', silenceMs: 0 }], 1100);
  assert.equal(w.silence('lb1', 1500), 600, 'lb3 heard lb1 100 ms before its view, which is 500 ms old');
  assert.equal(w.witness('lb1', 1500, 750), 'lb3');
  assert.equal(w.witness('lb1', 1500, 500), null, 'none heard it that recently');
  assert.equal(w.silence('lb2', 1000), 5);
  assert.ok(w.sentView('lb4') && !w.sentView('lb2'));
  // A newer view replaces the older one: lb3 no longer hears lb1.
  w.record('lb3', [{ id: 'lb1', silenceMs: 4000 }], 2000);
  assert.equal(w.silence('lb1', 2000), 1800, 'now lb4 (900 ms + 900 ms) is the freshest');
  w.forget('lb4');
  assert.equal(w.silence('lb1', 2000), 4000);
});
