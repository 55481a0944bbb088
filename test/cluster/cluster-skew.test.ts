/**
 * Clock skew inside the cluster layer, with real links on loopback: two nodes whose clocks are 10
 * minutes apart replicate both ways and converge (the HLC drags the slow one forward, nothing is
 * refused); a peer whose clock is two days ahead has its entries refused and counted, and the
 * rest of its traffic is unaffected. Also: each node learns its peer's incarnation from OPEN, the
 * epoch the UDP data plane binds datagrams to. (Process-level skew with libfaketime:
 * test/reliability/clock-skew.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Registry } from 'prom-client';
import { Cluster } from '../../src/cluster/cluster.js';
import { FlowTable } from '../../src/cluster/flow-table.js';
import { Hlc, hlcWallMs } from '../../src/cluster/hlc.js';
import { allAlive, dump, metric, settingsFor, stopAll, waitFor, write, type TestNode } from './fixtures/cluster-harness.js';

const BASE = 24000;
const MIN10 = 600_000;

function skewedNode(settings: ReturnType<typeof settingsFor>, id: string, skewMs: number): TestNode {
  const table = new FlowTable({ limits: () => ({ maxEntries: 100_000, idleTimeoutMs: 3_600_000 }) });
  const hlc = new Hlc(() => Date.now() + skewMs);
  const registry = new Registry();
  const logger = pino({ level: process.env.TANDEM_TEST_LOG ?? 'silent' }).child({ node: id });
  const cluster = new Cluster({ settings, selfId: id, table, hlc, logger, registry });
  return { id, cluster, table, hlc, registry };
}

test('clocks 10 minutes apart: both ways replicated, converged, nothing refused; the slow HLC is dragged forward', async () => {
  const settings = settingsFor(BASE, 2);
  const nodes = [skewedNode(settings, 'lb1', +MIN10), skewedNode(settings, 'lb2', -MIN10)];
  try {
    await Promise.all(nodes.map((n) => n.cluster.start()));
    await waitFor(() => allAlive(nodes) && nodes.every((n) => n.cluster.ready), 20_000, 'pair up');
    // The incarnations were exchanged on the links.
    assert.deepEqual(nodes[0].cluster.peerIncarnation('lb2'), nodes[1].cluster.incarnation);
    assert.deepEqual(nodes[1].cluster.peerIncarnation('lb1'), nodes[0].cluster.incarnation);
    // Both write, both ways; then the slow node overwrites one of the fast node's keys.
    const fast = Array.from({ length: 50 }, () => write(nodes[0]));
    const slow = Array.from({ length: 50 }, () => write(nodes[1]));
    await waitFor(() => nodes.every((n) => n.table.size() === 100), 20_000, 'replicated both ways');
    const over = write(nodes[1], { key: fast[0]!.key, backend: '127.0.0.1:9002', version: nodes[1].hlc.now() });
    assert.ok(over.version > fast[0]!.version, 'a write after an observed one orders after it, 20 minutes of skew notwithstanding');
    await waitFor(() => nodes[0].table.get('web', fast[0]!.key)?.backend === '127.0.0.1:9002', 20_000, 'the overwrite reaches the fast node');
    assert.deepEqual(dump(nodes[0].table), dump(nodes[1].table));
    assert.equal(await metric(nodes[0].registry, 'tandem_hlc_refused_total'), 0);
    assert.equal(await metric(nodes[1].registry, 'tandem_hlc_refused_total'), 0);
    // The slow node's clock runs about 20 minutes ahead of its own wall clock now.
    const ahead = await metric(nodes[1].registry, 'tandem_hlc_ahead_seconds');
    assert.ok(ahead > 1100 && ahead < 1300, `slow node's HLC ahead by ${ahead} s`);
    assert.equal(await metric(nodes[0].registry, 'tandem_hlc_ahead_seconds'), 0);
    assert.ok(hlcWallMs(over.version) > Date.now() + MIN10 - 60_000, 'the slow node now writes with versions dragged to the fast clock');
    assert.ok(slow.every((e) => hlcWallMs(e.version) < Date.now()), 'its earlier writes carried its own (slow) clock, and still replicated');
  } finally {
    await stopAll(nodes);
  }
});

test('a peer clock two days ahead: its entries are refused and counted, the link and the rest stay up', async () => {
  const settings = settingsFor(BASE + 5, 2);
  const nodes = [skewedNode(settings, 'lb1', 0), skewedNode(settings, 'lb2', 2 * 86_400_000)];
  try {
    await Promise.all(nodes.map((n) => n.cluster.start()));
    await waitFor(() => allAlive(nodes), 20_000, 'pair up');
    for (let i = 0; i < 10; i++) write(nodes[1]);
    const mine = write(nodes[0]);
    await waitFor(() => nodes[1].table.get('web', mine.key) !== undefined, 20_000, 'lb1 to lb2');
    let refused = 0;
    for (const until = Date.now() + 20_000; refused < 10 && Date.now() < until; ) {
      refused = await metric(nodes[0].registry, 'tandem_hlc_refused_total', { peer: 'lb2', reason: 'future' });
      if (refused < 10) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(refused, 10);
    assert.equal(nodes[0].table.size(), 1, 'nothing of the runaway clock stored');
    assert.equal(nodes[0].cluster.stateOf('lb2'), 'alive', 'the link stays up: a wrong clock is not a protocol violation');
  } finally {
    await stopAll(nodes);
  }
});
