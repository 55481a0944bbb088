/**
 * Writes test/fixtures/rendezvous-golden.json: flow keys and node sets with the ranking that
 * src/cluster/rendezvous.ts gives them today (docs/design.md §2 asks for golden vectors).
 *
 * Run once, by hand, and commit the output: `node --import tsx scripts/gen-rendezvous-golden.ts`.
 * Re-running it after changing the hash or the score formula would make the test agree with the
 * change, which defeats its purpose: a new ranking is a new version of the routing rule (mixed
 * versions in one cluster disagree on owners), so it needs a new key label ("tandem/rendezvous/v2")
 * and a new fixture, not an overwritten one.
 *
 * Each case also records the derived SipHash key and the SipHash of the flow key, so that a failure
 * says whether the key derivation, the hash or the score formula changed.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Rendezvous, deriveRendezvousKey, type RendezvousNode } from '../src/cluster/rendezvous.js';
import { siphash24Hex } from '../src/cluster/siphash.js';

interface GoldenCase {
  name: string;
  secret: string;
  key: string;
  nodes: RendezvousNode[];
  /** Eligible node ids, best first: expected[0] is the primary, expected[1] the backup. */
  expected: string[];
  /** HMAC-derived SipHash key, 32 hex digits. */
  rendezvousKey: string;
  /** SipHash-2-4 of the key's UTF-8 bytes, as a 64-bit integer in 16 hex digits. */
  keyHash: string;
}

const SECRETS = ['golden-secret-0123456789', 'another cluster secret, ünïcödé'];

const ids = (n: number, prefix = 'lb'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);
const equal = (n: number): RendezvousNode[] => ids(n).map((id) => ({ id, weight: 1 }));
const weighted = (weights: number[], prefix = 'lb'): RendezvousNode[] =>
  weights.map((weight, i) => ({ id: `${prefix}${i + 1}`, weight }));

const NODE_SETS: Array<{ name: string; nodes: RendezvousNode[] }> = [
  { name: '1 node', nodes: equal(1) },
  { name: '2 nodes', nodes: equal(2) },
  { name: '3 nodes', nodes: equal(3) },
  { name: '3 nodes weights 1,1,2', nodes: weighted([1, 1, 2]) },
  { name: '5 nodes weights 0.5,1,2,3,1', nodes: weighted([0.5, 1, 2, 3, 1]) },
  { name: '5 nodes, one weight 0', nodes: weighted([1, 0, 1, 2, 1]) },
  { name: '16 nodes mixed weights', nodes: weighted([1, 2, 3, 0.5, 1, 1, 2, 3, 0.5, 1, 1, 2, 3, 0.5, 1, 1]) },
  { name: '16 nodes, ids out of order', nodes: ids(16, 'node-').reverse().map((id) => ({ id, weight: 1 })) },
];

const KEYS: string[] = [
  '10.0.0.1:51234',
  '192.168.1.20',
  '2001:db8::1',
  '',
  'session=abc123; path=/',
  'café', // two-byte UTF-8
  '日本語のキー', // three-byte UTF-8
  '🚀 flow', // four-byte UTF-8 (a surrogate pair in JS)
  'lb1', // equal to a node id: the 0xFF prefix of node seeds keeps the two apart
  'k'.repeat(300), // longer than the reusable encode buffer's ASCII limit
  'é'.repeat(150) + 'x'.repeat(150), // 300 units, non-ASCII, over the limit as well
];

function main(): void {
  const cases: GoldenCase[] = [];
  // Every key against the set that varies most (16 mixed weights), under both secrets; then every
  // node set against a few keys. About forty cases in all.
  SECRETS.forEach((secret, secretIndex) => {
    const rz = new Rendezvous(secret);
    const rk = deriveRendezvousKey(secret);
    const add = (setName: string, nodes: RendezvousNode[], key: string): void => {
      cases.push({
        name: `secret ${secretIndex + 1} / ${setName} / key ${JSON.stringify(key.length > 24 ? `${key.slice(0, 12)}…(${key.length})` : key)}`,
        secret,
        key,
        nodes,
        expected: rz.rank(key, nodes),
        rendezvousKey: Buffer.from(rk).toString('hex'),
        keyHash: siphash24Hex(rk, new TextEncoder().encode(key)),
      });
    };
    const mixed = NODE_SETS.find((s) => s.name === '16 nodes mixed weights');
    if (mixed === undefined) throw new Error('node set missing');
    for (const key of KEYS) add(mixed.name, mixed.nodes, key);
    for (const set of NODE_SETS) {
      if (set === mixed) continue;
      for (const key of secretIndex === 0 ? KEYS.slice(0, 2) : KEYS.slice(5, 6)) add(set.name, set.nodes, key);
    }
  });
  const doc = {
    description:
      'Golden vectors for src/cluster/rendezvous.ts (docs/design.md §2). expected = eligible node ids ranked ' +
      'by score = -weight/ln(u) descending, ties by id ascending (no ties occur in these cases). ' +
      'Generated once by scripts/gen-rendezvous-golden.ts; do not regenerate to make a test pass.',
    version: 'tandem/rendezvous/v1',
    cases,
  };
  const target = fileURLToPath(new URL('../test/fixtures/rendezvous-golden.json', import.meta.url));
  // One node per line keeps the file reviewable (16-node cases would otherwise take 64 lines each).
  const text = JSON.stringify(doc, null, 2)
    .replace(/\{\s+"id": ("[^"]*"),\s+"weight": ([^\s]+)\s+\}/g, '{ "id": $1, "weight": $2 }')
    .replace(/"expected": \[([^\]]*)\]/g, (_m, list: string) => `"expected": [${list.trim().split(/,\s+/).join(', ')}]`);
  writeFileSync(target, `${text}\n`);
  console.log(`wrote ${cases.length} cases to ${target}`);
}

main();
