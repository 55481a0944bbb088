/**
 * Cluster.setNodes: the member set of a running cluster changes (what discovery does). In one
 * process, real sockets on 127.0.0.x: a node added at run time is linked and gets the table; a
 * removed node is forgotten (links, streams, metrics) and refused at the handshake; a member
 * whose address changes is redialled there.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dump, makeNode, metric, settingsFor, waitFor, write, type TestNode } from '../fixtures/cluster-harness.js';
import type { ClusterSettings, NodeSettings } from '../../../src/cluster/cluster-options.js';

const BASE = 22500;

function settings(nodes: readonly NodeSettings[]): ClusterSettings {
  return { ...settingsFor(BASE, 1), nodes: [...nodes] };
}

test('members added, removed and moved at run time', async (t) => {
  const all = settingsFor(BASE, 3).nodes;
  const [n1, n2] = all;
  const started: TestNode[] = [];
  const start = async (s: ClusterSettings, id: string) => {
    const n = makeNode(s, id);
    started.push(n);
    await n.cluster.start();
    return n;
  };
  try {
    const lb1 = await start(settings([n1, n2]), 'lb1');
    const lb2 = await start(settings([n1, n2]), 'lb2');
    await waitFor(() => lb1.cluster.stateOf('lb2') === 'alive' && lb2.cluster.stateOf('lb1') === 'alive', 5000, 'lb1-lb2 linked');
    for (let i = 0; i < 100; i++) write(lb1, { backup: 'lb2' });
    await waitFor(() => lb2.table.size() === 100, 5000, 'replicated');

    // lb3 knows everyone; lb1 and lb2 learn of it later (they dial it: their ids sort lower).
    const lb3 = await start(settings(all), 'lb3');
    assert.equal(lb3.cluster.stateOf('lb1'), 'dead');
    const t0 = performance.now();
    assert.deepEqual(lb1.cluster.setNodes(all), { added: ['lb3'], removed: [], changed: [] });
    assert.deepEqual(lb2.cluster.setNodes(all), { added: ['lb3'], removed: [], changed: [] });
    await waitFor(() => ['lb1', 'lb2'].every((id) => lb3.cluster.stateOf(id) === 'alive') && lb1.cluster.stateOf('lb3') === 'alive', 5000, 'lb3 linked');
    await waitFor(() => lb3.cluster.ready && lb3.table.size() === 100, 5000, 'lb3 synced');
    t.diagnostic(`a member added at run time: linked and synced in ${(performance.now() - t0).toFixed(0)} ms`);
    assert.deepEqual(dump(lb3.table), dump(lb1.table));
    assert.deepEqual(lb1.cluster.nodeIds, ['lb1', 'lb2', 'lb3']);
    const e = write(lb2, { backup: 'lb3' });
    await waitFor(() => lb3.table.get(e.service, e.key) !== undefined, 5000, 'live replication to the new member');

    // Removed from lb1 and lb2 once it is dead: forgotten, and refused if it calls again.
    await lb3.cluster.stop();
    await waitFor(() => lb1.cluster.stateOf('lb3') === 'dead', 5000, 'lb3 dead');
    assert.deepEqual(lb1.cluster.setNodes([n1, n2]), { added: [], removed: ['lb3'], changed: [] });
    lb2.cluster.setNodes([n1, n2]);
    assert.deepEqual(lb1.cluster.nodeIds, ['lb1', 'lb2']);
    assert.deepEqual(lb1.cluster.stats().peers.map((p) => p.id), ['lb2']);
    assert.throws(() => lb1.cluster.stateOf('lb3'), /unknown node/);
    const peerStates = (await lb1.registry.getSingleMetric('tandem_peer_state')!.get()).values.map((v) => v.labels.peer);
    assert.deepEqual(peerStates, ['lb2'], 'the removed peer has no series left');
    // A node that is not a member any more is refused at the handshake ("lb0" sorts first: it dials).
    const lb0 = await start(settings([{ id: 'lb0', host: '127.0.0.4', peerPort: BASE + 9, weight: 1 }, n1]), 'lb0');
    await new Promise((r) => setTimeout(r, 300));
    assert.ok((await metric(lb1.registry, 'tandem_peer_auth_failures_total', { reason: 'unknown-node' })) >= 1);
    assert.equal(lb0.cluster.stateOf('lb1'), 'dead');
    assert.throws(() => lb1.cluster.setNodes([n2]), /not in the new member set/);

    // lb2 moves to another port: lb1 redials it there.
    await lb2.cluster.stop();
    const moved = { ...n2, peerPort: BASE + 3 };
    const lb2b = await start(settings([n1, moved]), 'lb2');
    assert.deepEqual(lb1.cluster.setNodes([n1, moved]), { added: [], removed: [], changed: ['lb2'] });
    await waitFor(() => lb1.cluster.stateOf('lb2') === 'alive' && lb2b.table.size() >= 101, 5000, 'lb2 at its new address');
    assert.match(lb1.cluster.controlLinkRemote('lb2') ?? '', new RegExp(`:${BASE + 3}$`));
  } finally {
    await Promise.all(started.map((n) => n.cluster.stop()));
  }
});
