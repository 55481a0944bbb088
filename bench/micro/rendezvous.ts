/**
 * Micro-benchmark of Rendezvous.owners(), the decision made for every new flow (the routing rule,
 * docs/ARCHITECTURE.md). Target: under 1 µs for 16 nodes. Keys are distinct and precomputed so that the
 * figure covers hashing the key, not building it.
 */
import { pathToFileURL } from 'node:url';
import { Rendezvous, type RendezvousNode } from '../../src/cluster/rendezvous.js';

export interface RendezvousBenchResult {
  nodes: number;
  decisionsPerSec: number;
  nsPerDecision: number;
}

const NODE_COUNTS = [3, 16, 64] as const;
/** Enough distinct keys to defeat any caching by the CPU of a repeated input, few enough to stay in L2. */
const KEY_COUNT = 8192;

function makeKeys(): string[] {
  const keys: string[] = [];
  // Shaped like the `connection` flow key: client ip:port.
  for (let i = 0; i < KEY_COUNT; i++) keys.push(`10.${(i >>> 8) & 255}.${i & 255}.${(i * 7) & 255}:${1024 + ((i * 2654435761) >>> 20)}`);
  return keys;
}

function makeNodes(n: number): RendezvousNode[] {
  return Array.from({ length: n }, (_, i) => ({ id: `lb${i + 1}`, weight: 1 }));
}

/** Runs `iterations` decisions and returns the elapsed ns; the checksum keeps V8 from dropping the work. */
function run(rz: Rendezvous, keys: string[], nodes: RendezvousNode[], iterations: number): { ns: number; check: number } {
  let check = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    const o = rz.owners(keys[i & (KEY_COUNT - 1)], nodes);
    check += o.primary.length + (o.backup === null ? 0 : 1);
  }
  return { ns: Number(process.hrtime.bigint() - start), check };
}

export function benchRendezvous(opts: { iterations?: number } = {}): RendezvousBenchResult[] {
  const iterations = opts.iterations ?? 200_000;
  const rz = new Rendezvous('benchmark-secret-0123456789');
  const keys = makeKeys();
  const results: RendezvousBenchResult[] = [];
  for (const n of NODE_COUNTS) {
    const nodes = makeNodes(n);
    run(rz, keys, nodes, Math.min(iterations, 50_000)); // warm-up: reach optimised code, fill the seed cache
    const { ns, check } = run(rz, keys, nodes, iterations);
    if (check === 0) throw new Error('benchmark produced no decisions');
    const nsPerDecision = ns / iterations;
    results.push({ nodes: n, decisionsPerSec: Math.round(1e9 / nsPerDecision), nsPerDecision: Math.round(nsPerDecision * 10) / 10 });
  }
  return results;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = benchRendezvous();
  console.log('rendezvous owners()');
  console.log('nodes  ns/decision  decisions/s');
  for (const r of rows) {
    console.log(`${String(r.nodes).padStart(5)}  ${r.nsPerDecision.toFixed(1).padStart(11)}  ${r.decisionsPerSec.toLocaleString('en-US').padStart(11)}`);
  }
}
