import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseConfigText, ConfigError, formatIssue } from '../../src/config/load.js';

const FIX = fileURLToPath(new URL('../tls/fixtures/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tandem-config-tls-'));
for (const f of ['a.crt', 'a.key', 'b.crt', 'b.key', 'expired.crt', 'expired.key', 'future.crt', 'future.key', 'weak.crt', 'weak.key', 'encrypted.key', 'chain.crt', 'leaf.key', 'chain-reversed.crt', 'ca.crt']) {
  copyFileSync(join(FIX, f), join(dir, f));
}
writeFileSync(join(dir, 'junk.crt'), 'hello\n');
writeFileSync(join(dir, 'bad-block.crt'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');

const head = `
cluster:
  name: demo
  secret: "0123456789abcdef-secret"
  nodes: [{ id: lb1, host: 127.0.0.1 }]
services:
`;

function config(services: string): string {
  return head + services;
}

function problems(yaml: string): string[] {
  try {
    parseConfigText(yaml, 'test.yaml', dir);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.issues.map(formatIssue);
  }
  return [];
}

const web = (tls: string, extra = '') => `
  - name: web
    protocol: http
    port: 8443
    backends: [{ address: 127.0.0.1:9001 }]${extra}
    tls:
${tls}`;

test('tls on an http service: paths resolved, defaults alpn [h2, http/1.1] and sessionTickets cluster', () => {
  const c = parseConfigText(
    config(web(`      certificates:
        - { cert: a.crt, key: a.key }
        - { cert: b.crt, key: b.key }
        - { cert: chain.crt, key: leaf.key }`)),
    'test.yaml',
    dir,
  );
  const tls = c.services[0].tls;
  assert.ok(tls);
  assert.deepEqual(tls.certificates, [
    { cert: join(dir, 'a.crt'), key: join(dir, 'a.key') },
    { cert: join(dir, 'b.crt'), key: join(dir, 'b.key') },
    { cert: join(dir, 'chain.crt'), key: join(dir, 'leaf.key') },
  ]);
  assert.deepEqual(tls.alpn, ['h2', 'http/1.1']);
  assert.equal(tls.sessionTickets, 'cluster');
  assert.equal(tls.acme, null);
  assert.ok(Object.isFrozen(tls.certificates[0]));
  // No tls key: cleartext.
  const plain = parseConfigText(config(`
  - name: web
    protocol: http
    port: 8080
    backends: [{ address: 127.0.0.1:9001 }]`), 'test.yaml', dir);
  assert.equal(plain.services[0].tls, null);
});

test('alpn, sessionTickets and acme are checked', () => {
  const c = parseConfigText(
    config(web(`      alpn: [http/1.1]
      sessionTickets: node
      acme:
        directory: https://acme.test/dir
        email: ops@example.com
        domains: [shop.example.com]
        caFile: ca.crt`)),
    'test.yaml',
    dir,
  );
  assert.deepEqual(c.services[0].tls?.alpn, ['http/1.1']);
  assert.equal(c.services[0].tls?.sessionTickets, 'node');
  assert.deepEqual(c.services[0].tls?.certificates, []);
  assert.deepEqual(c.services[0].tls?.acme, { directory: 'https://acme.test/dir', email: 'ops@example.com', domains: ['shop.example.com'], caFile: join(dir, 'ca.crt'), challengePort: 80 });

  assert.deepEqual(
    problems(
      config(web(`      certificates: [{ cert: a.crt, key: a.key }]
      alpn: [h3, http/1.1, http/1.1]
      sessionTickets: shared
      ocsp: true
      acme:
        directory: http://acme.test/dir
        email: nobody
        domains: ["*.shop.example.com", "not a name", 7]
        caFile: missing-ca.pem`)),
    ).sort(),
    [
      'services[0].tls.acme.caFile: file not found: missing-ca.pem',
      'services[0].tls.acme.directory: must be an https:// URL (RFC 8555 section 6.1)',
      'services[0].tls.acme.domains[0]: wildcard names need the DNS-01 challenge; tandem answers HTTP-01 only',
      'services[0].tls.acme.domains[1]: "not a name" is not a DNS name',
      'services[0].tls.acme.domains[2]: must be a string',
      'services[0].tls.acme.email: must be an e-mail address',
      'services[0].tls.alpn[0]: must be h2 or http/1.1',
      'services[0].tls.ocsp: unknown key',
      'services[0].tls.sessionTickets: must be one of cluster, node, off',
    ],
  );
  assert.deepEqual(problems(config(web(`      alpn: []
      sessionTickets: off`))).sort(), ['services[0].tls.alpn: must list at least one protocol', 'services[0].tls: needs certificates (or acme)']);
  assert.deepEqual(problems(config(web(`      certificates: [{ cert: a.crt, key: a.key }]
      alpn: [h2, h2]`))), ['services[0].tls.alpn: must not repeat a protocol']);
  assert.deepEqual(problems(config(web(`      certificates: []`))), ['services[0].tls.certificates: must list at least one certificate (or leave it out and use acme)']);
});

test('tls only on http services; flowKey sni only on tcp services', () => {
  assert.deepEqual(
    problems(config(`
  - name: pass
    protocol: tcp
    port: 443
    flowKey: sni
    backends: [{ address: 127.0.0.1:9443 }]
  - name: bad
    protocol: tcp
    port: 444
    backends: [{ address: 127.0.0.1:9443 }]
    tls: { certificates: [{ cert: a.crt, key: a.key }] }
  - name: web
    protocol: http
    port: 8080
    flowKey: sni
    backends: [{ address: 127.0.0.1:9001 }]
  - name: dns
    protocol: udp
    port: 53
    flowKey: sni
    backends: [{ address: 127.0.0.1:5353 }]`)),
    [
      'services[1].tls: only allowed for protocol http (a tcp service passes TLS through; see flowKey: sni)',
      'services[2].flowKey: "sni" is not allowed for protocol http (allowed: client-ip, connection, header:NAME, cookie:NAME)',
      'services[3].flowKey: "sni" is not allowed for protocol udp (allowed: connection, client-ip, quic-cid)',
    ],
  );
  const c = parseConfigText(config(`
  - name: pass
    protocol: tcp
    port: 443
    flowKey: sni
    backends: [{ address: 127.0.0.1:9443 }]`), 'test.yaml', dir);
  assert.equal(c.services[0].flowKey, 'sni');
});

test('each certificate and key must parse, match and be valid now: one <path>: <problem> each', () => {
  assert.deepEqual(
    problems(
      config(web(`      certificates:
        - { cert: a.crt, key: a.key }
        - { cert: a.crt, key: b.key }
        - { cert: expired.crt, key: expired.key }
        - { cert: future.crt, key: future.key }
        - { cert: missing.crt, key: a.key }
        - { cert: junk.crt, key: junk.crt }
        - { cert: bad-block.crt, key: a.key }
        - { cert: a.crt, key: encrypted.key }
        - { cert: weak.crt, key: weak.key }
        - { cert: chain-reversed.crt, key: leaf.key }
        - { cert: a.crt }`)),
    ),
    [
      'services[0].tls.certificates[10].key: is required',
      'services[0].tls.certificates[1].key: does not match the certificate',
      'services[0].tls.certificates[2].cert: expired on 2000-12-31T00:00:00Z',
      'services[0].tls.certificates[3].cert: is not valid before 2090-01-01T00:00:00Z',
      'services[0].tls.certificates[4].cert: file not found: missing.crt',
      'services[0].tls.certificates[5].cert: is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" block)',
      'services[0].tls.certificates[5].key: is not a PEM private key',
      'services[0].tls.certificates[6].cert: certificate 1 of the file is not valid X.509',
      'services[0].tls.certificates[7].key: is encrypted; passphrase-protected keys are not supported',
      'services[0].tls.certificates[8].key: is an RSA key of 1024 bits; at least 2048 are needed',
      'services[0].tls.certificates[9].key: does not match the certificate',
      'services[0].tls.certificates[9].cert: certificate 2 of the file did not issue certificate 1 (the chain must go from the leaf towards the root)',
    ],
  );
});

test('an unreadable key file is reported, not thrown', { skip: process.getuid?.() === 0 ? 'root reads any file' : false }, () => {
  const p = join(dir, 'unreadable.key');
  copyFileSync(join(FIX, 'a.key'), p);
  chmodSync(p, 0);
  assert.match(problems(config(web(`      certificates: [{ cert: a.crt, key: unreadable.key }]`))).join('\n'), /certificates\[0\]\.key: cannot read file/);
});

test('tandem validate prints the certificate problems and exits 1', () => {
  const file = join(dir, 'tandem.yaml');
  writeFileSync(file, config(web(`      certificates:
        - { cert: a.crt, key: a.key }
        - { cert: a.crt, key: b.key }`)));
  const bin = fileURLToPath(new URL('../../bin/tandem.js', import.meta.url));
  const r = spawnSync(process.execPath, [bin, 'validate', '--config', file], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr.trim(), 'services[0].tls.certificates[1].key: does not match the certificate');
});
