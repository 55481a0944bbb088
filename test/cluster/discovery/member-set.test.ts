import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemberSet, type MemberNode } from '../../../src/cluster/discovery/member-set.js';
import type { MemberPhase, MemberRecord } from '../../../src/cluster/discovery/records.js';

const node = (id: string, host = `10.0.0.${id.slice(2)}`, weight = 1): MemberNode => ({ id, host, peerPort: 7000, adminPort: 9000, weight });
const rec = (id: string, phase: MemberPhase = 'serving', host = `10.0.0.${id.slice(2)}`): MemberRecord => ({
  id,
  cluster: 'c',
  host,
  peerPort: 7000,
  adminPort: 9000,
  weight: 1,
  phase,
  incarnation: 'abcdef0123456789',
  startedAt: 1,
  version: '0.1.0',
});
const records = (...rs: MemberRecord[]) => new Map(rs.map((r) => [r.id, r]));
const ids = (s: MemberSet) => s.nodes().map((n) => n.id);
const alive = () => false;
const dead = () => true;

test('without discovery: the file order, self where the file lists it', () => {
  const s = new MemberSet(node('lb2'), [node('lb3'), node('lb2'), node('lb1')]);
  assert.deepEqual(ids(s), ['lb3', 'lb2', 'lb1']);
  assert.deepEqual(s.info('lb2'), { source: 'self', phase: null });
  assert.deepEqual(s.info('lb3'), { source: 'file', phase: null });
  assert.equal(s.info('lb9'), null);
});

test('discovered nodes join; sorted by id (numeric-aware) with discovery', () => {
  const s = new MemberSet(node('lb1'), [], { sorted: true });
  assert.deepEqual(ids(s), ['lb1']);
  const before = s.nodes();
  assert.equal(s.setDiscovered(records(rec('lb10'), rec('lb2'), rec('lb1', 'serving', '192.0.2.1')), alive), true);
  assert.notEqual(s.nodes(), before, 'a new array when the set changed');
  assert.deepEqual(ids(s), ['lb1', 'lb2', 'lb10']);
  assert.equal(s.nodes()[0].host, '10.0.0.1', 'self is what this process was started with, not its etcd record');
  assert.deepEqual(s.info('lb10'), { source: 'etcd', phase: 'serving' });
  const same = s.nodes();
  assert.equal(s.setDiscovered(records(rec('lb10'), rec('lb2')), alive), false);
  assert.equal(s.nodes(), same, 'the same array when nothing changed');
});

test('a node that leaves etcd stays while alive and is dropped once dead', () => {
  const s = new MemberSet(node('lb1'), [], { sorted: true });
  s.setDiscovered(records(rec('lb2'), rec('lb3')), alive);
  assert.equal(s.setDiscovered(records(rec('lb2')), alive), false, 'lb3 still alive: still a member');
  assert.deepEqual(ids(s), ['lb1', 'lb2', 'lb3']);
  assert.deepEqual(s.info('lb3'), { source: 'departed', phase: 'serving' });
  assert.equal(s.eligible('lb3'), true, 'its last phase was serving: an expired lease does not strip it of new flows');
  assert.equal(s.peerDead('lb2'), false, 'lb2 is still in etcd: death alone does not remove it');
  assert.equal(s.peerDead('lb3'), true);
  assert.deepEqual(ids(s), ['lb1', 'lb2']);
  assert.equal(s.peerDead('lb3'), false);
  // Already dead when its record goes: dropped at once.
  assert.equal(s.setDiscovered(records(), dead), true);
  assert.deepEqual(ids(s), ['lb1']);
});

test('a departed node that registers again is a normal member again', () => {
  const s = new MemberSet(node('lb1'), [], { sorted: true });
  s.setDiscovered(records(rec('lb2')), alive);
  s.setDiscovered(records(), alive);
  assert.equal(s.info('lb2')?.source, 'departed');
  s.setDiscovered(records(rec('lb2', 'joining')), alive);
  assert.deepEqual(s.info('lb2'), { source: 'etcd', phase: 'joining' });
  assert.equal(s.peerDead('lb2'), false, 'not departed any more');
  assert.deepEqual(ids(s), ['lb1', 'lb2']);
});

test('ranking: joining and leaving members own no new flows; file-only members are judged by heartbeats', () => {
  const s = new MemberSet(node('lb1'), [node('lb1'), node('lb2')], { sorted: true });
  assert.equal(s.eligible('lb2'), true);
  s.setDiscovered(records(rec('lb2', 'joining'), rec('lb3', 'joining'), rec('lb4', 'serving')), alive);
  assert.deepEqual([s.eligible('lb1'), s.eligible('lb2'), s.eligible('lb3'), s.eligible('lb4')], [true, false, false, true]);
  s.setDiscovered(records(rec('lb2'), rec('lb3'), rec('lb4', 'leaving')), alive);
  assert.deepEqual([s.eligible('lb2'), s.eligible('lb3'), s.eligible('lb4')], [true, true, false]);
  // lb4 revokes its lease after the drain: it stays out of the ranking until it is dead.
  s.setDiscovered(records(rec('lb2'), rec('lb3')), alive);
  assert.deepEqual(s.info('lb4'), { source: 'departed', phase: 'leaving' });
  assert.equal(s.eligible('lb4'), false);
  assert.equal(s.eligible('lb1'), true, 'self is always a candidate of its own');
});

test('the file wins over etcd for a node both name; the disagreement is reported', () => {
  const s = new MemberSet(node('lb1'), [node('lb1'), node('lb2')], { sorted: true });
  s.setDiscovered(records(rec('lb2', 'serving', '192.0.2.2')), alive);
  assert.equal(s.nodes().find((n) => n.id === 'lb2')?.host, '10.0.0.2');
  assert.deepEqual(s.conflicts, ['lb2']);
  assert.deepEqual(s.info('lb2'), { source: 'file+etcd', phase: 'serving' });
  // Gone from etcd but in the file: stays, no departure.
  s.setDiscovered(records(), dead);
  assert.deepEqual(s.info('lb2'), { source: 'file', phase: null });
  assert.deepEqual(s.conflicts, []);
});

test('a reload that removes a file node: departed until dead, unless etcd still has it', () => {
  const s = new MemberSet(node('lb1'), [node('lb1'), node('lb2'), node('lb3')]);
  s.setDiscovered(records(rec('lb3')), alive);
  assert.equal(s.setFile([node('lb1')], (id) => id === 'lb2' && false), false, 'lb2 alive: stays; lb3 in etcd: stays');
  assert.equal(s.info('lb2')?.source, 'departed');
  assert.equal(s.info('lb3')?.source, 'etcd');
  assert.equal(s.peerDead('lb2'), true);
  assert.deepEqual(ids(s), ['lb1', 'lb3']);
});

test('an address or weight change makes a new member list', () => {
  const s = new MemberSet(node('lb1'), [], { sorted: true });
  s.setDiscovered(records(rec('lb2')), alive);
  const a = s.nodes();
  s.setDiscovered(records({ ...rec('lb2'), peerPort: 7100 }), alive);
  assert.notEqual(s.nodes(), a);
  assert.equal(s.nodes()[1].peerPort, 7100);
  const b = s.nodes();
  s.setDiscovered(records({ ...rec('lb2'), peerPort: 7100, weight: 3 }), alive);
  assert.notEqual(s.nodes(), b);
  assert.equal(s.nodes()[1].weight, 3);
  const c = s.nodes();
  s.setDiscovered(records({ ...rec('lb2', 'leaving'), peerPort: 7100, weight: 3 }), alive);
  assert.equal(s.nodes(), c, 'a phase change alone keeps the list (eligibility is asked separately)');
});
