import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyHeaderRules, rawHeader, redirectLocation } from '../../src/routes/header-rules.js';
import { cookieValue, limitKey, parseLimitKey } from '../../src/ratelimit/key.js';
import { redirectBytes, rateLimitedBytes } from '../../src/proxy/http/answers.js';

test('header rules: remove, then set (replaces every field of the name), then add', () => {
  const raw = ['Host', 'a', 'X-Drop', '1', 'X-Set', 'old', 'x-set', 'old2', 'X-Add', 'first'];
  const out = applyHeaderRules(raw, { set: [['x-set', 'new']], add: [['x-add', 'second']], remove: ['x-drop'] });
  assert.deepEqual(out, ['Host', 'a', 'X-Add', 'first', 'x-set', 'new', 'x-add', 'second']);
  assert.equal(rawHeader(out, 'x-set'), 'new');
  assert.equal(rawHeader(out, 'x-none'), undefined);
});

test('redirect Location fills {host} and {path}; the answer cannot be split by CR/LF', () => {
  assert.equal(redirectLocation('https://{host}{path}', 'shop.test', '/a?b=1'), 'https://shop.test/a?b=1');
  const b = redirectBytes(301, 'https://x/\r\nset-cookie: a=b', false).toString('latin1');
  assert.match(b, /^HTTP\/1\.1 301 Moved Permanently\r\nlocation: https:\/\/x\/%0D%0Aset-cookie: a=b\r\ncontent-length: 0\r\n\r\n$/);
});

test('429 carries Retry-After and tandem-error: rate-limited', () => {
  const b = rateLimitedBytes(3, true).toString('latin1');
  assert.match(b, /^HTTP\/1\.1 429 Too Many Requests\r\nretry-after: 3\r\n/);
  assert.match(b, /tandem-error: rate-limited\r\n/);
  assert.match(b, /connection: close\r\n/);
});

test('rate-limit keys: client-ip, header:NAME, cookie:NAME (absent → the empty key)', () => {
  const raw = ['X-Key', 'k1', 'Cookie', 'a=1; sid=abc ; c=3'];
  assert.equal(limitKey(parseLimitKey('client-ip'), '10.0.0.1', raw), '10.0.0.1');
  assert.equal(limitKey(parseLimitKey('header:X-Key'), '10.0.0.1', raw), 'k1');
  assert.equal(limitKey(parseLimitKey('cookie:sid'), '10.0.0.1', raw), 'abc');
  assert.equal(limitKey(parseLimitKey('header:x-other'), '10.0.0.1', raw), '');
  assert.equal(cookieValue(raw, 'zz'), undefined);
});
