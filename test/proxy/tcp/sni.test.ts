/**
 * `flowKey: sni` on a tcp service (TLS passthrough), with 3 real node processes: each server name
 * is a flow whose backend serves every connection for that name, from every node; the bytes pass
 * untouched (the TLS handshake is the backend's own, seen by openssl s_client); a connection
 * without SNI is keyed by the client's address.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { createSecureContext } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { startCluster, waitUntil, type TestCluster } from '../../helpers/cluster.js';
import { curl, sClient } from '../../tls/clients.js';

const FIXTURES = new URL('../../tls/fixtures/', import.meta.url).pathname;
const PORT = 29060;
let c: TestCluster;
const servers: Server[] = [];
const addresses: string[] = [];

const pair = (n: string) => ({ cert: readFileSync(`${FIXTURES}${n}.crt`), key: readFileSync(`${FIXTURES}${n}.key`) });

/** A TLS backend for a.test and b.test that answers with its id. */
async function tlsBackend(id: string): Promise<void> {
  // No certificate of its own: with an ECDSA default, node:tls would keep it beside the RSA b.test one.
  const a = createSecureContext(pair('a'));
  const b = createSecureContext(pair('b'));
  const s = createServer({ SNICallback: (name, cb) => cb(null, name === 'b.test' ? b : a) }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
    res.end(id);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  servers.push(s);
  addresses.push(`127.0.0.1:${(s.address() as AddressInfo).port}`);
}

before(async () => {
  for (const id of ['alpha', 'beta', 'gamma']) await tlsBackend(id);
  c = await startCluster({
    basePort: 29050,
    services: [{ name: 'pass', protocol: 'tcp', port: PORT, flowKey: 'sni', backends: addresses.map((address) => ({ address })), healthCheck: { type: 'none' } }],
  });
});

after(async () => {
  await c?.stop();
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

test('each server name is one flow whose backend serves it from every node', async () => {
  for (const name of ['a.test', 'b.test']) {
    const seen = new Set<string>();
    for (const n of c.nodes) {
      const r = await curl(name, PORT, n.host, { http1: true });
      assert.equal(r.status, 200, `${name} through ${n.id}`);
      assert.equal(r.subject, name, 'the backend presented its own certificate for the name');
      seen.add(r.body);
    }
    assert.equal(seen.size, 1, `${name}: one backend from every node, got ${[...seen].join(', ')}`);
    const backend = addresses[['alpha', 'beta', 'gamma'].indexOf([...seen][0])];
    for (const n of c.nodes) {
      await waitUntil(async () => (await c.flow(n.id, 'pass', name))?.backend === backend, 10_000, `${name}'s flow on ${n.id}`);
    }
  }
});

test('openssl s_client completes the handshake with the backend through every node (bytes untouched)', async () => {
  for (const n of c.nodes) {
    for (const version of ['-tls1_2', '-tls1_3'] as const) {
      const r = await sClient(n.host, PORT, { servername: 'b.test', version });
      assert.equal(r.session, 'New', `${n.id} ${version}: ${r.output.slice(-400)}`);
      assert.equal(r.subject, 'b.test');
    }
  }
});

test('a ClientHello without SNI is keyed by the client address', async () => {
  // The backend has no certificate for a hello without SNI: the handshake fails there, after routing.
  await sClient(c.nodes[1].host, PORT, { servername: null });
  await waitUntil(async () => (await c.flow(c.nodes[1].id, 'pass', '127.0.0.1')) !== null, 10_000, 'the client-ip flow');
});
