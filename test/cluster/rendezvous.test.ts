import { test } from 'node:test';
import assert from 'assert/strict';
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  Rendezvous,
  compareScores,
  deriveRendezvousKey,
  mix64Top53,
  type RendezvousNode,
} from '../../src/cluster/rendezvous.js';
import { siphash24, siphash24Hex } from '../../src/cluster/siphash.js';
import { isTandemError, ErrorCodes } from '../../src/errors.js';
import { prng, randomKey } from '../helpers/prng.js';
import { ownersDigest } from './rendezvous-child.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SECRET = 'rendezvous-test-secret-0123456789';
const KEY_COUNT = 100_000;

const equalNodes = (...ids: string[]): RendezvousNode[] => ids.map((id) => ({ id, weight: 1 }));

/** 100k seeded keys, shared by the property tests below (generation is the slow part). */
const KEYS: readonly string[] = (() => {
  const rand = prng(20250601);
  return Array.from({ length: KEY_COUNT }, () => randomKey(rand));
})();

function primaries(rz: Rendezvous, nodes: readonly RendezvousNode[]): string[] {
  return KEYS.map((k) => rz.owners(k, nodes).primary);
}

function shares(list: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const id of list) m.set(id, (m.get(id) ?? 0) + 1);
  for (const [id, n] of m) m.set(id, n / list.length);
  return m;
}

// ---------------------------------------------------------------------------------------------
// Building blocks

test('deriveRendezvousKey: first 16 bytes of HMAC-SHA256(secret, "tandem/rendezvous/v1")', () => {
  const k = deriveRendezvousKey(SECRET);
  assert.equal(k.length, 16);
  const mac = createHmac('sha256', SECRET).update('tandem/rendezvous/v1').digest();
  assert.deepEqual(Buffer.from(k), mac.subarray(0, 16));
  // A string secret means its UTF-8 bytes.
  assert.deepEqual(deriveRendezvousKey('sécret'), deriveRendezvousKey(new TextEncoder().encode('sécret')));
  assert.notDeepEqual(deriveRendezvousKey('a'), deriveRendezvousKey('b'));
});

/** MurmurHash3 fmix64 in BigInt, the oracle for the 32-bit-halves version. */
function fmix64(x: bigint): bigint {
  const M = (1n << 64n) - 1n;
  x ^= x >> 33n;
  x = (x * 0xff51afd7ed558ccdn) & M;
  x ^= x >> 33n;
  x = (x * 0xc4ceb9fe1a85ec53n) & M;
  x ^= x >> 33n;
  return x;
}

test('mix64Top53: equals the top 53 bits of BigInt fmix64', () => {
  const rand = prng(0xf1);
  const inputs: Array<[number, number]> = [[0, 0], [-1, -1], [0x7fffffff, 0x80000000 | 0], [1, 0], [0, 1]];
  for (let i = 0; i < 2000; i++) inputs.push([(rand() * 2 ** 32) | 0, (rand() * 2 ** 32) | 0]);
  for (const [hi, lo] of inputs) {
    const x = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    assert.equal(mix64Top53(hi, lo), Number(fmix64(x) >> 11n), `input ${x.toString(16)}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Golden vectors

interface GoldenCase {
  name: string;
  secret: string;
  key: string;
  nodes: RendezvousNode[];
  expected: string[];
  rendezvousKey: string;
  keyHash: string;
}

test('golden vectors: key derivation, key hash and ranking unchanged', () => {
  const path = fileURLToPath(new URL('../fixtures/rendezvous-golden.json', import.meta.url));
  const doc = JSON.parse(readFileSync(path, 'utf8')) as { cases: GoldenCase[] };
  assert.ok(doc.cases.length >= 40, `only ${doc.cases.length} golden cases`);
  const sizes = new Set(doc.cases.map((c) => c.nodes.length));
  for (const n of [1, 2, 3, 5, 16]) assert.ok(sizes.has(n), `no golden case with ${n} nodes`);
  for (const c of doc.cases) {
    const rk = deriveRendezvousKey(c.secret);
    // Checked in this order so that a failure names the layer that changed.
    assert.equal(Buffer.from(rk).toString('hex'), c.rendezvousKey, `${c.name}: key derivation changed`);
    assert.equal(siphash24Hex(rk, new TextEncoder().encode(c.key)), c.keyHash, `${c.name}: key hash changed`);
    const rz = new Rendezvous(c.secret);
    assert.deepEqual(rz.rank(c.key, c.nodes), c.expected, `${c.name}: ranking changed`);
    const o = rz.owners(c.key, c.nodes);
    assert.equal(o.primary, c.expected[0], `${c.name}: primary`);
    assert.equal(o.backup, c.expected[1] ?? null, `${c.name}: backup`);
  }
});

// ---------------------------------------------------------------------------------------------
// Properties over 100k seeded keys (docs/design.md §2)

test('(a) the same owners in a separate process', async () => {
  const seed = 77;
  // Started before the in-process computation so that the two overlap.
  const child = execFile(process.execPath, ['--import', 'tsx', 'test/cluster/rendezvous-child.ts', String(seed), String(KEY_COUNT)], {
    cwd: ROOT,
  });
  const out = new Promise<string>((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(stdout.trim()) : reject(new Error(`child exited ${code}: ${stderr}`))));
  });
  const local = ownersDigest(seed, KEY_COUNT);
  assert.match(local, /^[0-9a-f]{64}$/);
  assert.equal(await out, local);
});

test('(b) removing a node moves only the keys it owned', () => {
  const rz = new Rendezvous(SECRET);
  const all = equalNodes('lb1', 'lb2', 'lb3', 'lb4', 'lb5');
  const before = primaries(rz, all);
  for (const gone of ['lb1', 'lb3', 'lb5']) {
    const after = primaries(rz, all.filter((n) => n.id !== gone));
    let moved = 0;
    for (let i = 0; i < KEY_COUNT; i++) {
      if (before[i] === gone) moved++;
      else assert.equal(after[i], before[i], `key ${i} moved although ${gone} did not own it`);
    }
    assert.ok(moved > 0);
  }
});

test('(c) a fifth node takes 20% ± 1% of keys, all from the others, and moves nothing else', () => {
  const rz = new Rendezvous(SECRET);
  const four = equalNodes('lb1', 'lb2', 'lb3', 'lb4');
  const before = primaries(rz, four);
  const after = primaries(rz, [...four, { id: 'lb5', weight: 1 }]);
  let moved = 0;
  for (let i = 0; i < KEY_COUNT; i++) {
    if (after[i] === before[i]) continue;
    assert.equal(after[i], 'lb5', `key ${i} moved from ${before[i]} to ${after[i]}, not to the new node`);
    moved++;
  }
  const share = moved / KEY_COUNT;
  assert.ok(Math.abs(share - 0.2) <= 0.01, `new node took ${(share * 100).toFixed(2)}%`);
});

test('(d) weights 1,1,2 give shares 25/25/50 ± 1.5%', () => {
  const rz = new Rendezvous(SECRET);
  const s = shares(primaries(rz, [{ id: 'a', weight: 1 }, { id: 'b', weight: 1 }, { id: 'c', weight: 2 }]));
  for (const [id, want] of [['a', 0.25], ['b', 0.25], ['c', 0.5]] as const) {
    const got = s.get(id) ?? 0;
    assert.ok(Math.abs(got - want) <= 0.015, `${id}: ${(got * 100).toFixed(2)}%, want ${want * 100}%`);
  }
});

test('(d2) shares for weights 0.5,1,2,3 and equal weights over 16 nodes', () => {
  const rz = new Rendezvous(SECRET);
  const weights = [0.5, 1, 2, 3];
  const s = shares(primaries(rz, weights.map((weight, i) => ({ id: `w${i}`, weight }))));
  weights.forEach((w, i) => {
    const got = s.get(`w${i}`) ?? 0;
    assert.ok(Math.abs(got - w / 6.5) <= 0.015, `weight ${w}: ${(got * 100).toFixed(2)}%`);
  });
  const sixteen = Array.from({ length: 16 }, (_, i) => ({ id: `lb${i + 1}`, weight: 1 }));
  for (const [id, got] of shares(primaries(rz, sixteen))) {
    assert.ok(Math.abs(got - 1 / 16) <= 0.005, `${id}: ${(got * 100).toFixed(2)}%`);
  }
});

test('(e) primary and backup differ whenever two or more nodes are eligible', () => {
  const rz = new Rendezvous(SECRET);
  for (const nodes of [equalNodes('a', 'b'), equalNodes('a', 'b', 'c', 'd', 'e')]) {
    for (const k of KEYS) {
      const o = rz.owners(k, nodes);
      assert.notEqual(o.backup, null);
      assert.notEqual(o.primary, o.backup);
    }
  }
});

test('(f) without its primary, a key is owned by its old backup, and backups spread evenly', () => {
  const rz = new Rendezvous(SECRET);
  const nodes = equalNodes('lb1', 'lb2', 'lb3', 'lb4', 'lb5');
  // For each primary, how its keys' backups spread over the other four.
  const backupsOf = new Map<string, string[]>();
  for (const k of KEYS) {
    const ranked = rz.rank(k, nodes);
    const o = rz.owners(k, nodes);
    assert.deepEqual([o.primary, o.backup], ranked.slice(0, 2));
    const rest = nodes.filter((n) => n.id !== o.primary);
    // Failover: the rank order of the remaining nodes is preserved, so the backup takes over and
    // the third becomes the new backup (re-protection, docs/design.md §3.4).
    const after = rz.owners(k, rest);
    assert.equal(after.primary, o.backup);
    assert.equal(after.backup, ranked[2]);
    const list = backupsOf.get(o.primary) ?? [];
    list.push(o.backup ?? '');
    backupsOf.set(o.primary, list);
  }
  // When a node fails its flows spread over all survivors rather than piling onto one.
  for (const [primary, backups] of backupsOf) {
    for (const [id, share] of shares(backups)) {
      assert.ok(Math.abs(share - 0.25) <= 0.02, `backups of ${primary}: ${id} has ${(share * 100).toFixed(2)}%`);
    }
  }
});

test('owners() agrees with rank() for random node sets and weights', () => {
  const rz = new Rendezvous(SECRET);
  const rand = prng(4242);
  for (let t = 0; t < 3000; t++) {
    const n = 1 + Math.floor(rand() * 20);
    const nodes = Array.from({ length: n }, (_, i) => ({ id: `n${Math.floor(rand() * 1000)}-${i}`, weight: [0, 0.5, 1, 2, 3][Math.floor(rand() * 5)] }));
    const key = KEYS[t];
    const ranked = rz.rank(key, nodes);
    if (ranked.length === 0) {
      assert.throws(() => rz.owners(key, nodes), (e: unknown) => isTandemError(e, ErrorCodes.NO_ALIVE_NODE));
      continue;
    }
    const o = rz.owners(key, nodes);
    assert.deepEqual([o.primary, o.backup], [ranked[0], ranked[1] ?? null]);
  }
});

// ---------------------------------------------------------------------------------------------
// Edge cases

test('one node: it is primary and the backup is null', () => {
  const rz = new Rendezvous(SECRET);
  assert.deepEqual(rz.owners('k', equalNodes('solo')), { primary: 'solo', backup: null });
  assert.deepEqual(rz.rank('k', equalNodes('solo')), ['solo']);
});

test('no node, or no node with a positive weight: NO_ALIVE_NODE', () => {
  const rz = new Rendezvous(SECRET);
  const isNoAlive = (e: unknown): boolean => isTandemError(e, ErrorCodes.NO_ALIVE_NODE);
  assert.throws(() => rz.owners('k', []), isNoAlive);
  assert.throws(() => rz.owners('k', [{ id: 'a', weight: 0 }, { id: 'b', weight: -1 }]), isNoAlive);
  assert.deepEqual(rz.rank('k', []), []);
  assert.deepEqual(rz.scores('k', [{ id: 'a', weight: 0 }]), []);
});

test('weight 0, negative, NaN and Infinity are never chosen', () => {
  const rz = new Rendezvous(SECRET);
  const nodes: RendezvousNode[] = [
    { id: 'zero', weight: 0 },
    { id: 'ok1', weight: 1 },
    { id: 'neg', weight: -2 },
    { id: 'nan', weight: Number.NaN },
    { id: 'inf', weight: Number.POSITIVE_INFINITY },
    { id: 'ok2', weight: 1 },
  ];
  for (const k of KEYS.slice(0, 2000)) {
    const o = rz.owners(k, nodes);
    assert.ok(['ok1', 'ok2'].includes(o.primary));
    assert.ok(o.backup !== null && ['ok1', 'ok2'].includes(o.backup));
    assert.deepEqual(new Set(rz.rank(k, nodes)), new Set(['ok1', 'ok2']));
  }
  assert.equal(rz.score('k', { id: 'zero', weight: 0 }), 0);
});

test('different secrets give different orders', () => {
  const nodes = equalNodes('lb1', 'lb2', 'lb3', 'lb4');
  const a = new Rendezvous('secret-one-0123456789');
  const b = new Rendezvous('secret-two-0123456789');
  const keys = KEYS.slice(0, 20_000);
  const differ = keys.filter((k) => a.owners(k, nodes).primary !== b.owners(k, nodes).primary).length / keys.length;
  // Independent rankings agree on the primary 1/4 of the time.
  assert.ok(Math.abs(differ - 0.75) <= 0.02, `primaries differ for ${(differ * 100).toFixed(1)}% of keys`);
});

test('scores(): sorted best first, consistent with score(), and scale-free in weights', () => {
  const rz = new Rendezvous(SECRET);
  const nodes: RendezvousNode[] = [{ id: 'a', weight: 1 }, { id: 'b', weight: 2 }, { id: 'c', weight: 0.5 }, { id: 'd', weight: 3 }];
  const doubled = nodes.map((n) => ({ id: n.id, weight: n.weight * 2 }));
  for (const k of KEYS.slice(0, 500)) {
    const s = rz.scores(k, nodes);
    assert.equal(s.length, 4);
    for (let i = 1; i < s.length; i++) assert.ok(s[i - 1].score >= s[i].score);
    for (const e of s) {
      assert.ok(e.score > 0 && Number.isFinite(e.score));
      assert.equal(e.score, rz.score(k, { id: e.id, weight: e.weight }));
    }
    // Multiplying every weight by one constant changes no order.
    assert.deepEqual(rz.rank(k, doubled), rz.rank(k, nodes));
  }
});

test('order does not depend on the order nodes are listed in', () => {
  const rz = new Rendezvous(SECRET);
  const nodes = equalNodes('a', 'b', 'c', 'd', 'e', 'f');
  const reversed = [...nodes].reverse();
  for (const k of KEYS.slice(0, 2000)) {
    assert.deepEqual(rz.owners(k, reversed), rz.owners(k, nodes));
    assert.deepEqual(rz.rank(k, reversed), rz.rank(k, nodes));
  }
});

test('ties break on node id ascending', () => {
  assert.ok(compareScores({ id: 'a', weight: 1, score: 2 }, { id: 'b', weight: 1, score: 2 }) < 0);
  assert.ok(compareScores({ id: 'b', weight: 1, score: 2 }, { id: 'a', weight: 1, score: 2 }) > 0);
  assert.ok(compareScores({ id: 'z', weight: 1, score: 3 }, { id: 'a', weight: 1, score: 2 }) < 0);
  assert.equal(compareScores({ id: 'a', weight: 1, score: 2 }, { id: 'a', weight: 1, score: 2 }), 0);
});

test('a repeated id is never both primary and backup', () => {
  const rz = new Rendezvous(SECRET);
  const nodes: RendezvousNode[] = [{ id: 'a', weight: 1 }, { id: 'a', weight: 5 }, { id: 'b', weight: 1 }, { id: 'a', weight: 1 }];
  for (const k of KEYS.slice(0, 2000)) {
    const o = rz.owners(k, nodes);
    assert.notEqual(o.primary, o.backup);
    assert.deepEqual(rz.rank(k, nodes), [o.primary, o.backup]);
  }
});

/** The ranking recomputed from the byte-level definition in rendezvous.ts's header, with BigInt. */
function rankBySpec(secret: string, key: string, nodes: readonly RendezvousNode[]): string[] {
  const rk = deriveRendezvousKey(secret);
  const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
  const kh = siphash24(rk, utf8(key));
  return nodes
    .filter((n) => n.weight > 0 && Number.isFinite(n.weight))
    .map((n) => {
      const seed = siphash24(rk, Uint8Array.from([0xff, ...utf8(n.id)]));
      const h = Number(fmix64(kh ^ seed) >> 11n);
      return { id: n.id, weight: n.weight, score: -n.weight / Math.log((h + 0.5) / 2 ** 53) };
    })
    .sort(compareScores)
    .map((s) => s.id);
}

test('follows the byte-level definition, through every key-encoding path', () => {
  const rz = new Rendezvous(SECRET);
  const nodes: RendezvousNode[] = [
    ...equalNodes('lb1', 'lb2', 'lb3', 'lb4', 'lb5'),
    { id: 'nœud-6', weight: 2 },
    { id: 'ノード7', weight: 0.5 },
  ];
  // ASCII loop, encodeInto into the scratch buffer, and the allocating path for long keys.
  const keys = ['', 'a', '10.0.0.1:443', 'é', '🚀', 'x'.repeat(256), 'x'.repeat(257), 'é'.repeat(256), 'é'.repeat(300), 'lb1'];
  for (const k of [...keys, ...KEYS.slice(0, 300)]) {
    rz.owners('a different key that leaves its bytes in the scratch buffer', nodes);
    assert.deepEqual(rz.rank(k, nodes), rankBySpec(SECRET, k, nodes), JSON.stringify(k.slice(0, 12)));
  }
});

test('a lone surrogate hashes as U+FFFD, as TextEncoder encodes it', () => {
  const rz = new Rendezvous(SECRET);
  const nodes = equalNodes('lb1', 'lb2', 'lb3', 'lb4', 'lb5', 'lb6', 'lb7', 'lb8');
  assert.deepEqual(rz.scores('\ud800', nodes), rz.scores('\ufffd', nodes));
  assert.notDeepEqual(rz.scores('é', nodes), rz.scores('e', nodes));
});
