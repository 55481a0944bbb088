import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlowRouter, LOCAL, type RouterDeps } from '../../src/cluster/router.js';
import { FlowTable } from '../../src/cluster/flow-table.js';
import { Hlc } from '../../src/cluster/hlc.js';
import { Rendezvous } from '../../src/cluster/rendezvous.js';
import type { FlowEntry } from '../../src/cluster/flow-entry.js';
import { prng, randomKey } from '../helpers/prng.js';

const NODES = ['lb1', 'lb2', 'lb3', 'lb4'];

/** One node's router over a real table, rendezvous and clock; the "network" is a shared log. */
function makeNode(selfId: string, states: Map<string, 'alive' | 'suspect' | 'dead'>, wire: FlowEntry[], linksDown: ReadonlySet<string> = new Set()) {
  const table = new FlowTable({ limits: () => ({ maxEntries: 100_000, idleTimeoutMs: 60_000 }) });
  const hlc = new Hlc();
  const rv = new Rendezvous('router-test-secret-0123456789');
  const all = NODES.map((id) => ({ id, weight: 1 }));
  const state = (id: string) => (id === selfId ? 'alive' : (states.get(id) ?? 'alive'));
  const deps: RouterDeps = {
    selfId,
    owners: (key, candidates) => rv.owners(key, all.filter((n) => candidates.includes(n.id))),
    rank: (_s, key) => rv.rank(key, all),
    candidates: () => NODES.filter((id) => state(id) !== 'dead'),
    state,
    linkUp: (id) => !linksDown.has(id),
    publish: (e) => wire.push(e),
    merge: (e) => table.merge(e),
    get: (s, k) => table.get(s, k),
    getAny: (s, k) => table.getAny(s, k),
    version: () => hlc.now(),
    now: () => Date.now(),
  };
  return { router: new FlowRouter(deps), table, rv, all };
}

test('lookup creates the entry once, with the top two alive nodes, and replicates it', () => {
  const wire: FlowEntry[] = [];
  const { router, rv, all } = makeNode('lb1', new Map(), wire);
  const e = router.lookup('web', 'alice');
  const { primary, backup } = rv.owners('alice', all);
  assert.equal(e.primary, primary);
  assert.equal(e.backup, backup);
  assert.equal(e.backend, null);
  assert.equal(wire.length, 1);
  assert.equal(router.lookup('web', 'alice'), e, 'a second lookup finds the stored entry');
  assert.equal(wire.length, 1);
  assert.equal(router.stats.created, 1);
});

test('a creation never overrides a backend choice, in any order of arrival', () => {
  const wireP: FlowEntry[] = [];
  const p = makeNode('lb1', new Map(), wireP);
  const q = makeNode('lb2', new Map(), []);
  const created = p.router.lookup('web', 'erin');
  const { entry: assigned } = p.router.assign(created, () => true, () => 'b1:80');
  // lb2 has not heard of the flow yet and creates it itself, after the assignment in real time.
  const late = q.router.lookup('web', 'erin');
  assert.deepEqual([late.primary, late.backup, late.version, late.writer], [created.primary, created.backup, created.version, created.writer]);
  // Whatever order the two writes arrive in, both nodes keep the backend.
  q.table.merge(assigned);
  p.table.merge(late);
  assert.equal(q.table.get('web', 'erin')!.backend, 'b1:80');
  assert.equal(p.table.get('web', 'erin')!.backend, 'b1:80');
});

test('hops: primary then backup; self is local; a peer-sent communication is always local', () => {
  const rand = prng(7);
  const states = new Map<string, 'alive' | 'suspect' | 'dead'>();
  const { router } = makeNode('lb1', states, []);
  for (let i = 0; i < 200; i++) {
    const e = router.lookup('web', randomKey(rand));
    const hops = router.hops(e, false);
    const expect = [e.primary, e.backup].map((id) => (id === 'lb1' ? 'local' : id));
    assert.deepEqual(hops.map((h) => (h.kind === 'local' ? 'local' : h.id)), expect);
    assert.deepEqual(router.hops(e, true), [LOCAL]);
  }
});

test('hops: a dead primary is skipped, a suspect primary goes after an alive backup once the flow has a backend', () => {
  const states = new Map<string, 'alive' | 'suspect' | 'dead'>();
  const { router } = makeNode('lb4', states, []);
  let e: FlowEntry | undefined;
  for (let i = 0; i < 1000 && !e; i++) {
    const c = router.lookup('web', `k${i}`);
    if (c.primary !== 'lb4' && c.backup !== 'lb4') e = c;
  }
  assert.ok(e);
  assert.equal(e.backend, null);
  states.set(e.primary, 'dead');
  assert.deepEqual(router.hops(e, false), [{ kind: 'peer', id: e.backup }]);
  // A new flow (no backend here yet): the suspect primary may be choosing one, so it goes first.
  states.set(e.primary, 'suspect');
  assert.deepEqual(router.hops(e, false), [{ kind: 'peer', id: e.primary }, { kind: 'peer', id: e.backup }]);
  // With the backend known, the backup serves it as well as the primary would, without waiting.
  const known = { ...e, backend: '10.0.0.1:80' };
  assert.deepEqual(router.hops(known, false), [{ kind: 'peer', id: e.backup }, { kind: 'peer', id: e.primary }]);
  // A suspect primary whose control link is down (crashed, cut off) cannot be choosing anything
  // we would not hear of: the backup first, even for a new flow.
  const down = new Set<string>();
  const n2 = makeNode('lb4', states, [], down);
  down.add(e.primary);
  assert.deepEqual(n2.router.hops(e, false), [{ kind: 'peer', id: e.backup }, { kind: 'peer', id: e.primary }]);
  states.set(e.primary, 'dead');
  states.set(e.backup!, 'dead');
  assert.deepEqual(router.hops(e, false), []);
});

test('reown keeps the backend and picks two alive owners with a newer version', () => {
  const states = new Map<string, 'alive' | 'suspect' | 'dead'>();
  const wire: FlowEntry[] = [];
  const { router } = makeNode('lb1', states, wire);
  const e0 = router.lookup('web', 'bob');
  const { entry: e1 } = router.assign(e0, () => true, () => '10.0.0.1:80');
  states.set(e1.primary, 'dead');
  if (e1.backup) states.set(e1.backup, 'dead');
  states.delete('lb1');
  const e2 = router.reown(e1);
  assert.equal(e2.backend, '10.0.0.1:80');
  assert.notEqual(e2.primary, e1.primary);
  assert.ok(e2.version > e1.version);
  assert.notEqual(e2.primary, e2.backup);
  for (const id of [e2.primary, e2.backup]) assert.notEqual(states.get(id!), 'dead');
  assert.equal(wire.at(-1), e2);
});

test('assign keeps a usable backend, moves an unusable one, and records the choice', () => {
  const wire: FlowEntry[] = [];
  const { router, table } = makeNode('lb1', new Map(), wire);
  const e = router.lookup('web', 'carol');
  const a = router.assign(e, () => true, () => 'b1:80');
  assert.equal(a.backend, 'b1:80');
  assert.equal(table.get('web', 'carol')!.backend, 'b1:80');
  const again = router.assign(a.entry, () => true, () => 'b2:80');
  assert.equal(again.backend, 'b1:80', 'affinity: the recorded backend is kept');
  const moved = router.assign(a.entry, (addr) => addr !== 'b1:80', () => 'b2:80');
  assert.equal(moved.backend, 'b2:80');
  assert.equal(router.stats.backendsMoved, 1);
  const none = router.assign(moved.entry, () => false, () => null);
  assert.equal(none.backend, null);
});

test('refreshes are batched: many requests, one replicated refresh per flow', () => {
  const wire: FlowEntry[] = [];
  const { router } = makeNode('lb1', new Map(), wire);
  const e = router.lookup('web', 'dave');
  for (let i = 0; i < 1000; i++) router.active(e);
  const before = wire.length;
  assert.equal(router.flushRefreshes(), 1);
  assert.equal(wire.length, before + 1);
  assert.equal(router.flushRefreshes(), 0);
});

test('end replicates a tombstone and the next lookup creates a fresh entry', () => {
  const wire: FlowEntry[] = [];
  const { router, table } = makeNode('lb1', new Map(), wire);
  const e = router.lookup('tcp', '1.2.3.4:5000');
  router.end('tcp', '1.2.3.4:5000');
  assert.equal(wire.at(-1)!.ended, true);
  assert.equal(table.get('tcp', '1.2.3.4:5000'), undefined);
  const e2 = router.lookup('tcp', '1.2.3.4:5000');
  assert.ok(e2.version > e.version);
});

test('re-protection gives every node the same entries without a message', () => {
  const rand = prng(42);
  const wire: FlowEntry[] = [];
  const states = new Map<string, 'alive' | 'suspect' | 'dead'>();
  const nodes = NODES.map((id) => makeNode(id, states, []));
  const origin = makeNode('lb1', states, wire);
  for (let i = 0; i < 2000; i++) origin.router.lookup('web', randomKey(rand));
  for (const n of nodes) for (const e of wire) n.table.merge(e);
  // lb3 dies; the three survivors re-protect independently.
  const alive = new Set(['lb1', 'lb2', 'lb4']);
  const survivors = nodes.filter((_, i) => NODES[i] !== 'lb3');
  for (const n of survivors) n.router.reprotectAll([...n.table.entries()], alive);
  const dump = (t: FlowTable) => [...t.entries()].map((e) => `${e.key} ${e.primary} ${e.backup} ${e.version} ${e.writer}`).sort();
  const first = dump(survivors[0].table);
  for (const n of survivors.slice(1)) assert.deepEqual(dump(n.table), first);
  for (const e of survivors[0].table.entries()) {
    assert.ok(alive.has(e.primary) && e.backup !== null && alive.has(e.backup) && e.primary !== e.backup);
  }
});
