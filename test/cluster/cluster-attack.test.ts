import { test } from 'node:test';
import assert from 'node:assert/strict';
import net, { type Socket } from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { SECRET, allAlive, dump, makeNode, metric, settingsFor, startAll, stopAll, waitFor, write, type TestNode } from './fixtures/cluster-harness.js';
import { deriveAuthKey, encodeHello, initiateHandshake } from '../../src/cluster/handshake.js';
import { ByteWriter, FrameType } from '../../src/cluster/frame.js';
import { EntryBatchEncoder } from '../../src/cluster/entry-codec.js';
import { encodeOpen, newIncarnation } from '../../src/cluster/replication.js';
import { encodeResyncBegin, encodeResyncEnd } from '../../src/cluster/snapshot.js';
import type { FlowEntry } from '../../src/cluster/flow-entry.js';
import { WAIT_FLOOR_MS } from '../helpers/cluster.js';

const BASE = 17140;

function fakeEntry(key: string): FlowEntry {
  return { service: 'web', key, primary: 'lb3', backup: 'lb1', backend: '10.9.9.9:80', version: Date.now() * 1024, writer: 'lb3', lastActive: Date.now(), ended: false };
}

function batchFrame(type: number, seq: number | null, entries: FlowEntry[]): Buffer {
  const w = ByteWriter.frame(type);
  if (seq !== null) w.u64(seq);
  const enc = new EntryBatchEncoder(w);
  for (const e of entries) enc.add(e);
  enc.finish();
  return Buffer.from(w.finish());
}

/** Connect to lb1's peer port as "lb3" with the real secret: an authenticated control link. */
async function impostor(port: number, secret = SECRET): Promise<Socket> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  await once(s, 'connect');
  try {
    await initiateHandshake(s, { authKey: deriveAuthKey(secret), cluster: 'test', selfId: 'lb3', peerId: 'lb1', channel: 'control', timeoutMs: 1000 });
  } catch (err) {
    s.destroy();
    throw err;
  }
  s.resume(); // discard what lb1 sends
  return s;
}

async function eventually(pred: () => Promise<boolean>, timeoutMs = 1000): Promise<void> {
  const t0 = Date.now();
  timeoutMs = Math.max(timeoutMs, WAIT_FLOOR_MS);
  while (!(await pred())) {
    if (Date.now() - t0 > timeoutMs) assert.fail('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function closed(s: Socket): Promise<void> {
  if (!s.destroyed) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 20_000);
      s.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  assert.ok(s.destroyed || s.readableEnded, 'the node dropped the connection');
}

test('attacks on the peer port are dropped and counted; tables unchanged; the cluster goes on', async (t) => {
  const settings = settingsFor(BASE, 3);
  const nodes: TestNode[] = ['lb1', 'lb2'].map((id) => makeNode(settings, id));
  const [a, b] = nodes;
  const port = settings.nodes[0].peerPort;
  const auth = (reason: string): Promise<number> => metric(a.registry, 'tandem_peer_auth_failures_total', { reason });
  const rejected = (reason: string): Promise<number> => metric(a.registry, 'tandem_peer_rejected_frames_total', { reason });
  try {
    await startAll(nodes);
    await waitFor(() => allAlive(nodes), 2000, 'pair alive');
    for (let i = 0; i < 50; i++) write(a);
    await waitFor(() => b.table.size() === 50, 1000, 'baseline');
    const before = dump(a.table);

    await t.test('wrong secret (a real dialer): refused', async () => {
      await assert.rejects(impostor(port, 'not-the-cluster-secret!'), /could not prove/);
      await eventually(async () => (await auth('closed')) === 1);
    });

    await t.test('wrong secret (an attacker that sends a made-up proof): bad-proof', async () => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      await once(s, 'connect');
      s.write(encodeHello({ channel: 'control', cluster: 'test', from: 'lb3', to: 'lb1', nonce: randomBytes(16) }));
      await once(s, 'data');
      const w = ByteWriter.frame(FrameType.HELLO_PROOF);
      w.bytes(randomBytes(32));
      s.write(w.finish());
      await closed(s);
      await eventually(async () => (await auth('bad-proof')) === 1);
    });

    await t.test('random bytes: garbage', async () => {
      for (let i = 0; i < 5; i++) {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', () => {});
        await once(s, 'connect');
        s.write(Buffer.concat([Buffer.from([0, 0, 0, 20, 9, 9]), randomBytes(200)]));
        await closed(s);
      }
      await eventually(async () => (await auth('garbage')) === 5);
    });

    await t.test('valid handshake, then garbage / oversized frames: link dropped, counted', async () => {
      let s = await impostor(port);
      s.write(randomBytes(64).fill(0xee, 0, 6));
      await closed(s);
      assert.equal(await rejected('garbage'), 1);
      s = await impostor(port);
      const big = Buffer.from([0, 0x20, 0, 0, 1, FrameType.ENTRIES]);
      s.write(big);
      await closed(s);
      assert.equal(await rejected('oversized'), 1);
    });

    await t.test('valid handshake, then a batch malformed in its last entry: nothing of it applied', async () => {
      const s = await impostor(port);
      const inc = newIncarnation();
      s.write(encodeOpen(inc, true, null, 0));
      s.write(encodeResyncBegin(inc, 0, true));
      const good = batchFrame(FrameType.ENTRIES, 1, [fakeEntry('evil-1'), fakeEntry('evil-2'), fakeEntry('evil-3')]);
      // Truncate the last entry's lastActive by 3 bytes and fix up the frame length.
      const bad = Buffer.from(good.subarray(0, good.length - 3));
      bad.writeUInt32BE(bad.length - 4, 0);
      s.write(bad);
      await closed(s);
      assert.equal(await rejected('malformed'), 1);
      for (const k of ['evil-1', 'evil-2', 'evil-3']) assert.equal(a.table.getAny('web', k), undefined, k);
    });

    await t.test('valid handshake, then a sequence gap: protocol violation, dropped', async () => {
      const s = await impostor(port);
      const inc = newIncarnation();
      s.write(encodeOpen(inc, true, null, 0));
      s.write(encodeResyncBegin(inc, 0, true));
      s.write(encodeResyncEnd(0));
      s.write(batchFrame(FrameType.ENTRIES, 5, [fakeEntry('gap-1')]));
      await closed(s);
      assert.equal(await rejected('protocol'), 1);
      assert.equal(a.table.getAny('web', 'gap-1'), undefined);
    });

    await t.test('control: the same channel with valid frames does apply (the checks above are real)', async () => {
      const s = await impostor(port);
      const inc = newIncarnation();
      s.write(encodeOpen(inc, true, null, 0));
      s.write(encodeResyncBegin(inc, 0, true));
      s.write(batchFrame(FrameType.SNAPSHOT_CHUNK, null, [fakeEntry('ok-1')]));
      s.write(encodeResyncEnd(1));
      s.write(batchFrame(FrameType.ENTRIES, 1, [fakeEntry('ok-2')]));
      await waitFor(() => a.table.getAny('web', 'ok-2') !== undefined, 1000, 'applied');
      assert.ok(a.table.getAny('web', 'ok-1'));
      s.destroy();
    });

    // Everything before the last subtest left the table as it was; the cluster still works.
    const after = dump(a.table).filter((e) => !e.key.startsWith('ok-'));
    assert.deepEqual(after, before);
    await waitFor(() => a.cluster.stateOf('lb2') === 'alive' && b.cluster.stateOf('lb1') === 'alive', 1000, 'still alive');
    const e = write(a);
    await waitFor(() => b.table.getAny(e.service, e.key) !== undefined, 1000, 'still replicating');
    t.diagnostic(`auth failures: ${JSON.stringify((await a.registry.getSingleMetric('tandem_peer_auth_failures_total')!.get()).values.map((v) => [v.labels.reason, v.value]))}`);
  } finally {
    await stopAll(nodes);
  }
});
