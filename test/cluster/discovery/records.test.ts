import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_VALUE_BYTES,
  decodeConfig,
  decodeMember,
  decodeStatus,
  encodeConfig,
  encodeMember,
  encodeStatus,
  keysFor,
  type MemberRecord,
} from '../../../src/cluster/discovery/records.js';

const member: MemberRecord = {
  id: 'lb4',
  cluster: 'prod',
  host: '127.0.0.4',
  peerPort: 7000,
  adminPort: 9000,
  weight: 2,
  phase: 'joining',
  incarnation: '0123456789abcdef',
  startedAt: 1_700_000_000_000,
  version: '0.1.0',
};

test('keys under the prefix', () => {
  const k = keysFor('/tandem/prod');
  assert.equal(k.prefix, '/tandem/prod/');
  assert.equal(k.member('lb1'), '/tandem/prod/members/lb1');
  assert.equal(k.config, '/tandem/prod/config');
  assert.equal(k.status('lb1'), '/tandem/prod/status/lb1');
  assert.equal(keysFor('/t/').members, '/t/members/');
});

test('records round-trip', () => {
  assert.deepEqual(decodeMember('lb4', encodeMember(member), 'prod'), { ok: true, value: member });
  const doc = { revision: 3, services: [{ name: 'web' }], pushedAt: '2025-01-01T00:00:00.000Z', by: 'ops@host /etc/tandem.yaml' };
  assert.deepEqual(decodeConfig(encodeConfig(doc)), { ok: true, value: doc });
  const st = { node: 'lb1', applied: 3, refused: { revision: 4, problems: ['services[0].port: must be an integer from 1 to 65535'] }, at: 'now' };
  assert.deepEqual(decodeStatus('lb1', encodeStatus(st)), { ok: true, value: st });
  assert.equal((JSON.parse(encodeMember(member)) as { format: number }).format, 1, 'values carry their format');
});

test('bad values are refused with a reason, never thrown', () => {
  const bad: Array<[string, ReturnType<typeof decodeMember>]> = [
    ['not json', decodeMember('lb4', '{"id":', 'prod')],
    ['other format', decodeMember('lb4', JSON.stringify({ ...JSON.parse(encodeMember(member)), format: 2 }), 'prod')],
    ['key and id differ', decodeMember('lb5', encodeMember(member), 'prod')],
    ['other cluster', decodeMember('lb4', encodeMember(member), 'staging')],
    ['port out of range', decodeMember('lb4', encodeMember({ ...member, peerPort: 70000 }), 'prod')],
    ['unknown phase', decodeMember('lb4', JSON.stringify({ ...JSON.parse(encodeMember(member)), phase: 'dancing' }), 'prod')],
    ['bad id', decodeMember('../x', encodeMember({ ...member, id: '../x' }), 'prod')],
    ['extra field', decodeMember('lb4', JSON.stringify({ ...JSON.parse(encodeMember(member)), evil: 1 }), 'prod')],
    ['negative weight', decodeMember('lb4', encodeMember({ ...member, weight: -1 }), 'prod')],
    ['huge', decodeMember('lb4', ' '.repeat(MAX_VALUE_BYTES + 1), 'prod')],
    ['array', decodeMember('lb4', '[]', 'prod')],
  ];
  for (const [what, d] of bad) {
    assert.equal(d.ok, false, what);
    if (!d.ok) assert.ok(d.problem.length > 0, what);
  }
  const c = decodeConfig(JSON.stringify({ format: 1, revision: 0, services: [], pushedAt: '', by: '' }));
  assert.equal(c.ok, false, 'revision must be positive');
  assert.equal(decodeConfig(JSON.stringify({ format: 1, revision: 1, services: {}, pushedAt: '', by: '' })).ok, false, 'services must be a list');
  assert.equal(decodeStatus('lb2', encodeStatus({ node: 'lb1', applied: null, refused: null, at: '' })).ok, false, 'status under another node');
});
