import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { httpFlowKey, type HttpFlowSource } from '../../src/flowkey/http.js';
import { parseFlowKeySpec } from '../../src/flowkey/spec.js';
import { cookieValue } from '../../src/flowkey/cookie.js';
import { flowKeyProblem, MAX_FLOW_KEY_BYTES } from '../../src/flowkey/validate.js';
import { ErrorCodes, isTandemError } from '../../src/errors.js';

function req(headers: HttpFlowSource['headers'], remoteAddress = '::ffff:192.0.2.7', remotePort = 40000): HttpFlowSource {
  return { remoteAddress, remotePort, headers };
}
const key = (spec: string, r: HttpFlowSource): string => httpFlowKey(parseFlowKeySpec(spec), r);
const isBadRequest = (err: unknown): boolean => isTandemError(err, ErrorCodes.BAD_REQUEST);

describe('httpFlowKey', () => {
  it('client-ip and connection come from the socket', () => {
    assert.equal(key('client-ip', req({})), '192.0.2.7');
    assert.equal(key('connection', req({})), '192.0.2.7:40000');
    assert.equal(key('connection', req({}, '2001:db8::5', 1234)), '[2001:db8::5]:1234');
  });

  it('header: the value as-is, the first when repeated', () => {
    assert.equal(key('header:X-Session', req({ 'x-session': 'alice' })), 'alice');
    assert.equal(key('header:x-session', req({ 'x-session': ['alice', 'bob'] })), 'alice');
    assert.equal(key('header:x-session', req({ 'x-session': 'Alice Smith/42' })), 'Alice Smith/42');
  });

  it('header: missing or empty falls back to the client ip', () => {
    assert.equal(key('header:x-session', req({})), '192.0.2.7');
    assert.equal(key('header:x-session', req({ 'x-session': '' })), '192.0.2.7');
    assert.equal(key('header:x-session', req({ 'x-session': [] })), '192.0.2.7');
  });

  it('cookie: parsed from all Cookie headers, first match wins, quotes removed', () => {
    assert.equal(key('cookie:sid', req({ cookie: 'a=1; sid=abc; b=2' })), 'abc');
    assert.equal(key('cookie:sid', req({ cookie: 'sid=first; sid=second' })), 'first');
    assert.equal(key('cookie:sid', req({ cookie: ['a=1', 'sid="quoted"'] })), 'quoted');
    assert.equal(key('cookie:sid', req({ cookie: 'xsid=no;sid=yes' })), 'yes');
    assert.equal(key('cookie:sid', req({ cookie: '  sid = spaced ; z=1' })), 'spaced');
    assert.equal(key('cookie:sid', req({ cookie: 'sid=a=b' })), 'a=b');
  });

  it('cookie: names are case-sensitive; missing or empty falls back to the client ip', () => {
    assert.equal(key('cookie:sid', req({ cookie: 'SID=upper' })), '192.0.2.7');
    assert.equal(key('cookie:sid', req({ cookie: 'sid=' })), '192.0.2.7');
    assert.equal(key('cookie:sid', req({ cookie: 'sid=""' })), '192.0.2.7');
    assert.equal(key('cookie:sid', req({ cookie: 'other=1' })), '192.0.2.7');
    assert.equal(key('cookie:sid', req({})), '192.0.2.7');
    assert.equal(key('cookie:sid', req({ cookie: 'garbage; ;=;sid' })), '192.0.2.7');
  });

  it('rejects control characters with BAD_REQUEST (header injection via the key)', () => {
    for (const bad of ['a\r\nX-Evil: 1', 'a\nb', 'nul\u0000', 'del\u007f', 'tab\there', 'esc\u001b[31m', 'c1\u009b']) {
      assert.throws(() => key('header:x-session', req({ 'x-session': bad })), isBadRequest, JSON.stringify(bad));
    }
    assert.throws(() => key('cookie:sid', req({ cookie: 'sid=a\u0000b' })), isBadRequest);
  });

  it('rejects keys longer than 256 bytes, counting UTF-8 bytes', () => {
    assert.equal(key('header:x-session', req({ 'x-session': 'k'.repeat(MAX_FLOW_KEY_BYTES) })).length, 256);
    assert.throws(() => key('header:x-session', req({ 'x-session': 'k'.repeat(257) })), isBadRequest);
    assert.throws(() => key('cookie:sid', req({ cookie: `sid=${'k'.repeat(300)}` })), isBadRequest);
    // 129 two-byte characters: 129 UTF-16 units but 258 UTF-8 bytes.
    assert.ok(flowKeyProblem('\u00e9'.repeat(128)) === null);
    assert.match(flowKeyProblem('\u00e9'.repeat(129)) ?? '', /longer than 256 bytes/);
  });

  it('does not apply transport-only kinds', () => {
    assert.throws(() => key('quic-cid', req({})), (e: unknown) => isTandemError(e, ErrorCodes.FLOW_KEY));
  });
});

describe('cookieValue', () => {
  it('handles absent headers and arrays', () => {
    assert.equal(cookieValue(undefined, 'a'), undefined);
    assert.equal(cookieValue([], 'a'), undefined);
    assert.equal(cookieValue(['x=1', 'a=2; a=3'], 'a'), '2');
    assert.equal(cookieValue('a="', 'a'), '"');
  });
});
