/** The HTTP/2 ↔ engine head conversions (src/proxy/http/h2-head.ts), RFC 9113 section 8. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { firstValues, h2RequestHead, h2ResponseHeaders } from '../../../src/proxy/http/h2-head.js';

test('a request head: request line from pseudo-headers, Host from :authority, cookies joined, order kept', () => {
  const h = h2RequestHead([':method', 'POST', ':scheme', 'https', ':authority', 'a.test:8443', ':path', '/x?y=1', 'cookie', 'a=1', 'x-session', 's1', 'cookie', 'b=2', 'accept', '*/*']);
  assert.equal(h.problem, null);
  assert.equal(h.method, 'POST');
  assert.equal(h.path, '/x?y=1');
  assert.deepEqual(h.fields, ['host', 'a.test:8443', 'x-session', 's1', 'accept', '*/*', 'cookie', 'a=1; b=2']);
});

test('Host: :authority wins, a Host field is the fallback, a different one is malformed (RFC 9113 8.3.1)', () => {
  assert.deepEqual(h2RequestHead([':method', 'GET', ':path', '/', 'host', 'b.test']).fields, ['host', 'b.test']);
  assert.equal(h2RequestHead([':method', 'GET', ':path', '/', ':authority', 'A.test', 'host', 'a.TEST']).problem, null);
  assert.match(h2RequestHead([':method', 'GET', ':path', '/', ':authority', 'a.test', 'host', 'evil.test']).problem ?? '', /host differs/);
  assert.deepEqual(h2RequestHead([':method', 'GET', ':path', '/']).fields, ['host', '']);
});

test('connection-specific fields and unknown pseudo-headers make a request malformed (RFC 9113 8.2.2)', () => {
  for (const [n, v] of [['connection', 'close'], ['transfer-encoding', 'chunked'], ['upgrade', 'websocket'], ['keep-alive', '5'], ['proxy-connection', 'x'], ['te', 'gzip'], [':protocol', 'websocket']]) {
    assert.notEqual(h2RequestHead([':method', 'GET', ':path', '/', n, v]).problem, null, n);
  }
  assert.equal(h2RequestHead([':method', 'GET', ':path', '/', 'te', 'trailers']).problem, null);
  assert.deepEqual(h2RequestHead([':method', 'GET', ':path', '/', 'te', 'trailers']).fields, ['host', '']);
  assert.notEqual(h2RequestHead([':method', 'GET']).problem, null);
  assert.equal(h2RequestHead([':method', 'CONNECT', ':authority', 'a:443']).problem, null);
});

test('a response head: :status, names lower case, hop-by-hop fields out, repeated fields as arrays', () => {
  const h = h2ResponseHeaders(200, ['Content-Type', 'text/plain', 'Transfer-Encoding', 'chunked', 'Connection', 'close', 'Set-Cookie', 'a=1', 'set-cookie', 'b=2', 'Via', '1.1 lb1', 'Keep-Alive', 'x']);
  assert.deepEqual({ ...h }, { ':status': '200', 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'], via: '1.1 lb1' });
  assert.deepEqual({ ...firstValues(h2ResponseHeaders(200, ['Content-Type', 'a', 'Content-Type', 'b', 'Set-Cookie', 'x', 'Set-Cookie', 'y'])) }, { ':status': '200', 'content-type': 'a', 'set-cookie': ['x', 'y'] });
});
