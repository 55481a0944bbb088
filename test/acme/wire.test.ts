/** ACME_STATE messages: round trip, sealing bound to cluster and sender, malformed input refused. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AcmeSealer, decodeMessage, encodeMessage, type AcmeMessage } from '../../src/acme/wire.js';
import { ChallengeTable } from '../../src/acme/challenges.js';
import { FrameDecoder, CONTROL_FRAME_TYPES, FrameType } from '../../src/cluster/frame.js';
import { ErrorCodes } from '../../src/errors.js';

const messages: AcmeMessage[] = [
  { kind: 'challenge', token: 'tok_-123', keyAuthorization: 'tok_-123.thumb', expiresAt: 1_700_000_000_000 },
  { kind: 'challenge-done', token: 'tok_-123' },
  { kind: 'certificate', id: 'a.test-0123456789', cert: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', key: 'k' },
  { kind: 'renew', id: 'a.test-0123456789' },
];

test('every message kind round-trips', () => {
  for (const m of messages) assert.deepEqual(decodeMessage(encodeMessage(m)), m);
});

test('sealed frames open only for the same secret, cluster and sender', () => {
  const s = new AcmeSealer('secret-0123456789abcdef', 'prod');
  for (const m of messages) {
    const frame = s.frame(m, 'lb1');
    const dec = new FrameDecoder({ types: CONTROL_FRAME_TYPES });
    dec.push(frame);
    const f = dec.next()!;
    assert.equal(f.type, FrameType.ACME_STATE);
    const payload = Buffer.from(f.payload);
    assert.deepEqual(s.open(payload, 'lb1'), m);
    assert.ok(!payload.includes(Buffer.from('tok_-123.thumb')), 'no key authorization in clear');
    assert.throws(() => s.open(payload, 'lb2'), { code: ErrorCodes.FRAME_MALFORMED });
    assert.throws(() => new AcmeSealer('secret-0123456789abcdef', 'other').open(payload, 'lb1'), { code: ErrorCodes.FRAME_MALFORMED });
    assert.throws(() => new AcmeSealer('another-secret-0123456789', 'prod').open(payload, 'lb1'), { code: ErrorCodes.FRAME_MALFORMED });
  }
});

test('malformed plaintexts are refused with FRAME_MALFORMED', () => {
  const good = encodeMessage(messages[0]);
  for (const bad of [Buffer.alloc(0), Buffer.from([9]), good.subarray(0, good.length - 1), Buffer.concat([good, Buffer.from([0])]),
    encodeMessage({ kind: 'challenge-done', token: '../etc' })]) {
    assert.throws(() => decodeMessage(bad), { code: ErrorCodes.FRAME_MALFORMED });
  }
});

test('challenge table answers known, unexpired tokens only', () => {
  let now = 1000;
  const t = new ChallengeTable(() => now);
  t.put('abc', 'abc.xyz', 2000);
  assert.equal(t.response('/.well-known/acme-challenge/abc'), 'abc.xyz');
  assert.equal(t.response('/.well-known/acme-challenge/abc?x=1'), 'abc.xyz');
  assert.equal(t.response('/.well-known/acme-challenge/abd'), null);
  assert.equal(t.response('/.well-known/acme-challenge/a/b'), null);
  assert.equal(t.response('/other/abc'), null);
  now = 2000;
  assert.equal(t.response('/.well-known/acme-challenge/abc'), null);
  t.expire();
  assert.equal(t.size, 0);
});
