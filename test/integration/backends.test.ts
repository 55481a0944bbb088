/**
 * Issue 7 acceptance with real processes: active health checks drive the pool on every node, and
 * a drain through one node's admin API applies on all three while open connections finish.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { request } from 'undici';
import { startCluster, waitUntil, sleep, type TestCluster } from '../helpers/cluster.js';
import { httpBackend, tcpBackend, type Backend } from '../helpers/backends.js';

const HTTP = 18080;
const TCP = 18081;
const INTERVAL = 100;
const FALL = 3;
const RISE = 2;
let c: TestCluster;
let web: Backend[];
let tcp: Backend[];

before(async () => {
  web = await Promise.all(['w1', 'w2', 'w3'].map((id) => httpBackend(id)));
  // TCP backends that prefix every chunk with their id, so a client sees where it landed.
  tcp = await Promise.all(['t1', 't2', 't3'].map((id) => tcpBackend(id, '127.0.0.1', 0, (s, chunk) => s.write(`${id}:${chunk.toString()}`))));
  c = await startCluster({
    basePort: 18000,
    services: [
      {
        name: 'web',
        protocol: 'http',
        port: HTTP,
        flowKey: 'header:x-session',
        backends: web.map((b) => ({ address: b.address })),
        healthCheck: { type: 'http', path: '/healthz', intervalMs: INTERVAL, timeoutMs: 200, fall: FALL, rise: RISE },
      },
      { name: 'echo', protocol: 'tcp', port: TCP, flowKey: 'connection', backends: tcp.map((b) => ({ address: b.address })), healthCheck: { type: 'tcp', intervalMs: 200 } },
    ],
  });
});
after(async () => {
  await c?.stop();
  await Promise.all([...(web ?? []), ...(tcp ?? [])].map((b) => b.close()));
});

async function get(host: string, session: string): Promise<{ status: number; backend: string }> {
  const r = await request(`http://${host}:${HTTP}/`, { headers: { 'x-session': session }, headersTimeout: 5000 });
  const text = await r.body.text();
  return { status: r.statusCode, backend: r.statusCode === 200 ? (JSON.parse(text) as { id: string }).id : `${r.statusCode}` };
}

async function backendState(id: string, service: string, address: string): Promise<{ state: string; draining: boolean; active: number }> {
  const body = (await c.get(id, '/api/backends')).body as { services: Array<{ name: string; backends: Array<{ address: string; state: string; draining: boolean; active: number }> }> };
  const b = body.services.find((s) => s.name === service)!.backends.find((x) => x.address === address)!;
  return b;
}

test('a killed backend is marked down on every node, avoided, and back up after it returns', async (t) => {
  const sessions = Array.from({ length: 60 }, (_, i) => `hc-${i}`);
  const before = new Map<string, string>();
  for (const [i, s] of sessions.entries()) before.set(s, (await get(`127.0.0.${1 + (i % 3)}`, s)).backend);
  const victim = web[1];
  const onVictim = sessions.filter((s) => before.get(s) === victim.id);
  assert.ok(onVictim.length > 5, `${onVictim.length} sessions on ${victim.id}`);

  const port = victim.port;
  const t0 = Date.now();
  await victim.close();
  const down = await Promise.all(c.nodes.map((n) => waitUntil(async () => (await backendState(n.id, 'web', victim.address)).state === 'down', 3000, `${n.id} marks it down`)));
  const downMs = Date.now() - t0;
  // Detection needs `fall` failed probes; the first may come up to one interval after the kill.
  // Printed, not asserted (a busy machine delays probes); the rule itself: test/upstream/health.test.ts.
  t.diagnostic(`marked down on all nodes after ${downMs} ms (fall ${FALL} × interval ${INTERVAL} ms; per node ${down.join(', ')} ms)`);

  // No request goes to it now: every session answers 200, the victim's sessions from another backend.
  let moved = 0;
  for (const [i, s] of sessions.entries()) {
    const r = await get(`127.0.0.${1 + (i % 3)}`, s);
    assert.equal(r.status, 200, `${s}: ${r.backend}`);
    assert.notEqual(r.backend, victim.id);
    if (before.get(s) === victim.id) moved++;
    else assert.equal(r.backend, before.get(s), `${s} keeps its healthy backend`);
  }
  assert.equal(moved, onVictim.length);

  const t1 = Date.now();
  web[1] = await httpBackend(victim.id, '127.0.0.1', port);
  await Promise.all(c.nodes.map((n) => waitUntil(async () => (await backendState(n.id, 'web', victim.address)).state === 'up', 3000, `${n.id} marks it up`)));
  const upMs = Date.now() - t1;
  t.diagnostic(`back up on all nodes after ${upMs} ms (rise ${RISE} × interval ${INTERVAL} ms); ${moved} sessions moved off it while down`);
  const fresh = new Set<string>();
  for (let i = 0; i < 60; i++) fresh.add((await get('127.0.0.2', `hc-new-${i}`)).backend);
  assert.ok(fresh.has(victim.id), 'new flows reach it again');
});

function open(host: string): Promise<{ sock: Socket; first: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect(TCP, host, () => sock.write('hello'));
    sock.setEncoding('utf8');
    sock.once('data', (d: string) => resolve({ sock, first: d }));
    sock.once('error', reject);
  });
}

test('drain via one node stops new flows to the backend on all three; open connections finish', async () => {
  // An open connection on t2 (try until one lands there).
  let held: Socket | null = null;
  for (let i = 0; i < 60 && !held; i++) {
    const { sock, first } = await open(`127.0.0.${1 + (i % 3)}`);
    if (first.startsWith('t2:')) held = sock;
    else sock.destroy();
  }
  assert.ok(held, 'a connection on t2');
  const target = tcp[1].address;
  const r = await c.post('lb1', '/api/backends/drain', { service: 'echo', address: target });
  assert.equal(r.status, 200);
  const noToken = await c.post('lb2', '/api/backends/undrain', { service: 'echo', address: target }, null);
  assert.equal(noToken.status, 401);
  await Promise.all(c.nodes.map((n) => waitUntil(async () => (await backendState(n.id, 'echo', target)).draining, 2000, `${n.id} drains`)));

  for (let i = 0; i < 45; i++) {
    const { sock, first } = await open(`127.0.0.${1 + (i % 3)}`);
    assert.ok(!first.startsWith('t2:'), `new connection ${i} avoided the draining backend`);
    sock.destroy();
  }
  // The open connection still works both ways.
  const echoed = new Promise<string>((resolve) => held.once('data', (d: string) => resolve(d)));
  held.write('still here');
  assert.equal(await echoed, 't2:still here');
  held.destroy();

  await c.post('lb3', '/api/backends/undrain', { service: 'echo', address: target });
  await Promise.all(c.nodes.map((n) => waitUntil(async () => !(await backendState(n.id, 'echo', target)).draining, 2000, `${n.id} undrains`)));
  await sleep(10);
});
