/**
 * Issue 4 acceptance with real node processes on 127.0.0.1-3 (test/helpers/cluster.ts) and three
 * echo backends: affinity and Via over random nodes, 10 MB both ways through two hops, an upgrade
 * tunnel through a non-primary node, and every bad input with its documented status or cut.
 * Service `web`: the echo backends. Service `edge`: one scripted backend and short timeouts.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:http';
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { Agent, request } from 'undici';
import { startCluster, WAIT_FLOOR_MS, type TestCluster } from '../../helpers/cluster.js';
import { httpBackend, type Backend } from '../../helpers/backends.js';
import { prng } from '../../helpers/prng.js';
import { rawExchange, slowloris, upgradeEcho, randomBody } from './clients.js';

const WEB = 17205;
const EDGE = 17206;
let c: TestCluster;
let backends: Backend[];
let scripted: Server;
let agent: Agent;
const scriptedSockets = new Set<net.Socket>();

function scriptedBackend(): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/reset') {
      res.writeHead(200, { 'content-length': '1000000' });
      res.write(Buffer.alloc(10_000, 1));
      setTimeout(() => req.socket.resetAndDestroy(), 20);
      return;
    }
    if (req.url === '/hang') return;
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  server.on('connection', (s) => {
    scriptedSockets.add(s);
    s.on('close', () => scriptedSockets.delete(s));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

before(async () => {
  backends = await Promise.all(['b1', 'b2', 'b3'].map((id) => httpBackend(id)));
  scripted = await scriptedBackend();
  c = await startCluster({
    basePort: 17200,
    services: [
      { name: 'web', protocol: 'http', port: WEB, flowKey: 'header:x-session', backends: backends.map((b) => ({ address: b.address })), healthCheck: { type: 'none' } },
      {
        name: 'edge',
        protocol: 'http',
        port: EDGE,
        flowKey: 'header:x-session',
        backends: [{ address: `127.0.0.1:${(scripted.address() as AddressInfo).port}` }],
        healthCheck: { type: 'none' },
        timeouts: { headerMs: 1000, requestMs: 1500, connectMs: 500 },
      },
    ],
  });
  agent = new Agent({ connections: 32 });
});
after(async () => {
  await agent?.close();
  await c?.stop();
  await Promise.all((backends ?? []).map((b) => b.close()));
  for (const s of scriptedSockets) s.destroy();
  await new Promise((r) => scripted?.close(r));
});

const host = (id: string): string => c.node(id).host;
const url = (id: string, path: string, port = WEB): string => `http://${host(id)}:${port}${path}`;

interface Echo {
  id: string;
  via: string | null;
  xff: string | null;
  bytes: number;
  sha256: string;
}

async function get(node: string, session: string, port = WEB, path = '/echo'): Promise<{ status: number; echo: Echo }> {
  const r = await request(url(node, path, port), { headers: { 'x-session': session }, dispatcher: agent });
  const text = await r.body.text();
  return { status: r.statusCode, echo: (text.startsWith('{') ? JSON.parse(text) : { raw: text }) as Echo };
}

/** The primary of a session, learned from a first request's Via (the last hop is the server). */
async function primaryOf(session: string, port = WEB): Promise<string> {
  const { echo } = await get('lb1', session, port);
  if (port !== WEB) return (await c.flow('lb1', 'edge', session))!.primary;
  return echo.via!.split(',').pop()!.trim().split(' ')[1];
}

test('300 requests over 100 sessions to random nodes: all 200, one backend per session, Via receiver→primary, entries identical', async () => {
  const ids = c.nodes.map((n) => n.id);
  const rand = prng(11);
  const sessions = Array.from({ length: 100 }, (_, i) => `sess-${i}`);
  const jobs = sessions.flatMap((s) => [s, s, s]).sort(() => rand() - 0.5);
  const seen = new Map<string, Set<string>>();
  const vias: Array<{ node: string; session: string; via: string[] }> = [];
  for (let i = 0; i < jobs.length; i += 10) {
    await Promise.all(
      jobs.slice(i, i + 10).map(async (s) => {
        const node = ids[Math.floor(rand() * 3)];
        const { status, echo } = await get(node, s);
        assert.equal(status, 200);
        vias.push({ node, session: s, via: echo.via!.split(',').map((x) => x.trim()) });
        let set = seen.get(s);
        if (!set) seen.set(s, (set = new Set()));
        set.add(echo.id);
      }),
    );
  }
  for (const [s, set] of seen) assert.equal(set.size, 1, `session ${s} reached ${[...set]}`);
  for (const s of sessions) {
    // Refreshes replicate in batches: wait for the three tables to agree, then compare. lastActive
    // is each node's own clock at receipt (replication.ts), so it is left out of the comparison.
    const flow = async (id: string, key: string) => {
      const f = await c.flow(id, 'web', key);
      if (f === null || f === undefined) return f;
      const { lastActive: _la, ...rest } = f;
      return rest;
    };
    let views = await Promise.all(ids.map((id) => flow(id, s)));
    const deadline = Date.now() + WAIT_FLOOR_MS;
    while (Date.now() < deadline && !(isDeepStrictEqual(views[0], views[1]) && isDeepStrictEqual(views[0], views[2]))) {
      await new Promise((r) => setTimeout(r, 50));
      views = await Promise.all(ids.map((id) => flow(id, s)));
    }
    const [a, b, d] = views;
    assert.ok(a && a.backend, `entry for ${s}`);
    assert.deepEqual(b, a, `lb2 agrees on ${s}`);
    assert.deepEqual(d, a, `lb3 agrees on ${s}`);
    assert.equal(backends.find((x) => x.address === a.backend)?.id, [...seen.get(s)!][0]);
  }
  for (const { node, session, via } of vias) {
    // Served by the primary — or by the backup, when the primary looked suspect at that moment
    // (a late heartbeat on a busy machine): the routing rule, not a fault.
    const { primary, backup } = (await c.flow('lb1', 'web', session))!;
    assert.equal(via[0], `1.1 ${node}`);
    const server = via[via.length - 1].split(' ')[1];
    assert.ok(server === primary || server === backup, `${session} via ${node} served by ${server}: owners ${primary}/${backup}`);
    assert.deepEqual(via, node === server ? [`1.1 ${node}`] : [`1.1 ${node}`, `1.1 ${server}`]);
  }
});

test('POST with a 10 MB streamed body and a 10 MB chunked response pass intact through two hops', async () => {
  const session = 'big-1';
  const primary = await primaryOf(session);
  const entry = c.nodes.find((n) => n.id !== primary)!.id;
  const body = randomBody(10 * 1024 * 1024);
  const r = await request(url(entry, '/upload'), { method: 'POST', headers: { 'x-session': session }, body: body.stream, dispatcher: agent });
  const echo = (await r.body.json()) as Echo;
  assert.equal(r.statusCode, 200);
  assert.equal(echo.bytes, 10 * 1024 * 1024);
  assert.equal(echo.sha256, body.sha256());
  assert.equal(echo.via, `1.1 ${entry}, 1.1 ${primary}`);

  const total = 10 * 1024 * 1024;
  const d = await request(url(entry, `/stream?bytes=${total}`), { headers: { 'x-session': session }, dispatcher: agent });
  assert.equal(d.headers['transfer-encoding'], 'chunked');
  const h = createHash('sha256');
  let n = 0;
  for await (const chunk of d.body) {
    h.update(chunk as Buffer);
    n += (chunk as Buffer).length;
  }
  assert.equal(n, total);
  assert.equal(h.digest('hex'), createHash('sha256').update(Buffer.alloc(total, 0x61)).digest('hex'));
});

test('a WebSocket-style upgrade through a non-primary node echoes both ways', async () => {
  const session = 'ws-1';
  const primary = await primaryOf(session);
  const entry = c.nodes.find((n) => n.id !== primary)!.id;
  const { head, echoes } = await upgradeEcho(host(entry), WEB, { 'x-session': session }, ['ping', 'pong', 'z'.repeat(50_000)]);
  assert.match(head, /^HTTP\/1\.1 101/);
  assert.deepEqual(echoes.slice(0, 2), ['ping', 'pong']);
  assert.equal(echoes[2], 'z'.repeat(50_000));
  const flow = await c.flow(entry, 'web', session);
  assert.match(head, new RegExp(`X-Backend: ${backends.find((b) => b.address === flow!.backend)!.id}`));
});

test('malformed request line → 400, 64 KB header → 431, each with tandem-error', async () => {
  const bad = await rawExchange(host('lb2'), WEB, 'GET / HTTP/9.9 extra\r\n\r\n');
  assert.match(bad.text, /^HTTP\/1\.1 400 [^\r]*\r\n/);
  assert.match(bad.text, /tandem-error: bad-request/);
  const big = await rawExchange(host('lb2'), WEB, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(64 * 1024)}\r\n\r\n`);
  assert.match(big.text, /^HTTP\/1\.1 431 /);
  assert.match(big.text, /tandem-error: header-too-large/);
  assert.equal((await get('lb2', 'after-bad')).status, 200);
});

test('slowloris: header bytes trickled are cut with 408 after headerMs', async () => {
  const r = await slowloris(host('lb3'), EDGE, 50, 20_000);
  assert.ok(r.closed);
  assert.match(r.text, /^HTTP\/1\.1 408 /);
  assert.ok(r.ms >= 900, `cut after ${r.ms} ms, before headerMs`);
  assert.equal((await get('lb3', 'after-slow', EDGE, '/')).status, 200);
});

test('a client that disconnects mid-body through two hops leaves every node serving', async () => {
  const session = 'mid-1';
  const primary = await primaryOf(session, EDGE);
  const entry = c.nodes.find((n) => n.id !== primary)!.id;
  await new Promise<void>((resolve) => {
    const s = net.connect({ host: host(entry), port: EDGE }, () => {
      s.write(`POST /up HTTP/1.1\r\nHost: t\r\nx-session: ${session}\r\nContent-Length: 5000000\r\n\r\n`);
      s.write(Buffer.alloc(200_000, 3));
      setTimeout(() => (s.destroy(), resolve()), 100);
    });
    s.on('error', () => undefined);
  });
  for (const n of c.nodes) assert.equal((await get(n.id, session, EDGE, '/')).status, 200);
});

test('a backend that resets mid-response: the client connection is cut, never a short success', async () => {
  const session = 'reset-1';
  const primary = await primaryOf(session, EDGE);
  for (const entry of c.nodes.map((n) => n.id)) {
    const r = await request(url(entry, '/reset', EDGE), { headers: { 'x-session': session }, dispatcher: agent });
    assert.equal(r.statusCode, 200);
    await assert.rejects(r.body.arrayBuffer(), `via ${entry} (primary ${primary})`);
  }
  assert.equal((await get('lb1', session, EDGE, '/')).status, 200);
});

test('a backend that never answers → 504 backend-timeout after requestMs, also through two hops', async () => {
  const session = 'hang-1';
  const primary = await primaryOf(session, EDGE);
  for (const entry of [primary, c.nodes.find((n) => n.id !== primary)!.id]) {
    const t0 = Date.now();
    const r = await request(url(entry, '/hang', EDGE), { headers: { 'x-session': session }, dispatcher: agent });
    const text = await r.body.text();
    assert.equal(r.statusCode, 504, text);
    assert.equal(r.headers['tandem-error'], 'backend-timeout');
    const ms = Date.now() - t0;
    assert.ok(ms >= 1400, `504 after ${ms} ms, before requestMs`);
  }
  assert.equal((await get(primary, session, EDGE, '/')).status, 200);
});

test('metrics: requests by hop, forwards, errors by code', async () => {
  assert.ok((await c.metric('lb1', 'tandem_http_requests_total', { service: 'web', code_class: '2xx' })) > 0);
  assert.ok((await c.metric('lb1', 'tandem_http_forwards_total', { service: 'web', kind: 'to-primary' })) > 0);
  const timeouts = await Promise.all(c.nodes.map((n) => c.metric(n.id, 'tandem_http_errors_total', { service: 'edge', code: 'backend-timeout' })));
  assert.ok(timeouts.reduce((a, b) => a + b, 0) >= 2);
});
