/**
 * An ACME certificate put into a service's certificate store (in memory) is served at once to new
 * TLS connections, while a keep-alive connection made before the swap keeps working. Real TLS
 * through the listener factory. Ports 27300-27309.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { Agent, request } from 'node:https';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { startTestTlsServer, type TestTlsServer } from '../tls/server.js';
import { selfSigned } from '../../src/acme/self-signed.js';

const FIX = fileURLToPath(new URL('../tls/fixtures/', import.meta.url));
const PORT = 27300;
let server: TestTlsServer | null = null;
after(async () => server?.close());

function get(agent: Agent): Promise<{ fingerprint: string; socket: TLSSocket; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: PORT, servername: 'shop.acme.test', path: '/', agent, rejectUnauthorized: false }, (res) => {
      const socket = res.socket as TLSSocket;
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ fingerprint, socket, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('putMemory swaps the certificate for new connections without dropping a keep-alive one', async () => {
  server = await startTestTlsServer({
    host: '127.0.0.1', port: PORT, tickets: null,
    tls: { certificates: [{ cert: join(FIX, 'a.crt'), key: join(FIX, 'a.key') }], acme: null, alpn: ['http/1.1'], sessionTickets: 'off' },
  });
  const one = await selfSigned(['shop.acme.test']);
  const two = await selfSigned(['shop.acme.test']);
  assert.equal(server.store.putMemory({ id: 'acme', cert: Buffer.from(one.cert), key: Buffer.from(one.key) }).ok, true);
  const keep = new Agent({ keepAlive: true, maxSockets: 1 });
  const r1 = await get(keep);
  assert.equal(r1.fingerprint, new X509Certificate(one.cert).fingerprint256);

  assert.deepEqual(server.store.putMemory({ id: 'acme', cert: Buffer.from(two.cert), key: Buffer.from(two.key) }), { ok: true, changed: true });
  const r2 = await get(keep);
  assert.equal(r2.socket, r1.socket, 'the keep-alive connection was reused');
  assert.equal(r2.fingerprint, r1.fingerprint, 'and keeps the certificate it was made with');
  const fresh = new Agent({ keepAlive: false });
  const r3 = await get(fresh);
  assert.equal(r3.fingerprint, new X509Certificate(two.cert).fingerprint256, 'a new connection gets the new certificate');

  // A broken certificate is refused whole; the store keeps serving the current one.
  const bad = server.store.putMemory({ id: 'acme', cert: Buffer.from(two.cert), key: Buffer.from(one.key) });
  assert.equal(bad.ok, false);
  assert.equal((await get(fresh)).fingerprint, r3.fingerprint);
  keep.destroy();
  fresh.destroy();
});
