/**
 * Extension control frames on real links (two in-process Clusters): a registered handler gets the
 * frame; without a handler the frame is ignored and the link stays; a handler that throws a
 * malformed-frame error drops the link like any bad frame, counted. Ports 26050-26059.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteWriter, FrameType } from '../../src/cluster/frame.js';
import { ErrorCodes, TandemError } from '../../src/errors.js';
import { allAlive, makeNode, settingsFor, startAll, stopAll, waitFor } from './fixtures/cluster-harness.js';

function frame(bytes: Buffer): Buffer {
  const w = ByteWriter.frame(FrameType.TLS_TICKET_KEYS, bytes.length + 8);
  w.bytes(bytes);
  return w.finish();
}

test('extension frames: delivered to the handler, ignored without one, a throwing handler drops the link', async () => {
  const settings = settingsFor(26050, 2);
  const [a, b] = [makeNode(settings, 'lb1'), makeNode(settings, 'lb2')];
  const got: Array<[string, string]> = [];
  const ups: string[] = [];
  b.cluster.onControlLinkUp((peer) => ups.push(peer));
  await startAll([a, b]);
  try {
    await waitFor(() => allAlive([a, b]), 5000, 'links up');
    assert.deepEqual(ups, ['lb1']);
    assert.throws(() => b.cluster.onControlFrame(FrameType.ENTRIES, () => {}), TypeError);

    // No handler on b yet: ignored, the link stays.
    assert.equal(a.cluster.sendControl('lb2', frame(Buffer.from('nobody'))), true);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(allAlive([a, b]));

    b.cluster.onControlFrame(FrameType.TLS_TICKET_KEYS, (peer, payload) => {
      if (payload.toString() === 'bad') throw new TandemError(ErrorCodes.FRAME_MALFORMED, 'bad payload');
      got.push([peer, payload.toString()]);
    });
    a.cluster.sendControl('lb2', frame(Buffer.from('hello')));
    await waitFor(() => got.length === 1, 5000, 'delivery');
    assert.deepEqual(got, [['lb1', 'hello']]);

    const remote = b.cluster.controlLinkRemote('lb1');
    a.cluster.sendControl('lb2', frame(Buffer.from('bad')));
    await waitFor(() => b.cluster.controlLinkRemote('lb1') !== remote, 5000, 'the link dropped and redialled');
    const m = await b.registry.getSingleMetric('tandem_peer_rejected_frames_total')?.get();
    assert.equal(m?.values.find((v) => v.labels.reason === 'malformed')?.value, 1);
    await waitFor(() => ups.length === 2, 5000, 'link-up handler on the new link');
    assert.equal(a.cluster.sendControl('lb9', frame(Buffer.from('x'))), false);
  } finally {
    await stopAll([a, b]);
  }
});
