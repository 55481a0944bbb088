/**
 * HTTP/2 to clients on an https service, 3 real node processes, real clients (curl --http2,
 * node:http2): the right certificate per name and HTTP/2 on every node, HTTP/1.1 beside it, affinity
 * by header across nodes and protocols (an h2 and an HTTP/1.1 request of one session reach one
 * backend), request bodies intact (known and unknown length, a few MB, checksummed), a large
 * response, many concurrent streams on one connection, routes (host, path, header rules, rate
 * limits, redirects) and tandem's own errors as HTTP/2 answers.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { ClientHttp2Session } from 'node:http2';
import { startCluster, type TestCluster } from '../../helpers/cluster.js';
import { httpBackend, type Backend } from '../../helpers/backends.js';
import { curl, run } from '../../tls/clients.js';
import { h2Request, h2Session } from './h2-clients.js';
import { copyCertificates, type CopiedCertificates } from '../../helpers/tls-fixtures.js';

const PORT = 29110;
let c: TestCluster;
let backends: Backend[];
let certs: CopiedCertificates | undefined;
const sessions: ClientHttp2Session[] = [];

before(async () => {
  certs = copyCertificates('tandem-h2-', ['a', 'b']);
  const certificates = certs.pairs;
  backends = await Promise.all(['alpha', 'beta', 'gamma'].map((id) => httpBackend(id)));
  c = await startCluster({
    basePort: 29100,
    services: [
      {
        name: 'web',
        port: PORT,
        protocol: 'http',
        flowKey: 'header:x-session',
        backends: backends.map((b) => ({ address: b.address })),
        healthCheck: { type: 'none' },
        tls: { certificates },
        routes: [
          { name: 'old', match: { pathPrefix: '/old/' }, redirect: { to: 'https://{host}/new', status: 301 } },
          { name: 'bee', match: { host: 'b.test', pathPrefix: '/bee/' }, backends: [{ address: backends[2].address }], responseHeaders: { set: { 'x-route': 'bee' } } },
          { name: 'limited', match: { pathPrefix: '/limited/' }, backends: [{ address: backends[0].address }], rateLimit: { requestsPerSecond: 1, burst: 2, key: 'client-ip' } },
        ],
      },
    ],
  });
});

after(async () => {
  for (const s of sessions) s.destroy();
  await c?.stop();
  await Promise.all((backends ?? []).map((b) => b.close()));
  certs?.remove();
});

async function session(name: string, host: string): Promise<ClientHttp2Session> {
  const s = await h2Session(name, host, PORT);
  sessions.push(s);
  return s;
}

interface Echo {
  id: string;
  via: string | null;
  method: string;
  url: string;
  bytes: number;
  sha256: string;
  headers: Record<string, string>;
}

test('every node presents the certificate of the name asked for and serves HTTP/2 and HTTP/1.1', async () => {
  for (const n of c.nodes) {
    for (const name of ['a.test', 'b.test']) {
      const h2 = await curl(name, PORT, n.host, { http2: true });
      assert.equal(h2.status, 200, `${name} on ${n.id} over h2`);
      assert.equal(h2.subject, name, `${name} on ${n.id}: certificate`);
      assert.equal(h2.httpVersion, '2', `${name} on ${n.id}: curl's %{http_version}`);
      const h1 = await curl(name, PORT, n.host, { http1: true });
      assert.equal(h1.status, 200);
      assert.equal(h1.httpVersion, '1.1');
    }
  }
  assert.ok((await c.metric('lb1', 'tandem_tls_handshakes_total', { service: 'web', alpn: 'h2' })) >= 2);
  assert.ok((await c.metric('lb1', 'tandem_http2_sessions_total', { service: 'web' })) >= 2);
});

async function curlSession(host: string, session: string, http2: boolean): Promise<Echo> {
  const r = await run('curl', ['-sS', '-k', '--max-time', '10', http2 ? '--http2' : '--http1.1', '-H', `x-session: ${session}`, '--resolve', `a.test:${PORT}:${host}`, `https://a.test:${PORT}/p`, '-w', '\n%{http_code} %{http_version}']);
  const lines = r.stdout.trimEnd().split('\n');
  const [status, version] = (lines.pop() ?? '').split(' ');
  assert.equal(status, '200', r.stderr);
  assert.equal(version, http2 ? '2' : '1.1');
  return JSON.parse(lines.join('\n')) as Echo;
}

test('affinity by header holds across nodes and protocols: h2 and HTTP/1.1 requests of a session reach one backend', async () => {
  for (const key of ['user-1', 'user-2', 'user-3', 'user-4']) {
    const seen = new Set<string>();
    for (const n of c.nodes) {
      for (const http2 of [true, false]) {
        const e = await curlSession(n.host, key, http2);
        seen.add(e.id);
        if (http2) {
          // RFC 9110 section 7.6.3: the receiving node says it got the request in HTTP/2.
          assert.match(e.via ?? '', new RegExp(`^2 ${n.id}`), `Via from ${n.id}: ${e.via}`);
          assert.equal(e.headers['x-forwarded-proto'], 'https');
          assert.equal(e.headers.host, `a.test:${PORT}`, 'Host from :authority');
        }
      }
    }
    assert.equal(seen.size, 1, `one backend for ${key}, got ${[...seen].join(', ')}`);
  }
});

const sha = (b: Buffer | Buffer[]): string => {
  const h = createHash('sha256');
  for (const p of Array.isArray(b) ? b : [b]) h.update(p);
  return h.digest('hex');
};

test('POST bodies over h2 arrive intact at the backend, with and without content-length, through every node', async () => {
  for (const n of c.nodes) {
    const s = await session('a.test', n.host);
    const parts = Array.from({ length: 48 }, () => randomBytes(64 * 1024)); // 3 MB
    const total = parts.reduce((a, p) => a + p.length, 0);
    const known = await h2Request(s, { ':method': 'POST', ':path': '/upload', 'x-session': `post-${n.id}`, 'content-length': String(total) }, parts);
    assert.equal(known.status, 200);
    const e1 = JSON.parse(known.body.toString()) as Echo;
    assert.equal(e1.bytes, total);
    assert.equal(e1.sha256, sha(parts));
    // No content-length: the body goes on chunked to the backend (and over the peer hop).
    const unknown = await h2Request(s, { ':method': 'PUT', ':path': '/upload2', 'x-session': `post-${n.id}` }, parts.slice(0, 20));
    const e2 = JSON.parse(unknown.body.toString()) as Echo;
    assert.equal(e2.method, 'PUT');
    assert.equal(e2.bytes, 20 * 64 * 1024);
    assert.equal(e2.sha256, sha(parts.slice(0, 20)));
    assert.equal(e2.headers['transfer-encoding'], 'chunked');
  }
});

test('a large response body over h2 is intact (chunked from the backend, DATA frames to the client)', async () => {
  const s = await session('b.test', c.nodes[1].host);
  const bytes = 5 * 1024 * 1024 + 7;
  const r = await h2Request(s, { ':method': 'GET', ':path': `/stream?bytes=${bytes}`, 'x-session': 'big' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/octet-stream');
  assert.equal(r.headers['transfer-encoding'], undefined);
  assert.equal(r.body.length, bytes);
  assert.equal(sha(r.body), sha(Buffer.alloc(bytes, 0x61)));
  // The backend connection that relayed it (its reads paused whenever the client's side was full)
  // is the warmest in the pool: the next requests of the flow get it, and must be answered.
  for (let i = 0; i < 3; i++) assert.equal((await h2Request(s, { ':method': 'GET', ':path': `/next/${i}`, 'x-session': 'big' }, undefined, 15_000)).status, 200);
});

test('many concurrent streams on one connection: every answer complete, affinity per session', async () => {
  const s = await session('a.test', c.nodes[2].host);
  const streams = 200;
  const results = await Promise.all(
    Array.from({ length: streams }, (_, i) => {
      const body = randomBytes(1000 + i * 37);
      return h2Request(s, { ':method': 'POST', ':path': `/c/${i}`, 'x-session': `k-${i % 10}`, 'content-length': String(body.length) }, body).then((r) => ({ r, body, i }));
    }),
  );
  const byKey = new Map<string, Set<string>>();
  for (const { r, body, i } of results) {
    assert.equal(r.status, 200, `stream ${i}`);
    const e = JSON.parse(r.body.toString()) as Echo;
    assert.equal(e.url, `/c/${i}`);
    assert.equal(e.sha256, sha(body));
    const k = `k-${i % 10}`;
    if (!byKey.has(k)) byKey.set(k, new Set());
    byKey.get(k)!.add(e.id);
  }
  for (const [k, ids] of byKey) assert.equal(ids.size, 1, `${k}: ${[...ids].join(', ')}`);
});

test("tandem's own answers reach an h2 client as HTTP/2 responses: a route's redirect, HEAD, cookies joined", async () => {
  const s = await session('a.test', c.nodes[0].host);
  const r = await h2Request(s, { ':method': 'GET', ':path': '/old/x?q=1' });
  assert.equal(r.status, 301);
  assert.equal(r.headers.location, `https://a.test:${PORT}/new`);
  const head = await h2Request(s, { ':method': 'HEAD', ':path': '/h', 'x-session': 'head' });
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
  assert.ok(Number(head.headers['content-length']) > 0);
  // RFC 9113 section 8.2.3: a client may split cookies; the backend gets one field.
  const ck = await h2Request(s, { ':method': 'GET', ':path': '/ck', cookie: ['a=1', 'b=2'] });
  assert.equal((JSON.parse(ck.body.toString()) as Echo).headers.cookie, 'a=1; b=2');
  // A request the engine refuses itself, answered with its tandem-error code.
  const connect = await h2Request(s, { ':method': 'CONNECT', ':authority': 'a.test:443' });
  assert.equal(connect.status, 405);
  assert.equal(connect.headers['tandem-error'], 'method-not-allowed');
  assert.ok((await c.metric('lb1', 'tandem_http_errors_total', { service: 'web', code: 'method-not-allowed' })) >= 1);
});

test('routes over h2: :authority and path pick the route (its backend, its header rules), a rate limit answers 429 with Retry-After', async () => {
  const s = await session('b.test', c.nodes[1].host);
  const bee = await h2Request(s, { ':method': 'GET', ':path': '/bee/x', 'x-session': 'route-1' });
  assert.equal(bee.status, 200);
  assert.equal((JSON.parse(bee.body.toString()) as Echo).id, 'gamma');
  assert.equal(bee.headers['x-route'], 'bee');
  const a = await session('a.test', c.nodes[1].host);
  const other = await h2Request(a, { ':method': 'GET', ':path': '/bee/x', 'x-session': 'route-1' });
  assert.equal(other.headers['x-route'], undefined, 'another host: the default route');
  const statuses: number[] = [];
  let limited: Awaited<ReturnType<typeof h2Request>> | undefined;
  for (let i = 0; i < 20; i++) {
    const r = await h2Request(a, { ':method': 'GET', ':path': `/limited/${i}` });
    statuses.push(r.status);
    if (r.status === 429) limited ??= r;
  }
  assert.ok(limited !== undefined, `a 429 among ${statuses.join(',')}`);
  assert.equal(limited.headers['tandem-error'], 'rate-limited');
  assert.ok(Number(limited.headers['retry-after']) >= 1);
});
