import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allAlive, dump, makeNode, metric, pausableRelay, settingsFor, startAll, stopAll, waitFor, write, type TestNode } from './fixtures/cluster-harness.js';

const BASE = 17130;

async function pair(base: number, tuning = {}): Promise<TestNode[]> {
  const settings = settingsFor(base, 2);
  const nodes = ['lb1', 'lb2'].map((id) => makeNode(settings, id, tuning));
  await startAll(nodes);
  await waitFor(() => allAlive(nodes) && nodes.every((n) => n.cluster.ready), 2000, 'pair up');
  return nodes;
}

const resyncs = (n: TestNode, peer: string, kind: string): Promise<number> => metric(n.registry, 'tandem_replication_resyncs_total', { peer, kind });

test('a short disconnect resumes from the last acknowledged sequence, no full resync', async (t) => {
  const nodes = await pair(BASE);
  const [a, b] = nodes;
  try {
    for (let i = 0; i < 300; i++) write(a);
    await waitFor(() => b.table.size() === 300 && a.cluster.stats().peers[0].pendingEntries === 0, 1000, 'first batch acked');
    const fullBefore = await resyncs(a, 'lb2', 'full');
    const resumeBefore = await resyncs(a, 'lb2', 'resume');
    a.cluster.dropControlLink('lb2');
    // Written while the link is down: they wait in the retransmission log.
    for (let i = 0; i < 200; i++) write(a);
    await new Promise((r) => setImmediate(r));
    assert.equal(a.cluster.stats().peers[0].connected, false);
    assert.ok(a.cluster.stats().peers[0].pendingEntries >= 200);
    const t0 = performance.now();
    await waitFor(() => b.table.size() === 500, 2000, 'resumed');
    t.diagnostic(`caught up ${(performance.now() - t0).toFixed(0)} ms after the drop`);
    assert.equal(await resyncs(a, 'lb2', 'full'), fullBefore);
    assert.equal(await resyncs(a, 'lb2', 'resume'), resumeBefore + 1);
    // b's stream towards a resumed too (b had published nothing; its log is empty).
    assert.equal(await resyncs(b, 'lb1', 'full'), 1);
    assert.deepEqual(dump(b.table), dump(a.table));
  } finally {
    await stopAll(nodes);
  }
});

test('a disconnect longer than the log holds ends in a full resync', async () => {
  const nodes = await pair(BASE + 2, { logMaxEntries: 50 });
  const [a, b] = nodes;
  try {
    for (let i = 0; i < 40; i++) write(a);
    await waitFor(() => b.table.size() === 40, 1000, 'first');
    const fullBefore = await resyncs(a, 'lb2', 'full');
    a.cluster.dropControlLink('lb2');
    // Several turns of writes: the log keeps only the newest ~50 entries.
    for (let turn = 0; turn < 5; turn++) {
      for (let i = 0; i < 40; i++) write(a);
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => b.table.size() === 240, 2000, 'full resync');
    assert.equal(await resyncs(a, 'lb2', 'full'), fullBefore + 1);
    assert.deepEqual(dump(b.table), dump(a.table));
  } finally {
    await stopAll(nodes);
  }
});

test('a peer that does not drain gets a full resync instead of unbounded queueing', async (t) => {
  // lb1 reaches lb2 through a relay that stops reading: lb1's socket backs up, the log (20 000
  // entries) is overtaken, and lb1 must fall back to a full resync when the relay drains again.
  const base = BASE + 4;
  const real = settingsFor(base, 2, { failureTimeoutMs: 3000 });
  const viaRelay = { ...real, nodes: real.nodes.map((n) => (n.id === 'lb2' ? { ...n, peerPort: base + 2 } : n)) };
  const relay = await pausableRelay({ host: '127.0.0.2', port: base + 2 }, { host: '127.0.0.2', port: base + 1 });
  const tuning = { logMaxEntries: 20_000, sendHighWaterBytes: 64 * 1024 };
  const a = makeNode(viaRelay, 'lb1', tuning);
  const b = makeNode(real, 'lb2', tuning);
  const nodes = [a, b];
  try {
    await startAll(nodes);
    await waitFor(() => allAlive(nodes) && nodes.every((n) => n.cluster.ready), 2000, 'pair up');
    const fullBefore = await resyncs(a, 'lb2', 'full');
    relay.pause();
    // Rewrites of the same 1000 keys: the table stays small while ~16 MB go on the wire.
    const keys = Array.from({ length: 1000 }, (_, i) => `k${i}`);
    let maxPending = 0;
    for (let turn = 0; turn < 80; turn++) {
      for (let i = 0; i < 5000; i++) write(a, { key: keys[i % 1000] });
      await new Promise((r) => setImmediate(r));
      maxPending = Math.max(maxPending, a.cluster.stats().peers[0].pendingEntries);
    }
    t.diagnostic(`max pending entries while stalled: ${maxPending}`);
    relay.resume();
    await waitFor(() => b.table.size() === 1000 && dump(b.table).every((e) => e.version === a.table.getAny(e.service, e.key)?.version), 5000, 'converged');
    assert.ok((await resyncs(a, 'lb2', 'full')) > fullBefore, 'an overflow resync');
    assert.ok(maxPending > 0 && maxPending <= 20_000 + 5000, `pending bounded by the log, got ${maxPending}`);
    assert.deepEqual(dump(b.table), dump(a.table));
  } finally {
    await stopAll(nodes);
    await relay.close();
  }
});

test('concurrent writes on both sides converge (last writer wins by version)', async () => {
  const nodes = await pair(BASE + 8);
  const [a, b] = nodes;
  try {
    for (let round = 0; round < 50; round++) {
      const key = `shared-${round % 10}`;
      write(a, { key, backend: `a-${round}` });
      write(b, { key, backend: `b-${round}` });
      if (round % 7 === 0) await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => a.cluster.stats().peers[0].pendingEntries === 0 && b.cluster.stats().peers[0].pendingEntries === 0, 2000, 'acked');
    assert.deepEqual(dump(a.table), dump(b.table));
    const flush = await a.cluster.flush(500);
    assert.equal(flush, true);
  } finally {
    await stopAll(nodes);
  }
});
