import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reprotect, reprotectAll, type RankFn } from '../../src/cluster/reprotect.js';
import type { FlowEntry } from '../../src/cluster/flow-entry.js';
import { prng, randomKey } from '../helpers/prng.js';

const NODES = ['lb1', 'lb2', 'lb3', 'lb4', 'lb5'];
/** A fixed ranking for the rule tests: lb1 > lb2 > ... for every key. */
const fixedRank: RankFn = () => NODES;

/**
 * A stand-in for rendezvous ranking: a per-key permutation of the nodes, derived from a string
 * hash (FNV-1a) so it is deterministic across calls, like the real thing.
 */
function hashRank(nodes: readonly string[]): RankFn {
  return (service, key) => {
    let h = 0x811c9dc5;
    for (const ch of service + '\0' + key) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
    const r = prng(h);
    const out = [...nodes];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  };
}

function flow(primary: string, backup: string | null, key = 'k', ended = false): FlowEntry {
  return { service: 'web', key, primary, backup, backend: '10.0.0.1:80', version: 1, writer: primary, lastActive: 0, ended };
}

const alive = (...ids: string[]): ReadonlySet<string> => new Set(ids);

test('reprotect: both owners alive means no change', () => {
  assert.equal(reprotect(flow('lb3', 'lb4'), alive('lb1', 'lb3', 'lb4'), fixedRank), null);
});

test('reprotect: dead primary promotes the backup; next ranked alive becomes backup', () => {
  assert.deepEqual(reprotect(flow('lb1', 'lb2'), alive('lb2', 'lb3', 'lb4'), fixedRank), { primary: 'lb2', backup: 'lb3' });
  // The promoted backup is kept even when a better-ranked node is alive: it knows the backend.
  assert.deepEqual(reprotect(flow('lb4', 'lb3'), alive('lb1', 'lb2', 'lb3'), fixedRank), { primary: 'lb3', backup: 'lb1' });
  // Promotion with no other alive node leaves no backup.
  assert.deepEqual(reprotect(flow('lb1', 'lb2'), alive('lb2'), fixedRank), { primary: 'lb2', backup: null });
});

test('reprotect: dead or missing backup is replaced by the first alive ranked node other than the primary', () => {
  assert.deepEqual(reprotect(flow('lb2', 'lb1'), alive('lb2', 'lb3', 'lb5'), fixedRank), { primary: 'lb2', backup: 'lb3' });
  assert.deepEqual(reprotect(flow('lb2', null), alive('lb1', 'lb2'), fixedRank), { primary: 'lb2', backup: 'lb1' });
  // Alone: a null backup stays null, which is no change.
  assert.equal(reprotect(flow('lb2', null), alive('lb2'), fixedRank), null);
  assert.deepEqual(reprotect(flow('lb2', 'lb1'), alive('lb2'), fixedRank), { primary: 'lb2', backup: null });
});

test('reprotect: both owners dead re-owns with the first two alive in rank order', () => {
  assert.deepEqual(reprotect(flow('lb1', 'lb2'), alive('lb5', 'lb3', 'lb4'), fixedRank), { primary: 'lb3', backup: 'lb4' });
  assert.deepEqual(reprotect(flow('lb1', null), alive('lb4'), fixedRank), { primary: 'lb4', backup: null });
  assert.equal(reprotect(flow('lb1', 'lb2'), alive(), fixedRank), null, 'no alive node: nothing to do');
  // Alive nodes the ranking does not know are never chosen.
  assert.equal(reprotect(flow('lb1', 'lb2'), alive('stranger'), fixedRank), null);
});

test('reprotect: an entry naming one node twice is repaired', () => {
  assert.deepEqual(reprotect(flow('lb1', 'lb1'), alive('lb1', 'lb2'), fixedRank), { primary: 'lb1', backup: 'lb2' });
  assert.deepEqual(reprotect(flow('lb1', 'lb1'), alive('lb1'), fixedRank), { primary: 'lb1', backup: null });
  assert.deepEqual(reprotect(flow('lb1', 'lb1'), alive('lb2', 'lb3'), fixedRank), { primary: 'lb2', backup: 'lb3' });
});

test('reprotect: rank is consulted only when a replacement is needed', () => {
  let calls = 0;
  const counting: RankFn = (s, k) => {
    calls++;
    return fixedRank(s, k);
  };
  reprotect(flow('lb1', 'lb2'), alive('lb1', 'lb2'), counting);
  assert.equal(calls, 0);
  reprotect(flow('lb1', 'lb2'), alive('lb1'), counting);
  assert.equal(calls, 1);
});

test('reprotect: random entries and dead sets always end with distinct alive owners, deterministically', () => {
  const rand = prng(0x5eed);
  const nodes = Array.from({ length: 9 }, (_, i) => `node-${i}`);
  const rank = hashRank(nodes);
  for (let round = 0; round < 200; round++) {
    // Owners as the routing rule would have chosen them when some other set was alive.
    const entries: FlowEntry[] = [];
    for (let i = 0; i < 100; i++) {
      const key = randomKey(rand);
      const ranked = rank('web', key).filter(() => rand() < 0.8);
      if (ranked.length === 0) continue;
      entries.push(flow(ranked[0], ranked[1] ?? null, key, rand() < 0.05));
    }
    const aliveSet = new Set(nodes.filter(() => rand() < 0.6));
    const changes = reprotectAll(entries, aliveSet, rank);
    assert.deepEqual(reprotectAll(entries, new Set([...aliveSet].reverse()), rank), changes, 'deterministic');
    const changed = new Map(changes.map((c) => [c.entry, c.owners]));
    for (const e of entries) {
      const owners = changed.get(e) ?? { primary: e.primary, backup: e.backup };
      if (e.ended) {
        assert.equal(changed.has(e), false, 'tombstones are skipped');
        continue;
      }
      if (aliveSet.size === 0) {
        assert.equal(changed.has(e), false);
        continue;
      }
      assert.ok(aliveSet.has(owners.primary), `round ${round}: primary ${owners.primary} dead`);
      assert.notEqual(owners.primary, owners.backup);
      if (aliveSet.size >= 2) {
        assert.ok(owners.backup !== null && aliveSet.has(owners.backup), `round ${round}: backup ${owners.backup}`);
      } else {
        assert.equal(owners.backup, null);
      }
      // Minimal movement: surviving owners stay owners; a surviving backup of a dead primary is promoted.
      if (aliveSet.has(e.primary)) assert.equal(owners.primary, e.primary);
      else if (e.backup !== null && aliveSet.has(e.backup)) assert.equal(owners.primary, e.backup);
      if (e.backup !== null && aliveSet.has(e.backup) && aliveSet.has(e.primary)) assert.equal(changed.has(e), false);
      // Applying re-protection again under the same alive set changes nothing (a fixed point).
      assert.equal(reprotect({ ...e, ...owners }, aliveSet, rank), null);
    }
  }
});
