/**
 * The dashboard's service view for routes and TLS, with 3 real node processes: every route of an
 * http service shows as its own pool (SERVICE/ROUTE) with what it matches, its policy, its flows
 * and its backends' health; a TLS service shows its ALPN, session tickets, certificates and the
 * handshakes summed over the tier.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { fileURLToPath } from 'node:url';
import { startCluster, waitUntil, type TestCluster } from '../helpers/cluster.js';
import { httpBackend, type Backend } from '../helpers/backends.js';
import { readSse } from './dashboard-helpers.js';
import type { Snapshot } from '../../src/admin/dashboard/wire.js';

const BASE = 28600;
const WEB_PORT = BASE + 10;
const TLS_PORT = BASE + 11;
const fixture = (f: string) => fileURLToPath(new URL(`../tls/fixtures/${f}`, import.meta.url));
let c: TestCluster;
let backends: Backend[];

before(async () => {
  backends = await Promise.all(['dflt', 'api1', 'api2', 'stat'].map((id) => httpBackend(id)));
  const be = (i: number) => ({ address: backends[i].address });
  c = await startCluster({
    basePort: BASE,
    services: [
      {
        name: 'web', protocol: 'http', port: WEB_PORT, flowKey: 'header:x-session', backends: [be(0)], healthCheck: { type: 'none' },
        routes: [
          { name: 'api', match: { host: 'api.test', pathPrefix: '/v1/' }, backends: [be(1), be(2)], policy: 'least-connections', rateLimit: { requestsPerSecond: 100, burst: 20, key: 'client-ip' } },
          { name: 'static', match: { pathPrefix: '/static/' }, backends: [be(3)] },
        ],
      },
      {
        name: 'secure', protocol: 'http', port: TLS_PORT, backends: [be(0)], healthCheck: { type: 'none' },
        tls: { certificates: [{ cert: fixture('a.crt'), key: fixture('a.key') }] },
      },
    ],
  });
});

after(async () => {
  await c?.stop();
  await Promise.all((backends ?? []).map((b) => b.close()));
});

/** A GET with its own Host header (fetch does not let one be set), over HTTPS when `tls`. */
function get(host: string, port: number, path: string, headers: Record<string, string>, tls = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const opts = { host, port, path, headers, agent: false, ...(tls ? { servername: 'a.test', rejectUnauthorized: false } : {}) };
    const req = (tls ? httpsRequest : httpRequest)(opts, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', reject);
    req.end();
  });
}

async function snapshot(id: string, ok: (s: Snapshot) => boolean): Promise<Snapshot> {
  const n = c.node(id);
  let last: Snapshot | null = null;
  await waitUntil(async () => {
    const evs = await readSse(`http://${n.host}:${n.adminPort}/api/stream`, (e) => e.filter((x) => x.event === 'snapshot').length >= 2, 10_000);
    const snaps = evs.filter((e) => e.event === 'snapshot');
    last = JSON.parse(snaps[snaps.length - 1].data) as Snapshot;
    return ok(last);
  }, 30_000, 'a snapshot with the expected services').catch((err: Error) => {
    throw new Error(`${err.message}; the last one: ${JSON.stringify(last?.services)}`);
  });
  return last!;
}

test('routes show as pools of their own: match, policy, limit, flows and backends; TLS shows certificates and handshakes over the tier', async () => {
  // One request per route through each node, and a TLS handshake with each node.
  for (const n of c.nodes) {
    for (const [host, path] of [['api.test', '/v1/x'], ['www.test', '/static/y'], ['www.test', '/z']]) {
      assert.equal(await get(n.host, WEB_PORT, path, { host, 'x-session': `s-${n.id}` }), 200);
    }
    assert.equal(await get(n.host, TLS_PORT, '/', { host: 'a.test' }, true), 200);
  }
  const s = await snapshot('lb2', (x) => (x.services.find((v) => v.name === 'secure')?.tls?.handshakes ?? 0) >= 3 && (x.services.find((v) => v.name === 'web/api')?.flows ?? 0) >= 1);
  assert.deepEqual(s.services.map((v) => v.name), ['web', 'web/api', 'web/static', 'secure']);
  const api = s.services.find((v) => v.name === 'web/api')!;
  assert.deepEqual(api.route, { service: 'web', name: 'api', match: 'host api.test · path /v1/', redirect: null, rateLimit: '100/s burst 20 by client-ip' });
  assert.equal(api.policy, 'least-connections');
  assert.deepEqual(api.backends.map((b) => [b.address, b.state]), [[backends[1].address, 'up'], [backends[2].address, 'up']]);
  assert.ok(api.flows >= 1, 'the route\'s flows are counted under web/api');
  const stat = s.services.find((v) => v.name === 'web/static')!;
  assert.equal(stat.route?.match, 'path /static/');
  assert.deepEqual(stat.backends.map((b) => b.address), [backends[3].address]);
  assert.equal(s.services[0].route, null);
  assert.equal(s.services[0].tls, null);
  const tls = s.services.find((v) => v.name === 'secure')!.tls!;
  assert.equal(tls.sessionTickets, 'cluster');
  assert.ok(tls.alpn.includes('http/1.1'));
  assert.equal(tls.certificates.length, 1);
  assert.ok(tls.certificates[0].notAfter > Date.now(), 'the certificate\'s expiry is shown');
  assert.ok(tls.handshakes >= 3, `handshakes summed over the tier: ${tls.handshakes}`);
  assert.equal(tls.failures, 0);
  assert.deepEqual(tls.acme, []);
});
