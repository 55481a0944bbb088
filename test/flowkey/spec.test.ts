import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseFlowKeySpec,
  formatFlowKeySpec,
  flowKeysFor,
  defaultFlowKey,
  isFlowKeyAllowed,
} from '../../src/flowkey/spec.js';
import { ErrorCodes, isTandemError } from '../../src/errors.js';

function throwsFlowKey(spec: string, message?: RegExp): void {
  assert.throws(
    () => parseFlowKeySpec(spec),
    (err: unknown) => isTandemError(err, ErrorCodes.FLOW_KEY) && (message === undefined || message.test(err.message)),
    spec,
  );
}

describe('parseFlowKeySpec', () => {
  it('parses the plain kinds', () => {
    assert.deepEqual(parseFlowKeySpec('client-ip'), { kind: 'client-ip' });
    assert.deepEqual(parseFlowKeySpec('connection'), { kind: 'connection' });
    assert.deepEqual(parseFlowKeySpec('quic-cid'), { kind: 'quic-cid' });
  });

  it('lower-cases header names and keeps cookie names as written', () => {
    assert.deepEqual(parseFlowKeySpec('header:X-Session'), { kind: 'header', name: 'x-session' });
    assert.deepEqual(parseFlowKeySpec('cookie:SessionID'), { kind: 'cookie', name: 'SessionID' });
    assert.deepEqual(parseFlowKeySpec("header:a!#$%&'*+-.^_`|~9"), { kind: 'header', name: "a!#$%&'*+-.^_`|~9" });
  });

  it('rejects empty and non-token names with a clear message', () => {
    throwsFlowKey('header:', /header name is empty/);
    throwsFlowKey('cookie:', /cookie name is empty/);
    throwsFlowKey('header:x session', /RFC 9110 token/);
    throwsFlowKey('header:x:y', /RFC 9110 token/);
    throwsFlowKey('header:x\r\nInjected: 1', /RFC 9110 token/);
    throwsFlowKey('cookie:a=b', /RFC 9110 token/);
    throwsFlowKey('header:caf\u00e9', /RFC 9110 token/);
    throwsFlowKey('cookie:(x)', /RFC 9110 token/);
  });

  it('rejects unknown kinds', () => {
    throwsFlowKey('', /expected one of/);
    throwsFlowKey('Client-IP', /expected one of/);
    throwsFlowKey('source-ip', /expected one of/);
    throwsFlowKey('query:x', /unknown kind "query"/);
    throwsFlowKey(' header:x', /unknown kind/);
  });

  it('round-trips through formatFlowKeySpec', () => {
    for (const s of ['client-ip', 'connection', 'quic-cid', 'header:x-session', 'cookie:SID']) {
      assert.equal(formatFlowKeySpec(parseFlowKeySpec(s)), s);
    }
  });
});

describe('flow keys per protocol', () => {
  it('lists the allowed kinds with the default first', () => {
    assert.deepEqual([...flowKeysFor('http')], ['client-ip', 'connection', 'header:NAME', 'cookie:NAME']);
    assert.deepEqual([...flowKeysFor('tcp')], ['connection', 'client-ip', 'sni']);
    assert.deepEqual([...flowKeysFor('udp')], ['connection', 'client-ip', 'quic-cid']);
    for (const p of ['http', 'tcp', 'udp'] as const) {
      assert.equal(formatFlowKeySpec(defaultFlowKey(p)), flowKeysFor(p)[0]);
    }
  });

  it('defaults: http client-ip, tcp and udp connection', () => {
    assert.deepEqual(defaultFlowKey('http'), { kind: 'client-ip' });
    assert.deepEqual(defaultFlowKey('tcp'), { kind: 'connection' });
    assert.deepEqual(defaultFlowKey('udp'), { kind: 'connection' });
  });

  it('isFlowKeyAllowed checks both syntax and protocol, never throws', () => {
    assert.equal(isFlowKeyAllowed('http', 'header:x-session'), true);
    assert.equal(isFlowKeyAllowed('http', 'cookie:sid'), true);
    assert.equal(isFlowKeyAllowed('http', 'client-ip'), true);
    assert.equal(isFlowKeyAllowed('http', 'connection'), true);
    assert.equal(isFlowKeyAllowed('http', 'quic-cid'), false);
    assert.equal(isFlowKeyAllowed('tcp', 'sni'), true);
    assert.equal(isFlowKeyAllowed('http', 'sni'), false);
    assert.equal(isFlowKeyAllowed('udp', 'sni'), false);
    assert.equal(isFlowKeyAllowed('http', 'header:'), false);
    assert.equal(isFlowKeyAllowed('tcp', 'connection'), true);
    assert.equal(isFlowKeyAllowed('tcp', 'client-ip'), true);
    assert.equal(isFlowKeyAllowed('tcp', 'header:x'), false);
    assert.equal(isFlowKeyAllowed('tcp', 'quic-cid'), false);
    assert.equal(isFlowKeyAllowed('udp', 'quic-cid'), true);
    assert.equal(isFlowKeyAllowed('udp', 'cookie:x'), false);
    assert.equal(isFlowKeyAllowed('sctp' as 'udp', 'connection'), false);
  });
});
