/**
 * Bad inputs and bad backends, each with its documented status or cut, and the node serving
 * other clients afterwards: slowloris, a client that disconnects mid-body, a backend that resets
 * mid-response, a backend that never answers, a backend that refuses connections, no backend.
 * In-process cluster (harness.ts) with short timeouts; one scripted backend.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { FakeCluster } from './harness.js';
import { createSelector } from '../../../src/balancer/index.js';
import { rawExchange, slowloris } from './clients.js';
import { waitFor } from '../../helpers/wait.js';

let c: FakeCluster;
let backend: Server;
let agent: Agent;
const sockets = new Set<net.Socket>();
let aborted = 0;

/** /reset: headers and part of the body, then a TCP reset. /hang: never answers. Else: echo. */
function scriptedBackend(): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/reset') {
      res.writeHead(200, { 'content-length': '1000000' });
      res.write(Buffer.alloc(10_000, 1));
      setTimeout(() => req.socket.resetAndDestroy(), 20);
      return;
    }
    if (req.url === '/hang') return;
    let bytes = 0;
    req.on('data', (d: Buffer) => (bytes += d.length));
    req.on('aborted', () => aborted++);
    req.on('end', () => res.end(JSON.stringify({ ok: true, bytes, via: req.headers.via })));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

before(async () => {
  backend = await scriptedBackend();
  const port = (backend.address() as AddressInfo).port;
  c = await FakeCluster.start({
    basePort: 17235,
    backends: [`127.0.0.1:${port}`],
    timeouts: { headerMs: 1000, requestMs: 1500, connectMs: 500 },
  });
  agent = new Agent({ connections: 16 });
});
after(async () => {
  await agent?.close();
  await c?.stop();
  for (const s of sockets) s.destroy();
  await new Promise((r) => backend?.close(r));
});

function keyOwnedBy(primary: string, prefix: string): string {
  for (let i = 0; ; i++) if (c.rank(`${prefix}${i}`)[0] === primary) return `${prefix}${i}`;
}

async function healthy(node = 'lb1'): Promise<void> {
  const r = await request(c.url(node, '/ok'), { headers: { 'x-session': keyOwnedBy('lb2', 'h') }, dispatcher: agent });
  assert.equal(r.statusCode, 200);
  await r.body.text();
}

test('slowloris: a head trickled byte by byte is cut with 408 after headerMs', async () => {
  const r = await slowloris('127.0.0.1', c.port, 50, 20_000);
  assert.ok(r.closed, 'connection closed by the proxy');
  assert.match(r.text, /^HTTP\/1\.1 408 /);
  assert.match(r.text, /tandem-error: request-timeout/);
  assert.ok(r.ms >= 900, `cut after ${r.ms} ms, before headerMs`);
  await healthy();
});

test('an idle connection that never sends a byte is closed too', async () => {
  const r = await rawExchange('127.0.0.1', c.port, '', 20_000);
  assert.ok(r.closed, 'closed by the proxy');
  assert.ok(r.ms >= 900, `closed after ${r.ms} ms, before headerMs`);
});

for (const [label, primary] of [['locally', 'lb1'], ['through two hops', 'lb3']] as const) {
  test(`a client that disconnects mid-body (${label}) costs nothing lasting`, async () => {
    const key = keyOwnedBy(primary, `mid-${primary}-`);
    await new Promise<void>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: c.port }, () => {
        s.write(`POST /upload HTTP/1.1\r\nHost: t\r\nx-session: ${key}\r\nContent-Length: 1000000\r\n\r\n`);
        s.write(Buffer.alloc(100_000, 2));
        setTimeout(() => {
          s.destroy();
          resolve();
        }, 50);
      });
      s.on('error', () => undefined);
    });
    const pool = c.node(primary).pool;
    await waitFor(() => pool.backends[0].active === 0, 'the backend slot released');
    await healthy('lb1');
  });
}

test('a backend that resets mid-response: the client connection is cut (local and two hops)', async () => {
  for (const primary of ['lb1', 'lb2']) {
    const key = keyOwnedBy(primary, `reset-${primary}-`);
    const r = await request(c.url('lb1', '/reset'), { headers: { 'x-session': key }, dispatcher: agent });
    assert.equal(r.statusCode, 200);
    await assert.rejects(r.body.arrayBuffer(), 'truncated body is an error, never a short success');
  }
  await healthy();
});

test('a backend that never answers → 504 backend-timeout after requestMs (also through two hops)', async () => {
  for (const primary of ['lb1', 'lb3']) {
    const key = keyOwnedBy(primary, `hang-${primary}-`);
    const t0 = Date.now();
    const r = await request(c.url('lb1', '/hang'), { headers: { 'x-session': key }, dispatcher: agent });
    const text = await r.body.text();
    assert.equal(r.statusCode, 504, text);
    assert.equal(r.headers['tandem-error'], 'backend-timeout');
    assert.match(text, /backend timed out/);
    const ms = Date.now() - t0;
    assert.ok(ms >= 1400, `504 after ${ms} ms, before requestMs`);
  }
  // With a body (read to its end before the backend went silent): still a 504, not a cut.
  for (const primary of ['lb1', 'lb3']) {
    const key = keyOwnedBy(primary, `hangpost-${primary}-`);
    for (const body of [Buffer.alloc(100, 1), Buffer.alloc(200_000, 2)]) {
      const r = await request(c.url('lb1', '/hang'), { method: 'POST', body, headers: { 'x-session': key }, dispatcher: agent });
      assert.equal(r.statusCode, 504, `POST ${body.length} via ${primary}`);
      await r.body.text();
    }
  }
  await healthy();
});

test('no backend available → 503 no-backend; backend refusing connections → 502 backend-failed', async () => {
  const node = c.node('lb1');
  const b = node.pool.backends[0];
  b.healthy = false;
  try {
    const r = await request(c.url('lb1', '/x'), { headers: { 'x-session': keyOwnedBy('lb1', 'nob') }, dispatcher: agent });
    assert.equal(r.statusCode, 503);
    assert.equal(r.headers['tandem-error'], 'no-backend');
    assert.equal(await r.body.text(), '503 Service Unavailable: no backend available\n');
  } finally {
    b.healthy = true;
  }
  // A pool whose only backend is a closed port.
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
  const deadPort = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  node.pool.update([{ address: `127.0.0.1:${deadPort}`, host: '127.0.0.1', port: deadPort, weight: 1 }], createSelector('round-robin'), 0);
  try {
    const r = await request(c.url('lb1', '/x'), { headers: { 'x-session': keyOwnedBy('lb1', 'refused') }, dispatcher: agent });
    assert.equal(r.statusCode, 502);
    assert.equal(r.headers['tandem-error'], 'backend-failed');
    const body = await r.body.text();
    assert.ok(!body.includes('127.0.0.1') && !body.includes('ECONNREFUSED'), 'nothing internal leaks');
    assert.equal(node.pool.backends[0].failures, 1, 'passive failure counted');
    const p = await request(c.url('lb1', '/x'), { method: 'POST', body: 'abc', headers: { 'x-session': keyOwnedBy('lb1', 'refused') }, dispatcher: agent });
    assert.equal(p.statusCode, 502);
    await p.body.text();
  } finally {
    node.pool.update(c.service.backends, createSelector('round-robin'), 0);
  }
  await healthy();
});

test('metrics count requests by hop and errors by code', async () => {
  const text = await c.node('lb1').registry.metrics();
  assert.match(text, /tandem_http_requests_total\{service="web",code_class="2xx",hop="local"\} [1-9]/);
  assert.match(text, /tandem_http_errors_total\{service="web",code="backend-timeout"\} [1-9]/);
  assert.match(text, /tandem_http_errors_total\{service="web",code="request-timeout"\} [1-9]/);
  assert.match(text, /tandem_http_forwards_total\{service="web",kind="to-primary"\} [1-9]/);
});
