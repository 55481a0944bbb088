/**
 * etcd is never on the path of a flow (docs/operations.md, "When etcd is away"), with a real etcd
 * and real node processes. The file lists lb1-lb3 and sets discovery; lb4 is found through etcd
 * only. etcd killed under load: no request fails, /readyz stays 200, the degraded metric and the
 * dashboard's flag say so, the member sets stay (lb4 too, past its lease's TTL), heartbeats still
 * judge peers; a node restarted while etcd is down starts from its file's nodes, and registers
 * again when etcd returns.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { TestCluster, waitUntil, sleep } from '../helpers/cluster.js';
import { httpBackend, type Backend } from '../helpers/backends.js';
import { EtcdCluster, get, haveEtcd, load, sees, startUnlisted, table, view } from '../helpers/etcd.js';
import { readSse } from '../admin/dashboard-helpers.js';

const BASE = 22200;
const ETCD_PORT = 22920;
const WEB = 22290;
const PREFIX = '/tandem-it/outage/';
const TTL_MS = 2000;
const skip = haveEtcd() ? false : 'the etcd binary (Debian etcd-server) is not installed';

let etcd: EtcdCluster;
let c: TestCluster;
let backends: Backend[] = [];

before(async () => {
  if (skip) return;
  etcd = new EtcdCluster({ basePort: ETCD_PORT });
  await etcd.start();
  backends = await Promise.all(['o1', 'o2'].map((id) => httpBackend(id)));
  c = new TestCluster({
    basePort: BASE,
    nodes: 4,
    start: false,
    cluster: { discovery: { etcd: { endpoints: etcd.endpoints, prefix: PREFIX, ttlMs: TTL_MS } } },
    services: [{ name: 'web', protocol: 'http', port: WEB, flowKey: 'header:x-session', backends: backends.map((b) => ({ address: b.address })), healthCheck: { type: 'none' } }],
  });
  // The file lists lb1-lb3; lb4 exists only in etcd.
  const cluster = c.config.cluster as { nodes: unknown[] };
  c.writeConfig({ ...c.config, cluster: { ...cluster, nodes: cluster.nodes.slice(0, 3) } });
  await Promise.all(['lb1', 'lb2', 'lb3'].map((id) => c.start(id)));
  await startUnlisted(c, 'lb4');
});

after(async () => {
  await c?.stop();
  await etcd?.stop();
  await Promise.all(backends.map((b) => b.close()));
});

const all = ['lb1', 'lb2', 'lb3', 'lb4'];
const host = (id: string) => c.node(id).host;

async function etcdMembers(): Promise<string[]> {
  const kv = new Etcd3({ hosts: etcd.endpoints });
  try {
    return (await kv.getAll().prefix(`${PREFIX}members/`).keys()).map((k) => k.slice(`${PREFIX}members/`.length)).sort();
  } finally {
    kv.close();
  }
}

test('etcd killed under load: no failed request, /readyz 200, degraded in the metric and on the dashboard, membership kept', { skip }, async (t) => {
  await waitUntil(async () => (await Promise.all(all.map((id) => sees(c, id, all)))).every(Boolean), 20_000, 'four nodes, all serving');
  const sessions = Array.from({ length: 80 }, (_, i) => `outage-${i}`);
  const backendOf = new Map<string, string>();
  for (let i = 0; i < sessions.length; i++) backendOf.set(sessions[i], (await get(host(all[i % 4]), WEB, sessions[i])).backend);
  const owned4 = [...(await table(c, 'lb1', 'web'))].filter(([, f]) => f.primary === 'lb4').length;

  const run = load({ hosts: () => all.map(host), port: WEB, sessions, backendOf, workers: 6, maxMs: 30_000 });
  await sleep(500);
  const t0 = Date.now();
  await etcd.kill(0);
  await waitUntil(async () => (await Promise.all(all.map((id) => c.metric(id, 'tandem_discovery_degraded')))).every((v) => v === 1), 15_000, 'every node reports degraded');
  const degradedMs = Date.now() - t0;
  for (const id of all) {
    assert.equal((await c.get(id, '/readyz')).status, 200, `${id} stays ready`);
    assert.equal((await view(c, id))?.discovery?.state, 'degraded');
  }
  const dash = await readSse(`http://${host('lb2')}:${c.node('lb2').adminPort}/api/stream`, (evs) => evs.some((e) => e.event === 'snapshot'), 10_000);
  const snap = JSON.parse(dash.find((e) => e.event === 'snapshot')!.data) as { discovery: { state: string; error: string | null } };
  assert.equal(snap.discovery.state, 'degraded', 'the dashboard banner shows');
  // Past the TTL of every lease: nothing in the membership changes, lb4 (known from etcd only) included.
  await sleep(TTL_MS + 1500);
  for (const id of all) assert.ok(await sees(c, id, all), `${id} still sees all four alive`);
  const res = await run.stop();
  t.diagnostic(`etcd killed: every node flagged degraded after ${degradedMs} ms; ${res.ok} requests ok, ${res.failed} failed, ${res.moved} changed backend over ${Date.now() - t0} ms of outage; lb4 (etcd-only) primary of ${owned4}/80 flows, still a member`);
  assert.equal(res.failed, 0, res.failures.join('\n'));
  assert.equal(res.moved, 0);
});

test('with etcd down heartbeats judge; a node restarted meanwhile starts from its file, and joins etcd when it returns', { skip }, async (t) => {
  const sessions = Array.from({ length: 40 }, (_, i) => `restart-${i}`);
  const backendOf = new Map<string, string>();
  for (const s of sessions) backendOf.set(s, (await get(host('lb1'), WEB, s)).backend);
  const stay = ['lb1', 'lb2', 'lb4'];
  const run = load({ hosts: () => stay.map(host), port: WEB, sessions, backendOf, workers: 4, maxMs: 60_000 });
  await sleep(300);

  // kill -9 lb3: its peers see it dead by heartbeats alone and re-protect its flows.
  await c.kill('lb3');
  // Each flow's owner re-protects on its own judgement and replicates; each node judges lb3 dead
  // on its own heartbeats, which may be a round later than the table shows it.
  await waitUntil(
    async () => (await Promise.all(stay.map((id) => table(c, id, 'web')))).every((m) => [...m.values()].every((f) => f.primary !== 'lb3' && f.backup !== 'lb3' && f.backup !== null)),
    10_000,
    're-protected without etcd',
  );
  await waitUntil(async () => (await Promise.all(stay.map((id) => view(c, id)))).every((v) => v?.nodes.find((n) => n.id === 'lb3')?.state === 'dead'), 10_000, 'lb3 seen dead by heartbeats alone');

  // Restarted while etcd is still down: the file's nodes (lb1-lb3) are enough to sync and serve.
  const r0 = Date.now();
  await c.start('lb3');
  const v3 = await view(c, 'lb3');
  t.diagnostic(`lb3 restarted without etcd: ready after ${Date.now() - r0} ms; it knows ${v3?.nodes.map((n) => n.id).join(', ')}`);
  assert.deepEqual(v3?.nodes.map((n) => n.id), ['lb1', 'lb2', 'lb3'], 'the file has no lb4: lb3 learns it from etcd later');
  assert.notEqual(v3?.discovery?.state, 'connected');
  await waitUntil(async () => (await Promise.all(['lb1', 'lb2', 'lb3'].map((id) => view(c, id)))).every((v) => v?.nodes.filter((n) => ['lb1', 'lb2', 'lb3'].includes(n.id)).every((n) => n.state === 'alive')), 10_000, 'lb3 alive again');

  // etcd returns: every node reconnects, lb3 registers, lb4 and lb3 meet.
  const e0 = Date.now();
  await etcd.startMember(0);
  await waitUntil(async () => (await Promise.all(all.map((id) => c.metric(id, 'tandem_discovery_degraded').catch(() => 1)))).every((v) => v === 0), 20_000, 'every node connected again');
  const reconnectMs = Date.now() - e0;
  await waitUntil(async () => JSON.stringify(await etcdMembers().catch(() => [])) === JSON.stringify(all), 15_000, 'all four registered');
  await waitUntil(async () => (await Promise.all(all.map((id) => sees(c, id, all)))).every(Boolean), 20_000, 'lb3 and lb4 see each other');
  const joinedMs = Date.now() - e0;
  const res = await run.stop();
  t.diagnostic(`etcd back: every node connected after ${reconnectMs} ms (etcd's own start included), all four registered and linked after ${joinedMs} ms; load: ${res.ok} ok, ${res.failed} failed, ${res.moved} changed backend`);
  assert.equal(res.failed, 0, res.failures.join('\n'));
  assert.equal(res.moved, 0);
  for (const id of all) assert.equal((await c.get(id, '/readyz')).status, 200);
});
