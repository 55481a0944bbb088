/**
 * The TLS listener factory with real clients (curl, openssl s_client) on one process: certificate
 * per server name, ALPN to onSecure, resumption, hot reload, and each kind of bad input counted.
 * Ports 26010-26029.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { connect as netConnect, type Server } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServiceTlsConfig } from '../../src/config/schema.js';
import { LocalEpochSecrets } from '../../src/tls/ticket-keys.js';
import { startTestTlsServer, type TestTlsServer } from './server.js';
import { curl, sClient, run, startFragmentingRelay } from './clients.js';
import { GOLDEN_HELLOS, buildHello, extension, sniExtension } from './hello-fixtures.js';

const FIX = fileURLToPath(new URL('./fixtures/', import.meta.url));
const HOST = '127.0.0.1';
const PORT = 26010;
const dir = mkdtempSync(join(tmpdir(), 'tandem-tls-listener-'));
for (const f of ['a.crt', 'a.key', 'a2.crt', 'a2.key', 'b.crt', 'b.key', 'w.crt', 'w.key']) copyFileSync(join(FIX, f), join(dir, f));

const tls = (over: Partial<ServiceTlsConfig> = {}): ServiceTlsConfig => ({
  certificates: [
    { cert: join(dir, 'a.crt'), key: join(dir, 'a.key') },
    { cert: join(dir, 'b.crt'), key: join(dir, 'b.key') },
    { cert: join(dir, 'w.crt'), key: join(dir, 'w.key') },
  ],
  acme: null,
  alpn: ['h2', 'http/1.1'],
  sessionTickets: 'node',
  ...over,
});

let server: TestTlsServer;
let keys: LocalEpochSecrets;

before(async () => {
  keys = new LocalEpochSecrets();
  server = await startTestTlsServer({ host: HOST, port: PORT, tls: tls(), tickets: keys, handshakeTimeoutMs: 1500 });
});

after(async () => {
  await server.close();
  keys.stop();
});

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const m = await server.registry.getSingleMetric(name)?.get();
  const v = m?.values.find((x) => Object.entries(labels).every(([k, want]) => String(x.labels[k]) === want));
  return v?.value ?? 0;
}

async function waitFor(what: string, pred: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('curl gets the certificate of each name (ECDSA and RSA, wildcard, unknown, none), HTTP/1.1 and HTTP/2', async () => {
  const cases: Array<[string, string, string]> = [
    ['a.test', 'a.test', 'exact'],
    ['b.test', 'b.test', 'exact'],
    ['x.a.test', 'a.test', 'wildcard'],
    ['v.w.test', '*.w.test', 'wildcard'],
    ['unknown.test', 'a.test', 'default'],
  ];
  for (const [name, cn, how] of cases) {
    const before_ = await metric('tandem_tls_server_names_total', { service: 'web', result: how });
    const h1 = await curl(name, PORT, HOST, { http1: true });
    assert.equal(h1.status, 200, `${name} over HTTP/1.1: ${h1.body}`);
    assert.equal(h1.subject, cn, name);
    assert.match(h1.body, new RegExp(`^${name.replace(/\./g, '\\.')}\\|http/1\\.1\\|TLSv1\\.3\\|new\\|`));
    const h2 = await curl(name, PORT, HOST, { http2: true });
    assert.equal(h2.status, 200, `${name} over HTTP/2`);
    assert.equal(h2.httpVersion, '2');
    assert.equal(h2.subject, cn);
    assert.match(h2.body, /\|h2\|TLSv1\.3\|/);
    assert.equal(await metric('tandem_tls_server_names_total', { service: 'web', result: how }), before_ + 2, name);
  }
  // By address: curl sends no SNI for an IP literal; the default certificate answers.
  const byIp = await curl(HOST, PORT, HOST);
  assert.equal(byIp.status, 200);
  assert.equal(byIp.subject, 'a.test');
  assert.ok((await metric('tandem_tls_server_names_total', { service: 'web', result: 'none' })) >= 1);
  assert.ok((await metric('tandem_tls_handshakes_total', { service: 'web', version: '1.3', alpn: 'h2', session: 'new' })) >= 5);
  assert.ok(server.secured.h2 >= 6 && server.secured['http/1.1'] >= 5, JSON.stringify(server.secured));
});

test('TLS 1.2 and 1.3 sessions resume on the same node; RSA and ECDSA alike; no ALPN is http/1.1', async () => {
  for (const version of ['-tls1_2', '-tls1_3'] as const) {
    for (const name of ['a.test', 'b.test']) {
      const sess = join(dir, `sess-${version}-${name}`);
      const first = await sClient(HOST, PORT, { servername: name, version, sessOut: sess });
      assert.equal(first.session, 'New', first.output);
      assert.equal(first.subject, name);
      const again = await sClient(HOST, PORT, { servername: name, version, sessIn: sess, input: 'GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n' });
      assert.equal(again.session, 'Reused', `${version} ${name}: ${again.output}`);
      assert.match(again.output, /\|http\/1\.1\|TLSv1\.[23]\|resumed\|/);
    }
  }
  assert.ok((await metric('tandem_tls_handshakes_total', { service: 'web', version: '1.2', alpn: 'none', session: 'resumed' })) >= 2);
  assert.ok((await metric('tandem_tls_handshakes_total', { service: 'web', version: '1.3', alpn: 'none', session: 'resumed' })) >= 2);
});

test('ALPN: h2 and http/1.1 are negotiated; a client offering only others is refused (RFC 7301 no_application_protocol)', async () => {
  assert.equal((await sClient(HOST, PORT, { servername: 'a.test', alpn: 'h2' })).alpn, 'h2');
  assert.equal((await sClient(HOST, PORT, { servername: 'a.test', alpn: 'http/1.1' })).alpn, 'http/1.1');
  assert.equal((await sClient(HOST, PORT, { servername: 'a.test', alpn: 'h2,http/1.1' })).alpn, 'h2');
  const other = await sClient(HOST, PORT, { servername: 'a.test', alpn: 'spdy/3.1' });
  assert.match(other.output, /no application protocol/i);
  await waitFor('alpn counted', async () => (await metric('tandem_tls_handshake_failures_total', { service: 'web', reason: 'alpn' })) === 1);
});

test('plain HTTP on the TLS port gets 400 plain-http; junk is closed; both counted', async () => {
  const r = await rawExchange(Buffer.from('GET / HTTP/1.1\r\nhost: a.test\r\n\r\n'));
  assert.match(r, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.match(r, /tandem-error: plain-http/);
  assert.equal(await rawExchange(Buffer.from('\x00\x01\x02\x03 definitely not TLS')), '');
  assert.equal(await rawExchange(Buffer.from('SSH-2.0-OpenSSH_9.2\r\n')), '');
  assert.equal(await metric('tandem_tls_handshake_failures_total', { service: 'web', reason: 'plain-http' }), 1);
  assert.equal(await metric('tandem_tls_handshake_failures_total', { service: 'web', reason: 'not-tls' }), 2);
  await stillServes();
});

test('oversized and malformed ClientHellos are refused and counted; a fragmented one is served', async () => {
  const huge = buildHello([sniExtension('a.test'), extension(0xff02, Buffer.alloc(15_000, 1)), extension(0xff03, Buffer.alloc(3000, 2))]);
  // Sent as legal records of at most 2^14 bytes.
  const hs = huge.subarray(5);
  const recs: Buffer[] = [];
  for (let i = 0; i < hs.length; i += 16_000) {
    const body = hs.subarray(i, i + 16_000);
    recs.push(Buffer.from([0x16, 3, 1, body.length >> 8, body.length & 0xff]), body);
  }
  assert.equal(await rawExchange(Buffer.concat(recs)), '');
  assert.equal(await metric('tandem_tls_handshake_failures_total', { service: 'web', reason: 'oversized' }), 1);
  assert.equal(await rawExchange(buildHello([sniExtension('a.test', 'b.test')])), '');
  assert.equal(await metric('tandem_tls_handshake_failures_total', { service: 'web', reason: 'malformed' }), 1);

  // A real client's ClientHello, re-cut into 40-byte records sent in 7-byte segments.
  const relay: Server = await startFragmentingRelay(HOST, 26011, { host: HOST, port: PORT }, 40, 7);
  try {
    for (const version of ['-tls1_2', '-tls1_3'] as const) {
      const r = await sClient(HOST, 26011, { servername: 'b.test', version });
      assert.equal(r.session, 'New', r.output);
      assert.equal(r.subject, 'b.test');
    }
  } finally {
    relay.close();
  }
  assert.equal(await metric('tandem_tls_client_hellos_fragmented_total', { service: 'web' }), 2);
});

test('a client that sends nothing, or half a ClientHello, times out and is counted', async () => {
  const before_ = await metric('tandem_tls_handshake_failures_total', { service: 'web', reason: 'timeout' });
  const half = Buffer.from(GOLDEN_HELLOS[0].hex, 'hex').subarray(0, 50);
  await Promise.all([rawExchange(Buffer.alloc(0), 8000), rawExchange(half, 8000)]);
  assert.equal(await metric('tandem_tls_handshake_failures_total', { service: 'web', reason: 'timeout' }), before_ + 2);
});

test('TLS 1.2 renegotiation is refused: the connection is closed and counted', async () => {
  const r = await sClient(HOST, PORT, { servername: 'a.test', version: '-tls1_2', input: 'R\n' });
  assert.equal(r.session, 'New', r.output);
  await waitFor('renegotiation counted', async () => (await metric('tandem_tls_handshake_failures_total', { service: 'web', reason: 'renegotiation' })) === 1);
  await stillServes();
});

test('TLS 1.1 and below are refused (protocol-version)', async () => {
  const r = await sClient(HOST, PORT, { servername: 'a.test', extra: ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0'] });
  assert.equal(r.session === 'New' && r.protocol === 'TLSv1.1', false, r.output);
  await waitFor('protocol-version counted', async () => (await metric('tandem_tls_handshake_failures_total', { service: 'web', reason: 'protocol-version' })) >= 1);
});

test('reload: a replaced certificate is served at once, open connections stay; a mismatched pair is refused whole', async () => {
  const before_ = new X509Certificate(readFileSync(join(FIX, 'a.crt'))).fingerprint256;
  // An open connection across the reloads.
  const open = tlsConnect({ host: HOST, port: PORT, servername: 'a.test', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
  await new Promise<void>((r) => open.once('secureConnect', () => r()));
  assert.equal(open.getPeerX509Certificate()?.fingerprint256, before_);

  copyFileSync(join(FIX, 'a2.crt'), join(dir, 'a.crt'));
  copyFileSync(join(FIX, 'a2.key'), join(dir, 'a.key'));
  assert.deepEqual(server.listener.reloadCertificates(), { ok: true, changed: true });
  assert.deepEqual(server.listener.reloadCertificates(), { ok: true, changed: false });
  const fresh = await peerFingerprint('a.test');
  assert.equal(fresh, new X509Certificate(readFileSync(join(FIX, 'a2.crt'))).fingerprint256);
  assert.notEqual(fresh, before_);
  // b.test was not touched: its context is the same object.
  assert.equal(await peerFingerprint('b.test'), new X509Certificate(readFileSync(join(FIX, 'b.crt'))).fingerprint256);

  // Now a half-replaced pair: the certificate of a, the key of b.
  copyFileSync(join(FIX, 'a.crt'), join(dir, 'a.crt'));
  const refused = server.listener.reloadCertificates();
  assert.equal(refused.ok, false);
  assert.ok(!refused.ok && refused.problems.some((p) => p.index === 0 && p.file === 'key' && p.message === 'does not match the certificate'));
  assert.equal(await peerFingerprint('a.test'), fresh, 'the previous set stays');
  assert.equal(await metric('tandem_tls_certificate_reloads_total', { service: 'web', result: 'refused' }), 1);

  // The connection opened before both reloads still works.
  open.write('GET / HTTP/1.1\r\nhost: a.test\r\nconnection: close\r\n\r\n');
  const reply = await new Promise<string>((r) => {
    let s = '';
    open.on('data', (d: Buffer) => (s += d.toString()));
    open.on('end', () => r(s));
  });
  assert.match(reply, /^HTTP\/1\.1 200 OK/);
  copyFileSync(join(FIX, 'a.key'), join(dir, 'a.key'));
  assert.equal(server.listener.reloadCertificates().ok, true);
});

test('sessionTickets off: no session resumes', async () => {
  const off = await startTestTlsServer({ host: HOST, port: 26012, tls: tls({ sessionTickets: 'off' }), tickets: null });
  try {
    for (const version of ['-tls1_2', '-tls1_3'] as const) {
      const sess = join(dir, `sess-off${version}`);
      const first = await sClient(HOST, 26012, { servername: 'a.test', version, sessOut: sess });
      assert.equal(first.session, 'New');
      const again = await sClient(HOST, 26012, { servername: 'a.test', version, sessIn: sess });
      assert.equal(again.session, 'New', `${version} must not resume`);
    }
  } finally {
    await off.close();
  }
});

test('a ticket-key source with no epoch yet still serves (node:tls keys meanwhile)', async () => {
  const empty = { rotationMs: 60_000, window: () => [], on: () => empty, off: () => empty };
  const srv = await startTestTlsServer({ host: HOST, port: 26013, tls: tls({ sessionTickets: 'cluster' }), tickets: empty });
  try {
    const sess = join(dir, 'sess-empty');
    assert.equal((await sClient(HOST, 26013, { servername: 'b.test', version: '-tls1_3', sessOut: sess })).session, 'New');
    assert.equal((await sClient(HOST, 26013, { servername: 'b.test', version: '-tls1_3', sessIn: sess })).session, 'Reused');
  } finally {
    await srv.close();
  }
});

/** Connects, sends bytes, returns what came back before the server closed (or waitMs passed). */
function rawExchange(bytes: Buffer, waitMs = 5000): Promise<string> {
  return new Promise((resolve) => {
    const s = netConnect(PORT, HOST);
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve(`${got}<still open>`);
    }, waitMs);
    s.on('connect', () => {
      if (bytes.length > 0) s.write(bytes);
    });
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
  });
}

function peerFingerprint(servername: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: HOST, port: PORT, servername, rejectUnauthorized: false });
    s.once('secureConnect', () => {
      const f = s.getPeerX509Certificate()?.fingerprint256;
      s.destroy();
      resolve(f);
    });
    s.once('error', reject);
  });
}

async function stillServes(): Promise<void> {
  const r = await curl('a.test', PORT, HOST);
  assert.equal(r.status, 200);
}

test('the curl and openssl binaries are there', async () => {
  assert.equal((await run('openssl', ['version'])).code, 0);
  assert.equal((await run('curl', ['--version'])).code, 0);
});
