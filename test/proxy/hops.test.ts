/**
 * The shared forwarding loop (src/proxy/hops.ts) through every outcome, with a real FlowRouter,
 * table and rendezvous, and a membership whose states the test sets. Each protocol's own tests
 * drive the same loop with its real attempt type; this file pins the rules they share.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { Rendezvous } from '../../src/cluster/rendezvous.js';
import type { FlowEntry } from '../../src/cluster/flow-entry.js';
import type { DataPlane, PeerState } from '../../src/proxy/context.js';
import { Forwarder, SERVED, stop, tryNext, type Attempt } from '../../src/proxy/hops.js';
import { testRouter } from '../helpers/router.js';

const NODES = ['lb1', 'lb2', 'lb3', 'lb4'];

class FakeMembership extends EventEmitter {
  readonly states = new Map<string, PeerState>();
  readonly suspected: string[] = [];
  state(id: string): PeerState {
    return this.states.get(id) ?? 'alive';
  }
  set(id: string, s: PeerState): void {
    const prev = this.state(id);
    this.states.set(id, s);
    this.emit('peer-state', id, s, prev);
  }
}

function makeNode(selfId: string) {
  const m = new FakeMembership();
  const rv = new Rendezvous('hops-test-secret-0123456789');
  const state = (id: string): PeerState => (id === selfId ? 'alive' : m.state(id));
  const { router } = testRouter({ selfId, nodes: NODES, rv, state });
  const dp: DataPlane = {
    selfId,
    stateOf: (id) => m.state(id),
    markSuspect: (id) => {
      m.suspected.push(id);
      if (m.state(id) === 'alive') m.set(id, 'suspect');
    },
    dial: () => Promise.reject(new Error('no dial in this test')),
    on: (ev, l) => m.on(ev, l),
    off: (ev, l) => m.off(ev, l),
    onChannel: () => undefined,
  };
  return { router, m, forwarder: new Forwarder(router, dp), rv };
}

/** A key whose primary and backup are both peers of `self` (not self). */
function remoteKey(rv: Rendezvous, self: string): { key: string; primary: string; backup: string } {
  const all = NODES.map((id) => ({ id, weight: 1 }));
  for (let i = 0; ; i++) {
    const key = `k${i}`;
    const o = rv.owners(key, all);
    if (o.primary !== self && o.backup !== null && o.backup !== self) return { key, primary: o.primary, backup: o.backup };
  }
}

function keyWithPrimary(rv: Rendezvous, primary: string): string {
  const all = NODES.map((id) => ({ id, weight: 1 }));
  for (let i = 0; ; i++) if (rv.owners(`p${i}`, all).primary === primary) return `p${i}`;
}

type F = 'unavailable' | 'no_backend' | 'refused';

test('primary answers: one attempt, to-primary, no failover', async () => {
  const { router, forwarder, rv } = makeNode('lb1');
  const { key, primary } = remoteKey(rv, 'lb1');
  const seen: Attempt[] = [];
  const r = await forwarder.run<F>(router.lookup('web', key), false, (a) => (seen.push(a), SERVED), 'unavailable');
  assert.equal(r.ok, true);
  assert.equal(seen.length, 1);
  assert.equal(seen[0].node, primary);
  assert.equal(seen[0].kind, 'to-primary');
  assert.equal(r.ok && r.failovers, 0);
});

test('this node is the primary: served locally, kind local', async () => {
  const { router, forwarder, rv } = makeNode('lb2');
  const key = keyWithPrimary(rv, 'lb2');
  const seen: Attempt[] = [];
  const r = await forwarder.run<F>(router.lookup('web', key), false, (a) => (seen.push(a), SERVED), 'unavailable');
  assert.equal(r.ok, true);
  assert.deepEqual(seen.map((a) => [a.hop.kind, a.kind]), [['local', 'local']]);
});

test('primary refused before any byte: the backup is tried next, the primary marked suspect', async () => {
  const { router, forwarder, rv, m } = makeNode('lb1');
  const { key, primary, backup } = remoteKey(rv, 'lb1');
  const seen: string[] = [];
  const r = await forwarder.run<F>(router.lookup('web', key), false, (a) => {
    seen.push(a.node);
    return a.node === primary ? tryNext('unavailable', true) : SERVED;
  }, 'unavailable');
  assert.deepEqual(seen, [primary, backup]);
  assert.equal(r.ok && r.kind, 'to-backup');
  assert.equal(r.ok && r.failovers, 1);
  assert.deepEqual(m.suspected, [primary]);
});

test('a refusal that is not the peer\'s fault (next, not suspect) fails over without marking it', async () => {
  const { router, forwarder, rv, m } = makeNode('lb1');
  const { key, primary } = remoteKey(rv, 'lb1');
  const r = await forwarder.run<F>(router.lookup('web', key), false, (a) => (a.node === primary ? tryNext('refused', false) : SERVED), 'unavailable');
  assert.equal(r.ok, true);
  assert.deepEqual(m.suspected, []);
});

test('a failure that must not be retried (stop) ends the loop on the first hop', async () => {
  const { router, forwarder, rv } = makeNode('lb1');
  const { key } = remoteKey(rv, 'lb1');
  let n = 0;
  const r = await forwarder.run<F>(router.lookup('web', key), false, () => (n++, stop('no_backend')), 'unavailable');
  assert.equal(n, 1);
  assert.deepEqual(r.ok ? null : r.failure, 'no_backend');
});

test('primary declared dead mid-attempt: the attempt is aborted and the backup serves', async () => {
  const { router, forwarder, rv, m } = makeNode('lb1');
  const { key, primary, backup } = remoteKey(rv, 'lb1');
  const seen: string[] = [];
  const r = await forwarder.run<F>(router.lookup('web', key), false, (a) => {
    seen.push(a.node);
    if (a.node !== primary) return SERVED;
    // A frozen primary: never answers; only the abort ends the attempt.
    return new Promise((resolve) => {
      a.onAbort = () => resolve(tryNext('unavailable', false));
      setImmediate(() => m.set(primary, 'dead'));
    });
  }, 'unavailable');
  assert.deepEqual(seen, [primary, backup]);
  assert.equal(r.ok && r.kind, 'to-backup');
  assert.equal(forwarder.inflight, 0, 'no attempt left registered');
});

test('a suspect primary goes after the alive backup once the flow has a backend; before, it goes first', async () => {
  const { router, forwarder, rv, m } = makeNode('lb1');
  const { key, primary, backup } = remoteKey(rv, 'lb1');
  m.set(primary, 'suspect');
  const seen: string[] = [];
  // New: the primary may be choosing the backend right now; the backup would choose another.
  const attempt = (a: Attempt) => (seen.push(a.node), seen.length === 1 ? tryNext<F>('unavailable', false) : SERVED);
  await forwarder.run<F>(router.lookup('web', key), false, attempt, 'unavailable');
  assert.deepEqual(seen, [primary, backup]);
  const { entry } = router.assign(router.lookup('web', key), () => true, () => '10.0.0.9:80');
  seen.length = 0;
  await forwarder.run<F>(entry, false, attempt, 'unavailable');
  assert.deepEqual(seen, [backup, primary]);
});

test('both owners gone: re-owned once, among the nodes not tried, and the backend kept', async () => {
  const { router, forwarder, rv } = makeNode('lb1');
  const { key, primary, backup } = remoteKey(rv, 'lb1');
  const created = router.lookup('web', key);
  const { entry } = router.assign(created, () => true, () => '10.0.0.9:80');
  const seen: Attempt[] = [];
  const r = await forwarder.run<F>(entry, false, (a) => {
    seen.push(a);
    return a.kind === 'reowned' ? SERVED : tryNext('unavailable', true);
  }, 'unavailable');
  assert.deepEqual(seen.slice(0, 2).map((a) => a.node), [primary, backup]);
  assert.ok(seen.length >= 3);
  const last = seen[seen.length - 1];
  assert.equal(last.kind, 'reowned');
  assert.ok(![primary, backup].includes(last.node) || last.node === 'lb1', 'the re-own goes to a node not tried');
  assert.equal(r.ok && r.entry.backend, '10.0.0.9:80', 're-own keeps the backend');
  assert.equal(router.stats.reowned, 1);
});

test('nothing can take it: one re-own, then the loop fails with the last failure', async () => {
  const { router, forwarder, rv } = makeNode('lb1');
  const { key } = remoteKey(rv, 'lb1');
  const seen: string[] = [];
  const r = await forwarder.run<F>(router.lookup('web', key), false, (a) => (seen.push(a.node), tryNext('refused', false)), 'unavailable');
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.failure, 'refused');
  assert.equal(router.stats.reowned, 1, 'exactly one re-own');
  assert.equal(new Set(seen).size, seen.length, 'no node tried twice');
});

test('both owners seen dead before the communication: re-owned before the first attempt', async () => {
  const { router, forwarder, rv, m } = makeNode('lb1');
  const { key, primary, backup } = remoteKey(rv, 'lb1');
  const entry = router.lookup('web', key);
  m.set(primary, 'dead');
  m.set(backup, 'dead');
  const seen: Attempt[] = [];
  const r = await forwarder.run<F>(entry, false, (a) => (seen.push(a), SERVED), 'unavailable');
  assert.equal(r.ok, true);
  assert.equal(seen[0].kind, 'reowned');
  assert.ok(![primary, backup].includes(seen[0].node));
});

test('a communication forwarded in by a peer is served here, never forwarded again, never re-owned', async () => {
  const { router, forwarder, rv } = makeNode('lb1');
  const { key } = remoteKey(rv, 'lb1');
  const seen: Attempt[] = [];
  const r = await forwarder.run<F>(router.lookup('web', key), true, (a) => (seen.push(a), tryNext('no_backend', false)), 'unavailable');
  assert.deepEqual(seen.map((a) => a.hop.kind), ['local']);
  assert.equal(r.ok, false);
  assert.equal(router.stats.reowned, 0);
});

test('close() unsubscribes: a later death no longer reaches attempts', async () => {
  const { forwarder, m } = makeNode('lb1');
  forwarder.close();
  assert.equal(m.listenerCount('peer-state'), 0);
});

test('entries are not mutated by the loop', async () => {
  const { router, forwarder, rv } = makeNode('lb1');
  const { key } = remoteKey(rv, 'lb1');
  const e: FlowEntry = router.lookup('web', key);
  const copy = { ...e };
  await forwarder.run<F>(e, false, () => tryNext('unavailable', true), 'unavailable');
  assert.deepEqual(e, copy);
});
