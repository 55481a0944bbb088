import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalEpochSecrets, ServiceTicketKeys, deriveTicketKeys } from '../../src/tls/ticket-keys.js';
import { sessionIdContext } from '../../src/tls/options.js';

const secret = (b: number) => Buffer.alloc(32, b);

test('per-service ticket keys: golden derivation, 48 bytes, different per service and per epoch secret', () => {
  const sid = sessionIdContext('prod', 'web');
  assert.equal(sid, sessionIdContext('prod', 'web'));
  assert.equal(sid.length, 32);
  assert.notEqual(sid, sessionIdContext('prod', 'api'));
  assert.notEqual(sid, sessionIdContext('staging', 'web'));
  const k = deriveTicketKeys(secret(1), sid);
  assert.equal(k.length, 48);
  // Golden (checked against a plain HKDF call): a change of salt, info or layout must show here,
  // since nodes of two versions would then stop resuming each other's tickets.
  assert.equal(sid, '505b9861fe98c8fb708eb4be9d05a1e0');
  assert.equal(
    deriveTicketKeys(secret(1), 'fixed-context').toString('hex'),
    'd8a5c25c65106f1d375449d408096ff7690a6b3f96ce149cf7a49bbdb9cce200ddd378967b393f1991a15054f4e8f6ff',
  );
  assert.notDeepEqual(deriveTicketKeys(secret(1), sessionIdContext('prod', 'api')), k);
  assert.notDeepEqual(deriveTicketKeys(secret(2), sid), k);
});

test('ServiceTicketKeys: lookup by the key name a ticket starts with; which epoch encrypts', () => {
  const keys = new ServiceTicketKeys('ctx');
  assert.equal(keys.forEncryption(10), undefined);
  assert.equal(keys.update([{ epoch: 9, secret: secret(9), writer: 'lb1' }, { epoch: 10, secret: secret(10), writer: 'lb1' }, { epoch: 11, secret: secret(11), writer: 'lb1' }]), true);
  assert.equal(keys.update([{ epoch: 9, secret: secret(9), writer: 'lb1' }, { epoch: 10, secret: secret(10), writer: 'lb1' }, { epoch: 11, secret: secret(11), writer: 'lb1' }]), false);
  const all = keys.all();
  assert.deepEqual(all.map((k) => k.epoch), [9, 10, 11]);
  for (const k of all) {
    assert.equal(keys.byName(k.keys.subarray(0, 16))?.epoch, k.epoch);
    assert.equal(k.name, k.keys.subarray(0, 16).toString('hex'));
  }
  assert.equal(keys.byName(Buffer.alloc(16)), undefined);
  assert.equal(keys.forEncryption(10)?.epoch, 10);
  assert.equal(keys.forEncryption(12)?.epoch, 11, 'newest older one');
  assert.equal(keys.forEncryption(8)?.epoch, 9, 'oldest newer one');
  // A secret replaced for an epoch (a conflict settled) changes its keys.
  assert.equal(keys.update([{ epoch: 10, secret: secret(99), writer: 'lb2' }]), true);
  assert.deepEqual(keys.all().map((k) => k.epoch), [10]);
  assert.equal(keys.byName(all[1].keys.subarray(0, 16)), undefined);
});

test('LocalEpochSecrets (sessionTickets: node) keeps the current and next epoch and the previous one', () => {
  const now = { t: 50 * 1000 };
  const local = new LocalEpochSecrets({ rotationMs: 1000, now: () => now.t });
  let changes = 0;
  local.on('change', () => changes++);
  assert.deepEqual(local.window().map((x) => x.epoch), [50, 51]);
  assert.ok(local.window().every((x) => x.writer === '' && x.secret.length === 32));
  const s51 = local.window()[1].secret;
  now.t = 51 * 1000 + 1;
  local.tick();
  assert.deepEqual(local.window().map((x) => x.epoch), [50, 51, 52]);
  assert.ok(local.window()[1].secret.equals(s51));
  now.t = 52 * 1000 + 1;
  local.tick();
  assert.deepEqual(local.window().map((x) => x.epoch), [51, 52, 53]);
  local.tick();
  assert.equal(changes, 2);
});
