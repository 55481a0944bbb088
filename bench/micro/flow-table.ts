/**
 * Micro-benchmark of the flow table: upserts/s (new entry object + merge over an existing key),
 * lookups/s (get of a random existing key) and retained heap bytes per entry.
 *
 *   node --expose-gc --import tsx bench/micro/flow-table.ts [entries]
 *
 * Bytes per entry are measured as the heapUsed difference, after full GCs, between an empty
 * table and one holding `entries` entries, so they include the entry object, its two HeapNumbers
 * (version and lastActive are beyond Smi range), the key string and the Map slot. Keys are
 * realistic "connection" keys (ip:port, 14-21 chars) decoded from a Buffer, as a parser would
 * produce them: flat strings, not the ConsStrings that `+` concatenation builds. Node ids and
 * backends come from small shared pools, which assumes the replication decoder interns them.
 *
 * Where the ~200 bytes go (Node 20 release builds have no pointer compression: 8-byte slots): the
 * 9-field entry object 24 + 9*8 = 96; version and lastActive as boxed doubles 2*16 = 32; a
 * 20-char key 40; the Map's OrderedHashMap 3.5 slots per capacity at 50-100% fill, ~30-55.
 * Only fewer fields or a packed representation would cut it much further.
 */
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { FlowTable } from '../../src/cluster/flow-table.js';
import type { FlowEntry } from '../../src/cluster/flow-entry.js';
import { Hlc } from '../../src/cluster/hlc.js';
import { prng } from '../../test/helpers/prng.js';

export interface FlowTableBenchResult {
  upsertsPerSec: number;
  lookupsPerSec: number;
  bytesPerEntry: number;
}

const NODES = ['lb1', 'lb2', 'lb3', 'lb4', 'lb5'];
const BACKENDS = ['10.0.1.11:8080', '10.0.1.12:8080', '10.0.1.13:8080', '10.0.1.14:8080'];

/** `global.gc` if the process was started with --expose-gc, else the V8-flag route, else null. */
function findGc(): (() => void) | null {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === 'function') return g;
  try {
    // Setting the flag at runtime makes new contexts get a `gc` global (a documented V8 flag).
    setFlagsFromString('--expose-gc');
    const fn: unknown = runInNewContext('gc');
    return typeof fn === 'function' ? (fn as () => void) : null;
  } catch {
    return null;
  }
}

function makeKeys(n: number, rand: () => number): string[] {
  const keys = new Array<string>(n);
  const seen = new Set<string>();
  for (let i = 0; i < n; ) {
    const ip = `${1 + Math.floor(rand() * 223)}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}`;
    const s = Buffer.from(`${ip}:${1024 + Math.floor(rand() * 64512)}`, 'latin1').toString('latin1');
    if (seen.has(s)) continue;
    seen.add(s);
    keys[i++] = s;
  }
  return keys;
}

function makeEntry(key: string, i: number, version: number, wall: number): FlowEntry {
  return {
    service: 'web',
    key,
    primary: NODES[i % NODES.length],
    backup: NODES[(i + 1) % NODES.length],
    backend: BACKENDS[i % BACKENDS.length],
    version,
    writer: NODES[i % NODES.length],
    lastActive: wall,
    ended: false,
  };
}

export function benchFlowTable(opts: { entries?: number } = {}): FlowTableBenchResult {
  const n = opts.entries ?? 200_000;
  const rand = prng(0xbe4c);
  const clock = new Hlc();
  const gc = findGc();
  const table = new FlowTable({ limits: () => ({ maxEntries: n, idleTimeoutMs: 600_000 }) });

  // Memory: heapUsed after full GCs, before the keys exist and after the table holds them all, so
  // key strings count; the keys array (one 8-byte slot per key) is then subtracted.
  gc?.();
  gc?.();
  const before = process.memoryUsage().heapUsed;
  const keys = makeKeys(n, rand);
  const wall = Date.now();
  for (let i = 0; i < n; i++) table.merge(makeEntry(keys[i], i, clock.now(), wall));
  gc?.();
  gc?.();
  const after = process.memoryUsage().heapUsed;
  const bytesPerEntry = gc === null ? NaN : (after - before - 8 * n) / n;

  // Upserts: a refreshed version of an existing key, as a replication batch applies them.
  const upserts = n * 3;
  let t0 = process.hrtime.bigint();
  for (let j = 0; j < upserts; j++) {
    const i = j % n;
    table.merge(makeEntry(keys[i], i, clock.now(), wall));
  }
  const upsertsPerSec = upserts / (Number(process.hrtime.bigint() - t0) / 1e9);

  // Lookups: random existing keys (indices drawn beforehand so the PRNG is not timed).
  const lookups = n * 5;
  const idx = new Uint32Array(lookups);
  for (let j = 0; j < lookups; j++) idx[j] = Math.floor(rand() * n);
  let hits = 0;
  t0 = process.hrtime.bigint();
  for (let j = 0; j < lookups; j++) if (table.get('web', keys[idx[j]]) !== undefined) hits++;
  const lookupsPerSec = lookups / (Number(process.hrtime.bigint() - t0) / 1e9);
  if (hits !== lookups) throw new Error(`lookup bench: ${hits} hits of ${lookups}`);

  return { upsertsPerSec, lookupsPerSec, bytesPerEntry };
}

function fmt(x: number): string {
  return Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : String(x);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const entries = process.argv[2] ? Number(process.argv[2]) : undefined;
  const r = benchFlowTable({ entries });
  console.log(`flow table micro-benchmark (${fmt(entries ?? 200_000)} entries, node ${process.version})`);
  console.table({
    'upserts/s': fmt(r.upsertsPerSec),
    'lookups/s': fmt(r.lookupsPerSec),
    'bytes/entry': Number.isFinite(r.bytesPerEntry) ? r.bytesPerEntry.toFixed(1) : 'NaN (no gc)',
  });
}
