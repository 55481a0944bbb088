import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allAlive, makeNode, settingsFor, startAll, stopAll, waitFor, write, type TestNode } from './fixtures/cluster-harness.js';
import { spawnNode, type ChildNode } from './fixtures/child-node.js';

const BASE = 17160;

test('a node in its own process: replicates both ways, kill -9 is detected', async (t) => {
  const settings = settingsFor(BASE, 3);
  const nodes: TestNode[] = ['lb1', 'lb2'].map((id) => makeNode(settings, id));
  let child: ChildNode | null = null;
  try {
    await startAll(nodes);
    child = spawnNode(settings, 'lb3');
    await child.event('started');
    await waitFor(() => nodes.every((n) => n.cluster.stateOf('lb3') === 'alive') && allAlive(nodes), 5000, 'lb3 alive');
    await child.event('ready', 3000);

    const e = write(nodes[0]);
    let got: { entry: unknown } = { entry: null };
    for (const until = Date.now() + 20_000; Date.now() < until && got.entry === null; ) {
      got = await child.call<{ entry: unknown }>({ cmd: 'get', service: e.service, key: e.key });
      if (got.entry === null) await new Promise((r) => setTimeout(r, 10));
    }
    // Every field but lastActive, which the child stamps in its own clock on receipt.
    assert.deepEqual({ ...(got.entry as object), lastActive: 0 }, { ...e, lastActive: 0 });

    await child.call({ cmd: 'publish', n: 1000, perTurn: 250, prefix: 'child-' });
    await waitFor(() => nodes.every((n) => n.table.getAny('web', 'child-999') !== undefined), 2000, 'from the child');

    const killedAt = performance.now();
    await child.kill('SIGKILL');
    await waitFor(() => nodes.every((n) => n.cluster.stateOf('lb3') === 'dead'), settings.failureTimeoutMs + 200, 'lb3 dead after kill -9');
    t.diagnostic(`kill -9 -> dead on both peers in ${(performance.now() - killedAt).toFixed(0)} ms`);
    assert.equal(nodes[0].cluster.stateOf('lb2'), 'alive');
  } finally {
    await child?.kill('SIGKILL');
    await stopAll(nodes);
  }
});
