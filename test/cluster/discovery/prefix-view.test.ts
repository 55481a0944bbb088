import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PrefixView, type KeyValue } from '../../../src/cluster/discovery/prefix-view.js';
import { encodeConfig, encodeMember, encodeStatus, keysFor, type ConfigDoc, type MemberRecord } from '../../../src/cluster/discovery/records.js';

const keys = keysFor('/t/c/');
const rec = (id: string): MemberRecord => ({ id, cluster: 'c', host: '127.0.0.1', peerPort: 7000, adminPort: 9000, weight: 1, phase: 'serving', incarnation: 'aabbccddeeff0011', startedAt: 1, version: 'x' });
const kv = (key: string, value: string, rev = '1'): KeyValue => ({ key: Buffer.from(key), value: Buffer.from(value), mod_revision: rev });
const doc = (revision: number): ConfigDoc => ({ revision, services: [], pushedAt: 'now', by: 'me' });

function make() {
  const seen = { members: [] as string[][], configs: [] as Array<number | null>, statuses: 0, bad: [] as string[] };
  const view = new PrefixView({
    keys,
    cluster: 'c',
    selfId: 'lb1',
    onMembers: (m) => seen.members.push([...m.keys()].sort()),
    onConfig: (d) => seen.configs.push(d === null ? null : d.revision),
    onStatuses: () => seen.statuses++,
    onBad: (kind) => seen.bad.push(kind),
  });
  return { view, seen };
}

test('a full read: valid values kept, bad ones refused, unrelated keys ignored', () => {
  const { view, seen } = make();
  view.load([
    kv(keys.member('lb1'), encodeMember(rec('lb1'))),
    kv(keys.member('lb2'), encodeMember(rec('lb2'))),
    kv(keys.member('lb3'), 'garbage'),
    kv(keys.status('lb2'), encodeStatus({ node: 'lb2', applied: 1, refused: null, at: 'x' })),
    kv(keys.config, encodeConfig(doc(1)), '10'),
    kv('/t/c/elsewhere', 'whatever'),
  ]);
  assert.deepEqual(seen.members, [['lb1', 'lb2']]);
  assert.deepEqual(seen.configs, [1]);
  assert.deepEqual(seen.bad, ['member']);
  assert.equal(view.statuses().get('lb2')?.applied, 1);
  // The same config (same mod_revision) after a reconnect is not reported again.
  view.load([kv(keys.config, encodeConfig(doc(1)), '10')]);
  assert.deepEqual(seen.configs, [1]);
  assert.deepEqual(seen.members.at(-1), []);
});

test('watch events: changes reported once per batch; own keys flagged', () => {
  const { view, seen } = make();
  view.load([kv(keys.member('lb1'), encodeMember(rec('lb1'))), kv(keys.member('lb2'), encodeMember(rec('lb2')))]);
  const own = view.apply([
    { type: 'Put', kv: kv(keys.member('lb3'), encodeMember(rec('lb3'))) },
    { type: 'Delete', kv: kv(keys.member('lb2'), '') },
    { type: 'Delete', kv: kv(keys.member('lb1'), '') },
  ]);
  assert.deepEqual(own, { record: null, statusDeleted: false });
  assert.deepEqual(seen.members.at(-1), ['lb3']);
  assert.equal(seen.members.length, 2, 'one report for the batch');
  assert.deepEqual(view.apply([{ type: 'Put', kv: kv(keys.member('lb1'), encodeMember(rec('lb1'))) }]).record?.id, 'lb1');
  assert.deepEqual(view.apply([{ type: 'Delete', kv: kv(keys.status('lb1'), '') }]), { record: undefined, statusDeleted: true });
  // A put that turns a record invalid removes it.
  view.apply([{ type: 'Put', kv: kv(keys.member('lb3'), '{}') }]);
  assert.deepEqual(seen.members.at(-1), ['lb1']);
  // Config: a bad one keeps the last good one; a delete reports null.
  view.apply([{ type: 'Put', kv: kv(keys.config, encodeConfig(doc(2)), '20') }]);
  view.apply([{ type: 'Put', kv: kv(keys.config, 'nope', '21') }]);
  view.apply([{ type: 'Delete', kv: kv(keys.config, '', '22') }]);
  assert.deepEqual(seen.configs, [2, null]);
  assert.deepEqual(seen.bad, ['member', 'config']);
});
