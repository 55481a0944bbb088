import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CertificateError, CertificateStore, formatStoreProblem } from '../../src/tls/store.js';
import { isTandemError, ErrorCodes } from '../../src/errors.js';

const FIX = fileURLToPath(new URL('./fixtures/', import.meta.url));
const f = (name: string) => join(FIX, name);

test('loads pairs, picks by name, the first is the default, one context per certificate', () => {
  const store = new CertificateStore([
    { cert: f('a.crt'), key: f('a.key') },
    { cert: f('b.crt'), key: f('b.key') },
    { cert: f('chain.crt'), key: f('leaf.key') },
  ]);
  assert.deepEqual(store.certificates.map((c) => c.info.names), [['a.test', '*.a.test'], ['b.test'], ['chain.test']]);
  assert.deepEqual(store.certificates.map((c) => c.info.keyType), ['ec', 'rsa', 'ec']);
  assert.equal(store.default.index, 0);
  assert.equal(store.select('b.test').certificate.index, 1);
  assert.equal(store.select('q.a.test').how, 'wildcard');
  assert.equal(store.select('chain.test').certificate.index, 2);
  assert.deepEqual([store.select('nope.test').certificate.index, store.select('nope.test').how], [0, 'default']);
  assert.equal(store.select(null).how, 'none');
  // The same context object every time: built once.
  assert.equal(store.select('b.test').certificate.context, store.select('b.test').certificate.context);
});

test('a bad pair refuses the whole store with every problem', () => {
  assert.throws(
    () =>
      new CertificateStore([
        { cert: f('a.crt'), key: f('b.key') },
        { cert: f('expired.crt'), key: f('expired.key') },
        { cert: f('missing.crt'), key: f('a.key') },
      ]),
    (err: unknown) => {
      assert.ok(err instanceof CertificateError && isTandemError(err, ErrorCodes.TLS_CERTIFICATE));
      assert.deepEqual(err.problems.map(formatStoreProblem), [
        `certificates[0].key: does not match the certificate (${f('b.key')})`,
        `certificates[1].cert: expired on 2000-12-31T00:00:00Z (${f('expired.crt')})`,
        `certificates[2].cert: file not found (${f('missing.crt')})`,
      ]);
      return true;
    },
  );
  assert.throws(() => new CertificateStore([]), (e: unknown) => isTandemError(e, ErrorCodes.TLS_CERTIFICATE));
});

test('reload swaps whole (unchanged pairs keep their context) or refuses whole', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-store-'));
  for (const n of ['a.crt', 'a.key', 'b.crt', 'b.key']) copyFileSync(f(n), join(dir, n));
  const pairs = [
    { cert: join(dir, 'a.crt'), key: join(dir, 'a.key') },
    { cert: join(dir, 'b.crt'), key: join(dir, 'b.key') },
  ];
  const store = new CertificateStore(pairs);
  let changes = 0;
  store.on('change', () => changes++);
  const [a, b] = store.certificates;
  assert.deepEqual(store.reload(), { ok: true, changed: false });
  assert.equal(store.certificates[0], a);
  copyFileSync(f('a2.crt'), join(dir, 'a.crt'));
  copyFileSync(f('a2.key'), join(dir, 'a.key'));
  assert.deepEqual(store.reload(), { ok: true, changed: true });
  assert.notEqual(store.certificates[0], a);
  assert.notEqual(store.certificates[0].info.fingerprint256, a.info.fingerprint256);
  assert.equal(store.certificates[1], b, 'b untouched: same context');
  assert.equal(changes, 1);
  // Unreadable: refused whole, nothing changes.
  rmSync(join(dir, 'b.key'));
  const r = store.reload();
  assert.equal(r.ok, false);
  assert.ok(!r.ok && r.problems[0].message === 'file not found');
  assert.equal(store.certificates[1], b);
  // A new list: order and size may change.
  assert.deepEqual(store.reload([{ cert: f('b.crt'), key: f('b.key') }]), { ok: true, changed: true });
  assert.deepEqual(store.certificates.map((c) => c.info.names), [['b.test']]);
  assert.equal(store.select('a.test').how, 'default');
  assert.equal(changes, 2);
});

test('a certificate that expired since it was loaded is refused at the next reload', () => {
  const now = { t: Date.parse('2050-01-01T00:00:00Z') };
  const store = new CertificateStore([{ cert: f('a.crt'), key: f('a.key') }], { now: () => now.t });
  now.t = store.default.info.notAfter + 1;
  const r = store.reload();
  assert.ok(!r.ok && /^expired on /.test(r.problems[0].message));
});
