/**
 * Child process for the cross-process determinism test in rendezvous.test.ts: computes the owners
 * of seeded keys and prints one sha256 digest. A second process has its own V8 heap, string hashes
 * and Map iteration state, so an equal digest shows the ranking depends on nothing but its inputs.
 *
 * Usage: node --import tsx test/cluster/rendezvous-child.ts SEED COUNT
 */
import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { Rendezvous, type RendezvousNode } from '../../src/cluster/rendezvous.js';
import { prng, randomKey } from '../helpers/prng.js';

export const CHILD_SECRET = 'cross-process-secret-0123456789';
export const CHILD_NODES: readonly RendezvousNode[] = [
  { id: 'lb1', weight: 1 },
  { id: 'lb2', weight: 2 },
  { id: 'lb3', weight: 1 },
  { id: 'lb4', weight: 0.5 },
  { id: 'lb5', weight: 3 },
];

/** sha256 over "primary,backup\n" for `count` keys drawn from prng(seed). */
export function ownersDigest(seed: number, count: number): string {
  const rz = new Rendezvous(CHILD_SECRET);
  const rand = prng(seed);
  const hash = createHash('sha256');
  for (let i = 0; i < count; i++) {
    const o = rz.owners(randomKey(rand), CHILD_NODES);
    hash.update(`${o.primary},${o.backup ?? ''}\n`);
  }
  return hash.digest('hex');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const seed = Number(process.argv[2]);
  const count = Number(process.argv[3]);
  if (!Number.isInteger(seed) || !Number.isInteger(count)) {
    console.error('usage: rendezvous-child.ts SEED COUNT');
    process.exit(2);
  }
  process.stdout.write(`${ownersDigest(seed, count)}\n`);
}
