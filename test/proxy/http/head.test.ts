/**
 * The pure parts of the HTTP path: head rewriting (head.ts), the peer-hop head codec
 * (peer-head.ts) and tandem's own error responses (errors.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Body,
  Framing,
  forwardedElement,
  is,
  isIdempotent,
  isTargetAllowed,
  parseClient,
  requestBody,
  responseFraming,
  scanRequest,
  scanResponse,
  viaEntry,
  writeRequestHead,
  writeResponseHead,
} from '../../../src/proxy/http/head.js';
import { decodePeerHead, encodePeerHead, encodePrefix, FLAG_CLOSE, FLAG_HTTP10 } from '../../../src/proxy/http/peer-head.js';
import { errorBytes, errorStatus, rawError } from '../../../src/proxy/http/errors.js';

/** The field lines of a head text, as [name, value] pairs (request or status line dropped). */
function fields(text: string): string[][] {
  assert.ok(text.endsWith('\r\n\r\n'), 'a head ends with a blank line');
  return text
    .slice(0, -4)
    .split('\r\n')
    .slice(1)
    .map((l) => {
      const i = l.indexOf(': ');
      return [l.slice(0, i), l.slice(i + 2)];
    });
}

const rewrite = (raw: string[], clientIp: string | null = '10.0.0.1', method = 'GET'): string => writeRequestHead(method, '/p', raw, scanRequest(raw, null, false), viaEntry('1.1', 'lb1'), clientIp, 'lb1', false);

test('case-insensitive names without lower-casing', () => {
  assert.ok(is('Content-Length', 'content-length'));
  assert.ok(is('CONTENT-LENGTH', 'content-length'));
  assert.ok(!is('Content-Lengtx', 'content-length'));
  assert.ok(!is('Content_Length', 'content-length'), "'_' is not '-'");
  assert.ok(!is('Host ', 'host'));
});

test('hop-by-hop fields and the fields Connection names are removed (RFC 9110 7.6.1)', () => {
  const raw = ['Host', 'a', 'Connection', 'X-Foo, keep-alive, close', 'X-Foo', '1', 'Keep-Alive', 't=5', 'TE', 'trailers', 'Trailer', 'X', 'Transfer-Encoding', 'chunked', 'Proxy-Connection', 'k', 'Upgrade', 'h2c', 'X-Keep', 'y'];
  const head = scanRequest(raw, null, false);
  assert.equal(head.chunked, true);
  assert.equal(head.upgrade, 'h2c');
  assert.equal(head.close, true);
  assert.equal(requestBody(head), Body.CHUNKED);
  const text = writeRequestHead('POST', '/u', raw, head, '1.1 lb1', '10.0.0.1', 'lb1', false);
  assert.match(text, /^POST \/u HTTP\/1\.1\r\n/);
  assert.deepEqual(fields(text), [
    ['Host', 'a'],
    ['X-Keep', 'y'],
    ['via', '1.1 lb1'],
    ['x-forwarded-for', '10.0.0.1'],
    ['forwarded', 'for=10.0.0.1;proto=http;by=_lb1'],
    ['transfer-encoding', 'chunked'],
  ]);
});

test('Connection cannot strip Host or Content-Length; the length passes as sent', () => {
  const raw = ['Host', 'a', 'Content-Length', '3', 'Connection', 'host, content-length'];
  const head = scanRequest(raw, null, false);
  assert.equal(head.contentLength, 3);
  assert.equal(head.hostCount, 1);
  assert.equal(requestBody(head), Body.LENGTH);
  assert.deepEqual(fields(rewrite(raw)).slice(0, 2), [['Host', 'a'], ['Content-Length', '3']]);
});

test('x-tandem-* fields from anyone are dropped: the flow travels in the peer stream, never in fields', () => {
  const raw = ['X-Tandem-Client', '6.6.6.6:1', 'x-tandem-flow-key', 'k', 'x-tandem-service', 's', 'x-tandem-other', 'z', 'Host', 'h'];
  assert.deepEqual(fields(rewrite(raw)).slice(0, 1), [['Host', 'h']]);
  assert.ok(!/x-tandem/i.test(rewrite(raw, null)));
});

test('flow-key sources: first header occurrence, all cookie fields', () => {
  const h = scanRequest(['X-Session', 'a', 'x-session', 'b', 'Cookie', 'sid=1', 'Cookie', 'x=2'], 'x-session', true);
  assert.equal(h.flowValue, 'a');
  assert.deepEqual(h.cookie, ['sid=1', 'x=2']);
});

test('Expect: 100-continue is noted and not forwarded', () => {
  const raw = ['Host', 'h', 'Expect', '100-Continue', 'Content-Length', '5'];
  assert.equal(scanRequest(raw, null, false).expectContinue, true);
  assert.ok(!/expect/i.test(rewrite(raw)));
});

test('Via, X-Forwarded-For and Forwarded are appended once, at the receiving node; an owner adds Via only', () => {
  const raw = ['Host', 'h', 'Via', '1.0 a', 'via', '1.1 b', 'X-Forwarded-For', '1.1.1.1', 'Forwarded', 'for=1.1.1.1'];
  const atIngress = writeRequestHead('GET', '/', raw, scanRequest(raw, null, false), viaEntry('1.1', 'lb1'), '2001:db8::1', 'lb1', false);
  assert.deepEqual(fields(atIngress), [
    ['Host', 'h'],
    ['via', '1.0 a, 1.1 b, 1.1 lb1'],
    ['x-forwarded-for', '1.1.1.1, 2001:db8::1'],
    ['forwarded', 'for=1.1.1.1, for="[2001:db8::1]";proto=http;by=_lb1'],
  ]);
  // The owner parses that head again (as llhttp would give it) and adds its own Via.
  const again = fields(atIngress).flat();
  const atOwner = fields(writeRequestHead('GET', '/', again, scanRequest(again, null, false), viaEntry('1.1', 'lb2'), null, 'lb2', false));
  assert.equal(atOwner.find(([k]) => k === 'via')![1], '1.0 a, 1.1 b, 1.1 lb1, 1.1 lb2');
  assert.equal(atOwner.find(([k]) => k === 'x-forwarded-for')![1], '1.1.1.1, 2001:db8::1');
  assert.equal(atOwner.filter(([k]) => k === 'forwarded').length, 1);
});

test('an upgrade keeps its Upgrade and says so in Connection', () => {
  const raw = ['Host', 'h', 'Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Key', 'x'];
  const text = writeRequestHead('GET', '/ws', raw, scanRequest(raw, null, false), '1.1 lb1', '10.0.0.1', 'lb1', true);
  assert.match(text, /\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n$/);
  assert.match(text, /\r\nSec-WebSocket-Key: x\r\n/);
});

test('RFC 7239 elements: IPv4 bare, IPv6 bracketed and quoted, obfuscated node id', () => {
  assert.equal(forwardedElement('192.0.2.1', 'lb1'), 'for=192.0.2.1;proto=http;by=_lb1');
  assert.equal(forwardedElement('::1', 'n.2'), 'for="[::1]";proto=http;by=_n.2');
});

test('response head: hop-by-hop dropped, Via appended, framing redone for the client', () => {
  const raw = ['Content-Type', 'text/plain', 'Connection', 'keep-alive, X-Hop', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked', 'X-Hop', '1', 'Via', '1.1 backend', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2'];
  const r = scanResponse(raw);
  assert.equal(r.chunked, true);
  assert.equal(responseFraming(r, false, false), Framing.CHUNKED);
  assert.equal(responseFraming(r, false, true), Framing.CLOSE, 'an HTTP/1.0 client gets the body delimited by the close');
  const text = writeResponseHead(200, 'OK', raw, r, Framing.CHUNKED, '1.1 lb2, 1.1 lb1', false, false);
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.deepEqual(fields(text), [
    ['Content-Type', 'text/plain'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2'],
    ['via', '1.1 backend, 1.1 lb2, 1.1 lb1'],
    ['transfer-encoding', 'chunked'],
  ]);
  const closing = writeResponseHead(404, '', ['Content-Length', '0'], scanResponse(['Content-Length', '0']), Framing.NONE, '1.1 lb1', true, false);
  assert.match(closing, /^HTTP\/1\.1 404 Not Found\r\n/);
  assert.deepEqual(fields(closing), [['Content-Length', '0'], ['via', '1.1 lb1'], ['connection', 'close']]);
  const keep10 = writeResponseHead(200, 'OK', ['Content-Length', '2'], scanResponse(['Content-Length', '2']), Framing.LENGTH, '1.1 lb1', false, true);
  assert.match(keep10, /\r\nconnection: keep-alive\r\n\r\n$/);
});

test('response framing: no body for HEAD/204/304 and zero lengths, lengths passed through', () => {
  const cl = scanResponse(['content-length', '10']);
  assert.equal(responseFraming(cl, true, false), Framing.NONE);
  assert.equal(responseFraming(cl, false, false), Framing.LENGTH);
  assert.equal(responseFraming(scanResponse(['content-length', '0']), false, false), Framing.NONE);
  assert.equal(responseFraming(scanResponse([]), false, false), Framing.CHUNKED, 'a body until the close becomes chunks');
  assert.equal(scanResponse(['Connection', 'Close']).close, true);
});

test('request targets a proxy passes on (RFC 9112 3.2)', () => {
  assert.ok(isTargetAllowed('GET', '/a?b'));
  assert.ok(isTargetAllowed('GET', 'http://h/a'));
  assert.ok(isTargetAllowed('GET', 'HTTPS://h/a'));
  assert.ok(isTargetAllowed('OPTIONS', '*'));
  assert.ok(!isTargetAllowed('GET', '*'));
  assert.ok(!isTargetAllowed('GET', 'a:443'));
  assert.ok(!isTargetAllowed('GET', 'ftp://h/'));
});

test('client address parsing and idempotency', () => {
  assert.deepEqual(parseClient('1.2.3.4:5'), { ip: '1.2.3.4', port: 5 });
  assert.deepEqual(parseClient('[::1]:80'), { ip: '::1', port: 80 });
  assert.equal(parseClient('nope'), undefined);
  assert.equal(parseClient('1.2.3.4:99999'), undefined);
  assert.ok(isIdempotent('GET') && isIdempotent('PUT') && isIdempotent('DELETE') && isIdempotent('HEAD'));
  assert.ok(!isIdempotent('POST') && !isIdempotent('PATCH'));
});

test('peer head: the OPEN payload round-trips, whatever printable bytes a key holds; garbage is refused', () => {
  for (const key of ['plain', 'a b;c,d=e', 'é\u00ff~%', '"quoted"', 'k'.repeat(256)]) {
    const head = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
    const b = encodePeerHead(FLAG_HTTP10 | FLAG_CLOSE, 'web', key, '[::1]:5', head);
    const d = decodePeerHead(b)!;
    assert.deepEqual({ ...d, headAt: undefined }, { flags: FLAG_HTTP10 | FLAG_CLOSE, service: 'web', key, client: '[::1]:5', headAt: undefined });
    assert.equal(b.toString('latin1', d.headAt), head);
  }
  assert.equal(decodePeerHead(Buffer.from([2, 0, 0, 0, 0, 0, 0, 0])), null, 'unknown version');
  assert.equal(decodePeerHead(Buffer.from([1, 0, 200, 1, 2, 3, 4, 5])), null, 'length past the end');
  assert.equal(decodePeerHead(Buffer.alloc(3)), null);
  const p = Buffer.alloc(4);
  encodePrefix(p, 0, 503, true);
  assert.deepEqual([...p], [1, 1, 0x01, 0xf7]);
});

test('error responses name the reason and leak nothing; keep-alive and close variants', () => {
  const text = rawError('backend-failed').toString('latin1');
  assert.match(text, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
  assert.match(text, /\r\ntandem-error: backend-failed\r\n/);
  assert.match(text, /\r\nconnection: close\r\n/);
  assert.ok(text.endsWith('\r\n\r\n502 Bad Gateway: backend failed\n'));
  const keep = errorBytes('no-backend', false).toString('latin1');
  assert.ok(!keep.includes('connection:'));
  assert.match(keep, /\r\ncontent-length: \d+\r\ntandem-error: no-backend\r\n\r\n/);
  assert.equal(errorStatus('header-too-large'), 431);
  assert.equal(errorStatus('no-backend'), 503);
});

test('over TLS the receiving node writes X-Forwarded-Proto and proto=https; a client value is dropped; an owner passes it on', () => {
  const raw = ['Host', 'a', 'X-Forwarded-Proto', 'spoofed'];
  const atIngress = writeRequestHead('GET', '/', raw, scanRequest(raw, null, false), '1.1 lb1', '10.0.0.1', 'lb1', false, 'https');
  assert.deepEqual(fields(atIngress).filter(([n]) => /proto|forwarded$/i.test(n)), [
    ['forwarded', 'for=10.0.0.1;proto=https;by=_lb1'],
    ['x-forwarded-proto', 'https'],
  ]);
  const again = fields(atIngress).flat();
  const atOwner = writeRequestHead('GET', '/', again, scanRequest(again, null, false), '1.1 lb2', null, 'lb2', false);
  assert.ok(fields(atOwner).some(([n, v]) => n === 'x-forwarded-proto' && v === 'https'));
  const plain = writeRequestHead('GET', '/', raw, scanRequest(raw, null, false), '1.1 lb1', '10.0.0.1', 'lb1', false);
  assert.ok(fields(plain).some(([n, v]) => n === 'X-Forwarded-Proto' && v === 'spoofed'), 'a cleartext listener leaves the field alone');
  assert.equal(forwardedElement('10.0.0.1', 'lb1', 'https'), 'for=10.0.0.1;proto=https;by=_lb1');
});
