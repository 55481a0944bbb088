import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allAlive, dump, makeNode, metric, settingsFor, startAll, stopAll, waitFor, write, type TestNode } from './fixtures/cluster-harness.js';
import type { PeerState } from '../../src/cluster/cluster-options.js';

const BASE = 17110;

test('3 nodes: membership, replication, failure detection, restart with snapshot', async (t) => {
  const settings = settingsFor(BASE, 3);
  const nodes: TestNode[] = ['lb1', 'lb2', 'lb3'].map((id) => makeNode(settings, id));
  let restarted: TestNode | null = null;
  try {
    const transitions: Array<[string, PeerState, PeerState]> = [];
    nodes[0].cluster.on('peer-state', (id, state, prev) => transitions.push([id, state, prev]));
    const t0 = performance.now();
    await startAll(nodes);
    await waitFor(() => allAlive(nodes), 2000, 'all alive');
    t.diagnostic(`all alive after ${(performance.now() - t0).toFixed(0)} ms`);
    assert.deepEqual([...nodes[0].cluster.alive()].sort(), ['lb1', 'lb2', 'lb3']);
    assert.ok(transitions.some(([id, s]) => id === 'lb2' && s === 'alive'));
    // A cold start of the whole cluster: every node has every peer's (empty) snapshot.
    await waitFor(() => nodes.every((n) => n.cluster.ready), 1000, 'ready');

    await t.test('a published entry shows up identically everywhere', async () => {
      const remote: unknown[] = [];
      nodes[1].cluster.on('remote-entries', (entries, from) => remote.push([entries.length, from]));
      const latencies: number[] = [];
      for (let i = 0; i < 20; i++) {
        const writer = nodes[i % 3];
        const others = nodes.filter((n) => n !== writer);
        // Event-driven: the time from publish() to the merge on the last of the two peers.
        const arrived = others.map((n) => new Promise<number>((resolve) => n.cluster.once('remote-entries', () => resolve(performance.now()))));
        const start = performance.now();
        const e = write(writer);
        const done = Math.max(...(await Promise.all(arrived)));
        latencies.push(done - start);
        // Every field but lastActive, which each node stamps in its own clock on receipt.
        for (const n of nodes) assert.deepEqual({ ...n.table.getAny(e.service, e.key)!, lastActive: 0 }, { ...e, lastActive: 0 });
      }
      latencies.sort((a, b) => a - b);
      t.diagnostic(`replication latency (publish -> in all 3 tables, loopback, one process): median ${latencies[10].toFixed(2)} ms, max ${latencies[19].toFixed(2)} ms`);
      assert.ok(remote.length > 0);
      // A burst of 5000 in one turn.
      const burst = Array.from({ length: 5000 }, () => write(nodes[0]));
      const b0 = performance.now();
      await waitFor(() => nodes.every((n) => n.table.size() >= 5020), 3000, 'burst');
      t.diagnostic(`5000-entry burst replicated in ${(performance.now() - b0).toFixed(1)} ms`);
      assert.deepEqual(dump(nodes[1].table), dump(nodes[0].table));
      assert.deepEqual(dump(nodes[2].table), dump(nodes[0].table));
      assert.ok(burst.length === 5000);
      // Acks arrive: nothing pending, no lag.
      await waitFor(() => nodes[0].cluster.stats().peers.every((p) => p.pendingEntries === 0 && p.replicationLagMs === 0), 1000, 'acked');
      assert.ok((await metric(nodes[0].registry, 'tandem_replication_entries_total', { direction: 'out' })) >= 10_000);
      assert.ok((await metric(nodes[1].registry, 'tandem_replication_entries_total', { direction: 'in' })) >= 5000);
      assert.equal(await metric(nodes[0].registry, 'tandem_peer_state', { peer: 'lb2' }), 2);
    });

    await t.test('markSuspect demotes an alive peer until it is heard from again', async () => {
      nodes[0].cluster.markSuspect('lb2');
      assert.equal(nodes[0].cluster.stateOf('lb2'), 'suspect');
      assert.ok(nodes[0].cluster.alive().has('lb2'), 'suspect stays a candidate');
      await waitFor(() => nodes[0].cluster.stateOf('lb2') === 'alive', 500, 'alive again');
      assert.equal(nodes[0].cluster.stateOf('lb1'), 'alive');
    });

    await t.test('a stopped node is declared dead by both peers', async () => {
      const stoppedAt = performance.now();
      await nodes[2].cluster.stop();
      await waitFor(() => nodes[0].cluster.stateOf('lb3') === 'dead' && nodes[1].cluster.stateOf('lb3') === 'dead', settings.failureTimeoutMs + 200, 'lb3 dead');
      t.diagnostic(`lb3 dead on both peers after ${(performance.now() - stoppedAt).toFixed(0)} ms`);
      assert.deepEqual([...nodes[0].cluster.alive()].sort(), ['lb1', 'lb2']);
      assert.ok(transitions.some(([id, s, p]) => id === 'lb3' && s === 'suspect' && p === 'alive'));
      assert.ok(transitions.some(([id, s]) => id === 'lb3' && s === 'dead'));
      // Changes made while lb3 is away.
      for (let i = 0; i < 100; i++) write(nodes[i % 2]);
    });

    await t.test('a restarted node (empty table) is not ready, then ready with the same table', async () => {
      restarted = makeNode(settings, 'lb3');
      await restarted.cluster.start();
      assert.equal(restarted.cluster.ready, false);
      assert.equal(restarted.table.size(), 0);
      const ms = await waitFor(() => restarted!.cluster.ready, 1500, 'ready');
      t.diagnostic(`restarted node ready after ${ms.toFixed(0)} ms with ${restarted.table.size()} entries`);
      const live = [nodes[0], nodes[1], restarted];
      await waitFor(() => allAlive(live), 2000, 'all alive again');
      assert.deepEqual(dump(restarted.table), dump(nodes[0].table));
      // And it replicates its own writes to the others.
      const e = write(restarted);
      await waitFor(() => nodes[0].table.getAny(e.service, e.key) !== undefined && nodes[1].table.getAny(e.service, e.key) !== undefined, 1000, 'from restarted');
      assert.ok((await metric(nodes[0].registry, 'tandem_replication_resyncs_total', { peer: 'lb3', kind: 'full' })) >= 2);
      const st = restarted.cluster.stats();
      assert.equal(st.self, 'lb3');
      assert.equal(st.ready, true);
      assert.equal(st.peers.length, 2);
      for (const p of st.peers) {
        assert.equal(p.state, 'alive');
        assert.ok(p.lastHeartbeatAgoMs !== null, 'heard from');
      }
    });
  } finally {
    await stopAll(nodes);
    if (restarted !== null) await (restarted as TestNode).cluster.stop();
  }
});

test('a lone node becomes ready after snapshotTimeoutMs; a single-node cluster at once', async () => {
  const settings = settingsFor(BASE + 5, 3, { snapshotTimeoutMs: 300 });
  const lone = makeNode(settings, 'lb2');
  const single = makeNode(settingsFor(BASE + 9, 1), 'lb1');
  try {
    const t0 = performance.now();
    await lone.cluster.start();
    await single.cluster.start();
    assert.equal(single.cluster.ready, true);
    assert.equal(lone.cluster.ready, false);
    await waitFor(() => lone.cluster.ready, 1000, 'lone ready');
    assert.ok(performance.now() - t0 >= 290);
    assert.equal(lone.cluster.stateOf('lb1'), 'dead');
    assert.deepEqual([...lone.cluster.alive()], ['lb2']);
    assert.throws(() => lone.cluster.stateOf('nobody'), /unknown node/);
    single.cluster.publish(write(single)); // no peers: nothing to do, no error
  } finally {
    await lone.cluster.stop();
    await single.cluster.stop();
  }
});
