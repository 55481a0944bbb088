import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NameIndex, certificateNames, normalizeName, normalizePattern, parseSubjectAltName } from '../../src/tls/names.js';

test('normalizeName: lower-case, no trailing dot, DNS syntax only', () => {
  const golden: Array<[string, string | null]> = [
    ['a.test', 'a.test'],
    ['A.TeSt', 'a.test'],
    ['a.test.', 'a.test'],
    ['a.test..', null],
    ['', null],
    ['.', null],
    ['.a.test', null],
    ['a..test', null],
    ['-a.test', null],
    ['a-.test', null],
    ['_srv.a.test', '_srv.a.test'],
    ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
    ['bücher.example', null],
    ['a test', null],
    ['127.0.0.1', null],
    ['[::1]', null],
    ['localhost', 'localhost'],
    ['*.a.test', null],
    [`${'a'.repeat(63)}.test`, `${'a'.repeat(63)}.test`],
    [`${'a'.repeat(64)}.test`, null],
    [`${'a.'.repeat(125)}abc`, `${'a.'.repeat(125)}abc`],
    [`${'a.'.repeat(125)}abcd`, null],
  ];
  for (const [input, want] of golden) assert.equal(normalizeName(input), want, JSON.stringify(input));
});

test('normalizePattern: whole left-most wildcard label, two labels after it', () => {
  const golden: Array<[string, string | null]> = [
    ['*.A.test', '*.a.test'],
    ['*.a.test.', '*.a.test'],
    ['*.test', null],
    ['*', null],
    ['a.*.test', null],
    ['w*.a.test', null],
    ['**.a.test', null],
    ['plain.test', 'plain.test'],
  ];
  for (const [input, want] of golden) assert.equal(normalizePattern(input), want, JSON.stringify(input));
});

test('parseSubjectAltName reads node:crypto subjectAltName strings, quoted values included', () => {
  assert.deepEqual(parseSubjectAltName('DNS:a.test, DNS:*.a.test, IP Address:127.0.0.1, DNS:b.test'), ['a.test', '*.a.test', 'b.test']);
  assert.deepEqual(parseSubjectAltName(undefined), []);
  assert.deepEqual(parseSubjectAltName(''), []);
  assert.deepEqual(parseSubjectAltName('DNS:"evil.test, DNS:good.test", DNS:x.test'), ['evil.test, DNS:good.test', 'x.test']);
  assert.deepEqual(parseSubjectAltName('email:a@b.test, URI:https://x.test/, DNS:c.test'), ['c.test']);
});

test('certificateNames: SAN DNS names, the CN only without them, invalid ones dropped', () => {
  assert.deepEqual(certificateNames('DNS:A.test, DNS:*.a.test, DNS:a.test, DNS:"x,y.test"', 'CN=ignored.test'), ['a.test', '*.a.test']);
  assert.deepEqual(certificateNames(undefined, 'O=Org\nCN=legacy.test'), ['legacy.test']);
  assert.deepEqual(certificateNames('IP Address:10.0.0.1', 'CN=Some CA'), []);
});

test('NameIndex: exact beats wildcard, first listed wins, unknown and absent names get the default', () => {
  const index = new NameIndex([
    ['a.test', '*.a.test'], // 0: the default
    ['b.test', '*.shared.test'], // 1
    ['x.a.test'], // 2: an exact name under 0's wildcard
    ['*.shared.test', 'b.test', 'c.test'], // 3: later duplicates lose
    ['*.w.test'], // 4
  ]);
  const golden: Array<[string | null, number, string]> = [
    ['a.test', 0, 'exact'],
    ['A.TEST.', 0, 'exact'],
    ['y.a.test', 0, 'wildcard'],
    ['x.a.test', 2, 'exact'],
    ['X.A.Test.', 2, 'exact'],
    ['z.x.a.test', 0, 'default'], // a wildcard covers one label only
    ['b.test', 1, 'exact'],
    ['c.test', 3, 'exact'],
    ['q.shared.test', 1, 'wildcard'],
    ['shared.test', 0, 'default'],
    ['w.test', 0, 'default'],
    ['v.w.test', 4, 'wildcard'],
    ['unknown.test', 0, 'default'],
    ['127.0.0.1', 0, 'default'],
    ['bad name', 0, 'default'],
    [null, 0, 'none'],
    ['', 0, 'none'],
  ];
  for (const [name, index_, how] of golden) assert.deepEqual(index.lookup(name), { index: index_, how }, String(name));
});

test('NameIndex with one certificate that has no names: everything gets it', () => {
  const index = new NameIndex([[]]);
  assert.deepEqual(index.lookup('a.test'), { index: 0, how: 'default' });
  assert.deepEqual(index.lookup(null), { index: 0, how: 'none' });
});
