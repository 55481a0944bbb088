/**
 * HTTPS on an http service, with 3 real node processes and real clients (curl, openssl s_client):
 * the certificate per server name on every node, affinity by header across nodes, the protocol
 * told to the backend, TLS sessions that resume on every node with `sessionTickets: cluster` and
 * only where issued with `node`, ALPN (h2 preferred, docs/http.md "HTTP/2"), and a certificate replaced + SIGHUP served without dropping an
 * open keep-alive connection.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { startCluster, waitUntil, type TestCluster } from '../../helpers/cluster.js';
import { httpBackend, type Backend } from '../../helpers/backends.js';
import { curl, run, sClient } from '../../tls/clients.js';
import { TLS_FIXTURES, copyCertificates } from '../../helpers/tls-fixtures.js';

const PORT = 29010;
const NODE_PORT = 29011;
let c: TestCluster;
let backends: Backend[];
let dir: string;

before(async () => {
  const certs = copyCertificates('tandem-https-', ['a', 'b']);
  dir = certs.dir;
  const certificates = certs.pairs;
  backends = await Promise.all(['alpha', 'beta', 'gamma'].map((id) => httpBackend(id)));
  const common = { protocol: 'http', flowKey: 'header:x-session', backends: backends.map((b) => ({ address: b.address })), healthCheck: { type: 'none' } };
  c = await startCluster({
    basePort: 29000,
    services: [
      { name: 'web', port: PORT, ...common, tls: { certificates, sessionTickets: 'cluster' } },
      { name: 'solo', port: NODE_PORT, ...common, tls: { certificates, sessionTickets: 'node' } },
    ],
  });
});

after(async () => {
  await c?.stop();
  await Promise.all((backends ?? []).map((b) => b.close()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Echo {
  id: string;
  forwarded: string | null;
  headers: Record<string, string>;
}

async function curlSession(name: string, address: string, session: string): Promise<{ status: number; echo: Echo }> {
  const r = await run('curl', ['-sS', '-k', '--max-time', '10', '-H', `x-session: ${session}`, '-H', 'x-forwarded-proto: spoofed', '--resolve', `${name}:${PORT}:${address}`, `https://${name}:${PORT}/p`, '-w', '\n%{http_code}']);
  const lines = r.stdout.trimEnd().split('\n');
  const status = Number(lines.pop());
  return { status, echo: JSON.parse(lines.join('\n')) as Echo };
}

test('every node presents the certificate of the name asked for and serves 200 over HTTPS', async () => {
  for (const n of c.nodes) {
    for (const name of ['a.test', 'b.test']) {
      const r = await curl(name, PORT, n.host, { http1: true });
      assert.equal(r.status, 200, `${name} on ${n.id}`);
      assert.equal(r.subject, name, `${name} on ${n.id}: certificate`);
      assert.equal(r.httpVersion, '1.1');
    }
  }
});

test('affinity by header holds across nodes; the backend is told the request came over https', async () => {
  const seen = new Set<string>();
  for (const n of c.nodes) {
    const r = await curlSession('a.test', n.host, 'user-7');
    assert.equal(r.status, 200);
    seen.add(r.echo.id);
    assert.equal(r.echo.headers['x-forwarded-proto'], 'https', 'a client-sent X-Forwarded-Proto is replaced');
    assert.match(r.echo.forwarded ?? '', /proto=https/);
  }
  assert.equal(seen.size, 1, `one backend for the session, got ${[...seen].join(', ')}`);
});

test('ALPN: h2 when the client offers it (the server prefers it), http/1.1 otherwise', async () => {
  const r = await curl('b.test', PORT, c.nodes[2].host, { http2: true });
  assert.equal(r.status, 200);
  assert.equal(r.httpVersion, '2');
  const s = await sClient(c.nodes[2].host, PORT, { servername: 'b.test', alpn: 'http/1.1,h2' });
  assert.equal(s.alpn, 'h2');
  const old = await sClient(c.nodes[2].host, PORT, { servername: 'b.test', alpn: 'http/1.1' });
  assert.equal(old.alpn, 'http/1.1');
});

test('plain HTTP on the TLS port gets 400 plain-http, and the node serves HTTPS on', async () => {
  const r = await run('curl', ['-sS', '--max-time', '10', '-o', '/dev/null', '-w', '%{http_code}', '-D', '-', `http://${c.nodes[1].host}:${PORT}/`]);
  assert.match(r.stdout, /tandem-error: plain-http/i);
  assert.match(r.stdout, /400$/);
  assert.ok((await c.metric('lb2', 'tandem_tls_handshake_failures_total', { service: 'web', reason: 'plain-http' })) >= 1);
  assert.equal((await curl('a.test', PORT, c.nodes[1].host)).status, 200);
});

for (const version of ['-tls1_2', '-tls1_3'] as const) {
  test(`${version}: a session from node 1 resumes on nodes 2 and 3 with sessionTickets: cluster, not with node`, async () => {
    const sess = join(dir, `sess${version}`);
    const first = await sClient(c.nodes[0].host, PORT, { servername: 'a.test', version, sessOut: sess });
    assert.equal(first.session, 'New');
    for (const n of c.nodes.slice(1)) {
      // The ticket keys reach every node over the control links shortly after the service starts.
      let last = '';
      await waitUntil(async () => {
        const r = await sClient(n.host, PORT, { servername: 'a.test', version, sessIn: sess });
        last = r.session ?? r.output;
        return r.session === 'Reused';
      }, 20_000, `resumption on ${n.id} (last: ${last})`);
    }
    const soloSess = join(dir, `solo${version}`);
    const own = await sClient(c.nodes[0].host, NODE_PORT, { servername: 'a.test', version, sessOut: soloSess });
    assert.equal(own.session, 'New');
    const again = await sClient(c.nodes[0].host, NODE_PORT, { servername: 'a.test', version, sessIn: soloSess });
    assert.equal(again.session, 'Reused', 'node tickets resume on the node that issued them');
    for (const n of c.nodes.slice(1)) {
      const r = await sClient(n.host, NODE_PORT, { servername: 'a.test', version, sessIn: soloSess });
      assert.equal(r.session, 'New', `node tickets do not resume on ${n.id}`);
    }
  });
}

function request(sock: TLSSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer): void => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = Number(/content-length: (\d+)/i.exec(buf.slice(0, end))?.[1] ?? '0');
      if (buf.length < end + 4 + len) return;
      sock.off('data', onData);
      resolve(buf);
    };
    sock.on('data', onData);
    sock.once('error', reject);
    sock.write('GET /k HTTP/1.1\r\nhost: a.test\r\nx-session: keep\r\n\r\n');
  });
}

test('a replaced certificate is served after SIGHUP; an open keep-alive connection keeps working', async () => {
  const n = c.nodes[0];
  const sock = tlsConnect({ host: n.host, port: PORT, servername: 'a.test', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
  await new Promise<void>((resolve, reject) => sock.once('secureConnect', resolve).once('error', reject));
  assert.match(await request(sock), /^HTTP\/1\.1 200/);
  const fingerprint = (f: string) => new X509Certificate(readFileSync(join(TLS_FIXTURES, f))).fingerprint256.replaceAll(':', '');
  copyFileSync(join(TLS_FIXTURES, 'a2.crt'), join(dir, 'a.crt'));
  copyFileSync(join(TLS_FIXTURES, 'a2.key'), join(dir, 'a.key'));
  c.node(n.id).process?.kill('SIGHUP');
  const want = fingerprint('a2.crt');
  let got = '';
  await waitUntil(async () => {
    const r = await run('sh', ['-c', `openssl s_client -connect ${n.host}:${PORT} -servername a.test </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256`]);
    got = (/=([0-9A-F:]+)/.exec(r.stdout)?.[1] ?? '').replaceAll(':', '');
    return got === want;
  }, 20_000, `the new certificate (last ${got})`);
  assert.match(await request(sock), /^HTTP\/1\.1 200/, 'the connection opened before the reload still serves');
  assert.equal(sock.getPeerX509Certificate()?.fingerprint256.replaceAll(':', ''), fingerprint('a.crt'));
  sock.destroy();
});

test('a mismatched certificate and key are refused whole on reload; the running certificate stays', async () => {
  const n = c.nodes[0];
  copyFileSync(join(TLS_FIXTURES, 'b.key'), join(dir, 'a.key'));
  const r = await c.post(n.id, '/api/reload', {});
  assert.equal(r.status, 422);
  assert.match(JSON.stringify(r.body), /services\[0\]\.tls\.certificates\[0\]\.key: does not match the certificate/);
  const s = await sClient(n.host, PORT, { servername: 'a.test' });
  assert.equal(s.session, 'New');
  assert.equal(s.subject, 'a.test');
  assert.equal((await curl('a.test', PORT, n.host)).status, 200);
  copyFileSync(join(TLS_FIXTURES, 'a2.key'), join(dir, 'a.key'));
});
