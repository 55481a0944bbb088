import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  scanRequestHead,
  addProxyHeaders,
  responseHeaders,
  forwardedElement,
  encodeFlowKey,
  decodeFlowKey,
  parseClient,
  requestHeadText,
  isIdempotent,
  viaEntry,
} from '../../../src/proxy/http/headers.js';
import { rawError, upstreamErrorKind, errorStatus } from '../../../src/proxy/http/errors.js';

const pairs = (h: readonly string[]): string[][] => {
  const out: string[][] = [];
  for (let i = 0; i < h.length; i += 2) out.push([h[i], h[i + 1]]);
  return out;
};

test('hop-by-hop fields and the fields Connection names are removed (RFC 9110 7.6.1)', () => {
  const head = scanRequestHead(
    ['Host', 'a', 'Connection', 'X-Foo, keep-alive, close', 'X-Foo', '1', 'Keep-Alive', 't=5', 'TE', 'trailers', 'Trailer', 'X', 'Transfer-Encoding', 'chunked', 'Proxy-Connection', 'k', 'Upgrade', 'h2c', 'X-Keep', 'y'],
    null,
    false,
    false,
  );
  assert.deepEqual(pairs(head.headers), [['Host', 'a'], ['X-Keep', 'y']]);
  assert.equal(head.chunked, true);
  assert.equal(head.upgrade, 'h2c');
});

test('Connection cannot strip Host or Content-Length', () => {
  const head = scanRequestHead(['Host', 'a', 'Content-Length', '3', 'Connection', 'host, content-length'], null, false, false);
  assert.deepEqual(pairs(head.headers), [['Host', 'a'], ['Content-Length', '3']]);
  assert.equal(head.contentLength, 3);
  assert.equal(head.hostCount, 1);
});

test('x-tandem-* from a client are dropped unread; from a peer they are read and dropped', () => {
  const raw = ['X-Tandem-Client', '6.6.6.6:1', 'x-tandem-flow-key', 'k', 'x-tandem-service', 's', 'x-tandem-other', 'z', 'Host', 'h'];
  const client = scanRequestHead(raw, null, false, false);
  assert.deepEqual(pairs(client.headers), [['Host', 'h']]);
  assert.equal(client.client, undefined);
  assert.equal(client.flowKey, undefined);
  const peer = scanRequestHead(raw, null, false, true);
  assert.deepEqual(pairs(peer.headers), [['Host', 'h']]);
  assert.equal(peer.client, '6.6.6.6:1');
  assert.equal(peer.flowKey, 'k');
  assert.equal(peer.service, 's');
});

test('flow-key sources: first header occurrence, all cookie fields', () => {
  const h = scanRequestHead(['X-Session', 'a', 'x-session', 'b', 'Cookie', 'sid=1', 'Cookie', 'x=2'], 'x-session', true, false);
  assert.equal(h.flowValue, 'a');
  assert.deepEqual(h.cookie, ['sid=1', 'x=2']);
});

test('Expect: 100-continue is noted and not forwarded', () => {
  const h = scanRequestHead(['Host', 'h', 'Expect', '100-Continue'], null, false, false);
  assert.equal(h.expectContinue, true);
  assert.deepEqual(pairs(h.headers), [['Host', 'h']]);
});

test('Via, X-Forwarded-For and Forwarded are appended once at the receiving node', () => {
  const h = scanRequestHead(['Host', 'h', 'Via', '1.0 a', 'via', '1.1 b', 'X-Forwarded-For', '1.1.1.1', 'Forwarded', 'for=1.1.1.1'], null, false, false);
  addProxyHeaders(h, viaEntry('1.1', 'lb1'), '2001:db8::1', 'lb1');
  assert.deepEqual(pairs(h.headers), [
    ['Host', 'h'],
    ['via', '1.0 a, 1.1 b, 1.1 lb1'],
    ['x-forwarded-for', '1.1.1.1, 2001:db8::1'],
    ['forwarded', 'for=1.1.1.1, for="[2001:db8::1]";proto=http;by=_lb1'],
  ]);
  // At the primary: Via only; the client fields pass unchanged.
  const p = scanRequestHead(h.headers, null, false, true);
  addProxyHeaders(p, viaEntry('1.1', 'lb2'), null, 'lb2');
  assert.equal(pairs(p.headers).find(([k]) => k === 'via')![1], '1.0 a, 1.1 b, 1.1 lb1, 1.1 lb2');
  assert.equal(pairs(p.headers).find(([k]) => k === 'x-forwarded-for')![1], '1.1.1.1, 2001:db8::1');
});

test('RFC 7239 elements: IPv4 bare, IPv6 bracketed and quoted, obfuscated node id', () => {
  assert.equal(forwardedElement('192.0.2.1', 'lb1'), 'for=192.0.2.1;proto=http;by=_lb1');
  assert.equal(forwardedElement('::1', 'n.2'), 'for="[::1]";proto=http;by=_n.2');
});

test('response fields: hop-by-hop dropped, Via appended', () => {
  const raw = ['Content-Type', 'text/plain', 'Connection', 'keep-alive, X-Hop', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked', 'X-Hop', '1', 'Via', '1.1 backend', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2'].map((s) => Buffer.from(s, 'latin1'));
  assert.deepEqual(pairs(responseHeaders(raw, '1.1 lb1')), [
    ['Content-Type', 'text/plain'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2'],
    ['via', '1.1 backend, 1.1 lb1'],
  ]);
});

test('flow keys survive the x-tandem-flow-key round trip, whatever printable bytes they hold', () => {
  for (const k of ['plain', 'a b;c,d=e', 'é\u00ff~%', '"quoted"', '%zz']) assert.equal(decodeFlowKey(encodeFlowKey(k)), k);
  assert.equal(decodeFlowKey('%E0%A4%A'), undefined);
});

test('x-tandem-client parsing', () => {
  assert.deepEqual(parseClient('1.2.3.4:5'), { ip: '1.2.3.4', port: 5 });
  assert.deepEqual(parseClient('[::1]:80'), { ip: '::1', port: 80 });
  assert.equal(parseClient('nope'), undefined);
  assert.equal(parseClient('1.2.3.4:99999'), undefined);
});

test('hand-written request heads and idempotency', () => {
  assert.equal(requestHeadText('GET', '/ws', ['Host', 'h', 'Upgrade', 'websocket']), 'GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n');
  assert.ok(isIdempotent('GET') && isIdempotent('PUT') && isIdempotent('DELETE') && isIdempotent('HEAD'));
  assert.ok(!isIdempotent('POST') && !isIdempotent('PATCH'));
});

test('error responses name the reason and leak nothing', () => {
  const text = rawError('backend-failed').toString('latin1');
  assert.match(text, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
  assert.match(text, /\r\ntandem-error: backend-failed\r\n/);
  assert.match(text, /\r\nconnection: close\r\n/);
  assert.ok(text.endsWith('\r\n\r\n502 Bad Gateway: backend failed\n'));
  assert.equal(upstreamErrorKind({ code: 'UND_ERR_HEADERS_TIMEOUT' }), 'backend-timeout');
  assert.equal(upstreamErrorKind({ code: 'ECONNREFUSED' }), 'backend-failed');
  assert.equal(upstreamErrorKind(new Error('x')), 'backend-failed');
  assert.equal(errorStatus('header-too-large'), 431);
  assert.equal(errorStatus('no-backend'), 503);
});
