/**
 * Micro-benchmark of flow-table replication: 3 nodes, each in its own process (three nodes in one
 * event loop would share one core and undercount), on loopback. lb1 writes N entries (local
 * merge + publish, `perTurn` per event-loop turn, as a busy proxy would); the figure is the time
 * from the first write until both other nodes hold all N in their tables.
 *
 *   node --import tsx bench/micro/replication.ts [entries]
 *
 * entriesPerSec counts entries replicated to every peer per second (each entry reaches 2 peers).
 * bytesPerEntryOnWire is lb1's tandem_peer_bytes_total{direction="out"} growth during the run
 * divided by N * 2: frames, batch headers and heartbeats included, TCP/IP headers not.
 */
import { pathToFileURL } from 'node:url';
import { spawnNode, type ChildNode } from '../../test/cluster/fixtures/child-node.js';
import type { ClusterSettings } from '../../src/cluster/cluster-options.js';

export interface ReplicationBenchResult {
  entriesPerSec: number;
  bytesPerEntryOnWire: number;
  entries: number;
  elapsedMs: number;
}

const PORT = 17190;

interface MetricJson {
  name: string;
  values: Array<{ labels: Record<string, string | number>; value: number }>;
}

async function bytesOut(n: ChildNode): Promise<number> {
  const { metrics } = await n.call<{ metrics: MetricJson[] }>({ cmd: 'metrics' });
  const m = metrics.find((x) => x.name === 'tandem_peer_bytes_total');
  return (m?.values ?? []).filter((v) => v.labels.direction === 'out').reduce((a, v) => a + v.value, 0);
}

export async function benchReplication(opts: { entries?: number; perTurn?: number } = {}): Promise<ReplicationBenchResult> {
  const entries = opts.entries ?? (process.env.BENCH_QUICK ? 50_000 : 200_000);
  const perTurn = opts.perTurn ?? 2000;
  const settings: ClusterSettings = {
    name: 'bench',
    secret: 'bench-secret-0123456789',
    heartbeatMs: 100,
    failureTimeoutMs: 2000,
    snapshotTimeoutMs: 2000,
    tls: null,
    nodes: [1, 2, 3].map((i) => ({ id: `lb${i}`, host: `127.0.0.${i}`, peerPort: PORT + i - 1, weight: 1 })),
  };
  const nodes = settings.nodes.map((n) => spawnNode(settings, n.id));
  try {
    await Promise.all(nodes.map((n) => n.event('ready', 15_000)));
    // Every link up: each node sees both others alive.
    for (let i = 0; i < 500; i++) {
      const all = await Promise.all(nodes.map((n) => n.call<{ stats: { peers: Array<{ state: string }> } }>({ cmd: 'stats' })));
      if (all.every((s) => s.stats.peers.every((p) => p.state === 'alive'))) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const [writer, ...readers] = nodes;
    const before = await bytesOut(writer);
    const waits = readers.map((n) => n.call({ cmd: 'wait-size', n: entries }, 120_000).then(() => performance.now()));
    const t0 = performance.now();
    await writer.call({ cmd: 'publish', n: entries, perTurn, prefix: 'bench-' }, 120_000);
    const t1 = Math.max(...(await Promise.all(waits)));
    const elapsedMs = t1 - t0;
    const after = await bytesOut(writer);
    return {
      entriesPerSec: Math.round(entries / (elapsedMs / 1000)),
      bytesPerEntryOnWire: Math.round(((after - before) / (entries * readers.length)) * 10) / 10,
      entries,
      elapsedMs: Math.round(elapsedMs),
    };
  } finally {
    await Promise.all(nodes.map((n) => n.kill('SIGTERM')));
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const n = process.argv[2] ? Number(process.argv[2]) : undefined;
  const r = await benchReplication({ entries: n });
  process.stdout.write(
    `replication, 3 processes on loopback: ${r.entries} entries in ${r.elapsedMs} ms = ${r.entriesPerSec.toLocaleString('en')} entries/s to every peer; ${r.bytesPerEntryOnWire} bytes/entry on the wire\n`,
  );
}
