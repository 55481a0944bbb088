/**
 * Issue 9 acceptance: `tandem status`, hot reload (SIGHUP and the API; valid and invalid), and a
 * graceful SIGTERM under load. Real node processes on 127.0.0.1-3, real backends.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { startCluster, waitUntil, sleep, type TestCluster } from '../helpers/cluster.js';
import { httpBackend, tcpBackend, type Backend } from '../helpers/backends.js';

const BIN = new URL('../../bin/tandem.js', import.meta.url).pathname;
let c: TestCluster;
let web: Backend[] = [];
let echo: Backend;
const HTTP_PORT = 17990;
const TCP_PORT = 17991;

function services(webBackends: Backend[]) {
  return [
    { name: 'web', protocol: 'http', port: HTTP_PORT, flowKey: 'header:x-session', backends: webBackends.map((b) => ({ address: b.address })), healthCheck: { type: 'tcp', intervalMs: 200 } },
    { name: 'echo', protocol: 'tcp', port: TCP_PORT, flowKey: 'connection', backends: [{ address: echo.address }] },
  ];
}

before(async () => {
  web = await Promise.all(['w1', 'w2'].map((id) => httpBackend(id)));
  echo = await tcpBackend('e1');
  c = await startCluster({ basePort: 17900, services: services(web), logLevel: 'info' });
});
after(async () => {
  await c?.stop();
  await Promise.all([...web, echo].map((b) => b?.close()));
});

/**
 * Runs the CLI without blocking this process: a spawnSync of several seconds on a busy machine
 * would leave the admin API's idle keep-alive connections unread until the server closed them, and
 * the next fetch would go out on a closed socket.
 */
function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ status: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

async function get(host: string, session: string): Promise<{ status: number; backend: string }> {
  const r = await request(`http://${host}:${HTTP_PORT}/`, { headers: { 'x-session': session }, headersTimeout: 5000, bodyTimeout: 5000 });
  const text = await r.body.text();
  return { status: r.statusCode, backend: r.statusCode === 200 ? (JSON.parse(text) as { id: string }).id : `${String(r.headers['tandem-error'])} ${text}` };
}

test('tandem status and tandem flow show the cluster, in text and JSON', async () => {
  await get('127.0.0.2', 'status-session');
  const admin = `127.0.0.1:${c.node('lb1').adminPort}`;
  const r = await cli(['status', '--admin', admin]);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.match(lines[0], /^cluster test \(as seen by lb1\)$/);
  assert.match(lines[1], /^NODE\s+STATE\s+WEIGHT\s+READY\s+FLOWS\s+PRIMARY\s+BACKUP\s+RATE\/S\s+REPL LAG$/);
  for (const id of ['lb1', 'lb2', 'lb3']) assert.ok(lines.some((l) => new RegExp(`^${id}\\s+alive\\s+1\\s+yes\\s+\\d+`).test(l)), `${id} row:\n${r.stdout}`);
  assert.ok(r.stdout.includes('service web (http, round-robin)'));
  for (const b of web) assert.ok(r.stdout.includes(b.address));
  const j = await cli(['status', '--admin', admin, '--json']);
  const parsed = JSON.parse(j.stdout) as { nodes: Array<{ id: string; state: string; status: { flows: { total: number } } }> };
  assert.deepEqual(parsed.nodes.map((n) => [n.id, n.state]), [['lb1', 'alive'], ['lb2', 'alive'], ['lb3', 'alive']]);
  assert.ok(parsed.nodes.every((n) => n.status.flows.total >= 1));

  const f = await cli(['flow', '--admin', admin, '--service', 'web', '--key', 'status-session', '--json']);
  assert.equal(f.status, 0, f.stderr);
  const flow = JSON.parse(f.stdout) as { flow: { primary: string; backup: string; backend: string }; ranking: Array<{ id: string }> };
  const truth = await c.flow('lb1', 'web', 'status-session');
  assert.deepEqual([flow.flow.primary, flow.flow.backup, flow.flow.backend], [truth!.primary, truth!.backup, truth!.backend]);
  assert.equal(flow.ranking[0].id, truth!.primary);
});

test('reload: an added backend gets new flows while a 5-second stream continues; invalid configs are refused', async (t) => {
  // A TCP stream through lb2 that echoes a chunk every 50 ms for 5 s across the reload.
  const sock = connect(TCP_PORT, '127.0.0.2');
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  let echoed = 0;
  sock.on('data', (d: Buffer) => (echoed += d.length));
  let sent = 0;
  const chunk = Buffer.alloc(1000, 0x62);
  const streaming = (async () => {
    for (let i = 0; i < 100; i++) {
      sock.write(chunk);
      sent += chunk.length;
      await sleep(50);
    }
  })();

  await sleep(500);
  const w3 = await httpBackend('w3');
  web.push(w3);
  c.writeConfig({ ...c.config, services: services(web) });
  for (const n of c.nodes) n.process!.kill('SIGHUP');
  await waitUntil(async () => {
    const views = await Promise.all(c.nodes.map((n) => c.get(n.id, '/api/backends')));
    return views.every((v) => JSON.stringify(v.body).includes(w3.address));
  }, 3000, 'all nodes reloaded');

  const seen = new Set<string>();
  for (let i = 0; i < 60; i++) {
    const r = await get(`127.0.0.${1 + (i % 3)}`, `after-reload-${i}`);
    assert.equal(r.status, 200);
    seen.add(r.backend);
  }
  assert.ok(seen.has('w3'), `new flows reach the added backend (saw ${[...seen].join(',')})`);

  // An invalid config, by SIGHUP and by the API: refused whole, the node keeps its config.
  const good = c.config;
  c.writeConfig({ ...good, services: [{ ...services(web)[0], port: 70000 }] });
  c.node('lb1').process!.kill('SIGHUP');
  const api = await c.post('lb2', '/api/reload', {});
  assert.equal(api.status, 422);
  assert.deepEqual((api.body as { problems: string[] }).problems, ['services[0].port: must be an integer from 1 to 65535']);
  const unauth = await c.post('lb2', '/api/reload', {}, 'wrong-token-wrong-token');
  assert.equal(unauth.status, 401);
  await waitUntil(() => readFileSync(c.node('lb1').logFile, 'utf8').includes('services[0].port: must be an integer from 1 to 65535'), 3000, 'the refusal is logged');
  assert.equal((await get('127.0.0.1', 'after-bad-reload')).status, 200, 'still serving');
  c.writeConfig(good);

  await streaming;
  await waitUntil(() => echoed === sent, 3000, 'every streamed byte echoed');
  sock.end();
  t.diagnostic(`stream: ${sent} bytes sent and echoed across two reloads`);
});

test('SIGTERM under load: no failed request, flows handed over to their backups', async (t) => {
  const sessions = Array.from({ length: 30 }, (_, i) => `drain-${i}`);
  const backendOf = new Map<string, string>();
  for (const s of sessions) backendOf.set(s, (await get('127.0.0.1', s)).backend);
  const victim = 'lb3';
  const owned = (await Promise.all(sessions.map((s) => c.flow('lb1', 'web', s)))).filter((f) => f?.primary === victim).length;

  let failed = 0;
  const failures: string[] = [];
  let ok = 0;
  let moved = 0;
  const stopAt = Date.now() + 3000;
  const load = Array.from({ length: 10 }, async (_, w) => {
    for (let i = 0; Date.now() < stopAt && i < 2000; i++) {
      const s = sessions[(w * 7 + i) % sessions.length];
      // Clients use the nodes that stay; the stopping node finishes what it has in flight.
      const r = await get(`127.0.0.${1 + (i % 2)}`, s).catch((err: Error) => ({ status: 0, backend: err.message }));
      if (r.status === 200) {
        ok++;
        if (r.backend !== backendOf.get(s)) moved++;
      } else {
        failed++;
        failures.push(`${Date.now() - stopAt + 3000}ms ${s} via 127.0.0.${1 + (i % 2)}: ${r.status} ${r.backend}`);
      }
    }
  });
  await sleep(500);
  const exited = new Promise<number | null>((resolve) => c.node(victim).process!.once('exit', (code) => resolve(code)));
  c.node(victim).process!.kill('SIGTERM');
  const code = await exited;
  await Promise.all(load);
  t.diagnostic(`SIGTERM of ${victim} (primary of ${owned}/30 sessions): ${ok} ok, ${failed} failed, ${moved} changed backend; exit code ${code}`);
  assert.equal(code, 0);
  assert.equal(failed, 0, failures.slice(0, 10).join('\n'));
  assert.equal(moved, 0);
  for (const s of sessions) {
    const f = await c.flow('lb1', 'web', s);
    assert.ok(f && f.primary !== victim && f.backup !== victim, `${s} handed over`);
  }
  await c.start(victim);
});
