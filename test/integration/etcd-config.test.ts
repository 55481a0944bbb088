/**
 * `tandem config push` (docs/operations.md, "Pushing the services through etcd"), with a real etcd
 * and real node processes: a new backend reaches every node (time reported); a config failing
 * validation is refused with `<path>: <problem>` lines and nothing changes; a config one node
 * refuses (its own cluster section makes it invalid there) is refused whole by that node, which
 * says why in etcd and in its log and keeps serving; the revision shows on /api/cluster and the
 * dashboard; SIGHUP keeps the pushed services; a node started later starts with them.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { Etcd3 } from 'etcd3';
import { TestCluster, waitUntil } from '../helpers/cluster.js';
import { httpBackend, type Backend } from '../helpers/backends.js';
import { EtcdCluster, get, haveEtcd, startUnlisted, tandemAsync, view } from '../helpers/etcd.js';
import { readSse } from '../admin/dashboard-helpers.js';

const BASE = 22100;
const ETCD_PORT = 22910;
const WEB = 22190;
const PREFIX = '/tandem-it/config/';
const skip = haveEtcd() ? false : 'the etcd binary (Debian etcd-server) is not installed';

let etcd: EtcdCluster;
let c: TestCluster;
let b: Backend[] = [];
let kv: Etcd3;
let clusterSection: Record<string, unknown>;

function web(backends: readonly Backend[], port = WEB): Record<string, unknown> {
  return { name: 'web', protocol: 'http', port, flowKey: 'header:x-session', backends: backends.map((x) => ({ address: x.address })), healthCheck: { type: 'none' } };
}

/** A config file to push: the nodes' cluster section with these services. */
function pushFile(name: string, services: readonly Record<string, unknown>[]): string {
  const file = join(c.dir, name);
  writeFileSync(file, stringify({ cluster: clusterSection, services }));
  return file;
}

async function backendsOf(id: string): Promise<string[]> {
  const r = await c.get(id, '/api/backends');
  return ((r.body as { services: Array<{ name: string; backends: Array<{ address: string }> }> }).services.find((s) => s.name === 'web')?.backends ?? []).map((x) => x.address);
}

before(async () => {
  if (skip) return;
  etcd = new EtcdCluster({ basePort: ETCD_PORT });
  await etcd.start();
  kv = new Etcd3({ hosts: etcd.endpoints });
  b = await Promise.all(['c1', 'c2', 'c3'].map((id) => httpBackend(id)));
  c = new TestCluster({
    basePort: BASE,
    nodes: 4,
    start: false,
    cluster: { discovery: { etcd: { endpoints: etcd.endpoints, prefix: PREFIX, ttlMs: 2000 } } },
    services: [web([b[0]])],
  });
  clusterSection = { ...(c.config.cluster as Record<string, unknown>), nodes: [] };
  c.writeConfig({ ...c.config, cluster: clusterSection });
  await Promise.all(['lb1', 'lb2', 'lb3'].map((id) => startUnlisted(c, id)));
});

after(async () => {
  await c?.stop();
  kv?.close();
  await etcd?.stop();
  await Promise.all(b.map((x) => x.close()));
});

const three = ['lb1', 'lb2', 'lb3'];

test('config push of a new backend reaches every node; the revision shows on /api/cluster and the dashboard', { skip }, async (t) => {
  await waitUntil(async () => (await Promise.all(three.map((id) => view(c, id)))).every((v) => v?.nodes.length === 3 && v.nodes.every((n) => n.state === 'alive')), 20_000, 'cluster formed');
  const file = pushFile('two-backends.yaml', [web([b[0], b[1]])]);
  // Timed from the write in etcd; the command's own start-up (loading node and the etcd client)
  // comes before it and depends on the machine.
  let writtenAt = 0;
  const watcher = await kv.watch().key(`${PREFIX}config`).create();
  watcher.on('put', () => (writtenAt ||= Date.now()));
  const t0 = Date.now();
  const pushing = tandemAsync(['config', 'push', '--config', file]);
  await waitUntil(async () => (await Promise.all(three.map(backendsOf))).every((list) => list.includes(b[1].address)), 20_000, 'every node has the new backend');
  const reachedAt = Date.now();
  const r = await pushing;
  const doneAt = Date.now();
  await watcher.cancel();
  assert.ok(writtenAt > 0);
  t.diagnostic(
    `config push: written to etcd ${writtenAt - t0} ms after the command started (its start-up); every node runs the new backend ${reachedAt - writtenAt} ms after the write (aim: under 1 s); the command, which waits for every node's report, returned after ${doneAt - t0} ms`,
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^pushed revision 1: 1 services of /m);
  for (const id of three) assert.match(r.stdout, new RegExp(`^${id}: runs revision 1$`, 'm'));
  for (const id of three) {
    const v = await view(c, id);
    assert.equal(v?.configRevision, 1);
    assert.deepEqual(v?.nodes.map((n) => n.configRevision), [1, 1, 1]);
  }
  assert.equal(await c.metric('lb2', 'tandem_config_revision'), 1);

  const dash = await readSse(`http://${c.node('lb3').host}:${c.node('lb3').adminPort}/api/stream`, (evs) => evs.some((e) => e.event === 'snapshot'), 10_000);
  const snap = JSON.parse(dash.find((e) => e.event === 'snapshot')!.data) as { configRevision: number; discovery: { state: string }; nodes: Array<{ configRevision: number }> };
  assert.equal(snap.configRevision, 1);
  assert.equal(snap.discovery.state, 'connected');
  assert.deepEqual(snap.nodes.map((n) => n.configRevision), [1, 1, 1]);

  const seen = new Set<string>();
  for (let i = 0; i < 40; i++) seen.add((await get(c.node(three[i % 3]).host, WEB, `pushed-${i}`)).backend);
  assert.deepEqual([...seen].sort(), ['c1', 'c2'], 'new flows use both backends');
});

test('a config that fails validation is refused at push with <path>: <problem> lines; nothing changes', { skip }, async () => {
  const before = (await kv.get(`${PREFIX}config`).string()) ?? '';
  const file = pushFile('invalid.yaml', [{ ...web([b[0]]), port: 70000, policy: 'fastest' }]);
  const r = await tandemAsync(['config', 'push', '--config', file]);
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trim().split('\n').sort();
  assert.deepEqual(lines, ['services[0].policy: must be one of round-robin, least-connections, p2c, consistent-hash, random', 'services[0].port: must be an integer from 1 to 65535']);
  assert.equal((await kv.get(`${PREFIX}config`).string()) ?? '', before, 'etcd unchanged');
  for (const id of three) {
    assert.equal((await view(c, id))?.configRevision, 1);
    assert.ok((await backendsOf(id)).includes(b[1].address));
  }
});

test('a config one node refuses: it keeps its config, says why in etcd and its log; the others run it', { skip }, async () => {
  // Valid in the file (no node listed), but the port is lb2's admin port: lb2 refuses it whole.
  const lb2Admin = c.node('lb2').adminPort;
  const file = pushFile('clash.yaml', [web([b[0], b[1], b[2]], lb2Admin)]);
  const r = await tandemAsync(['config', 'push', '--config', file]);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /^pushed revision 2:/m);
  assert.match(r.stdout, /^lb1: runs revision 2$/m);
  assert.match(r.stdout, /^lb3: runs revision 2$/m);
  assert.match(r.stderr, /^lb2: refused revision 2; it keeps revision 1:$/m);
  assert.match(r.stderr, new RegExp(`^  services\\[0\\]\\.port: port ${lb2Admin} is the adminPort of node lb2$`, 'm'));
  const status = JSON.parse((await kv.get(`${PREFIX}status/lb2`).string())!) as { applied: number; refused: { revision: number; problems: string[] } };
  assert.equal(status.applied, 1);
  assert.deepEqual(status.refused, { revision: 2, problems: [`services[0].port: port ${lb2Admin} is the adminPort of node lb2`] });
  assert.match(readFileSync(c.node('lb2').logFile, 'utf8'), /pushed config revision 2 refused/);
  const v2 = await view(c, 'lb2');
  assert.equal(v2?.configRevision, 1);
  assert.equal((v2 as unknown as { configRefused: { revision: number } }).configRefused.revision, 2);
  assert.equal(await c.metric('lb2', 'tandem_config_refusals_total'), 1);
  assert.equal((await get(c.node('lb2').host, WEB, 'still-serving')).status, 200, 'lb2 serves with its config');

  // Back to one config everywhere.
  const good = pushFile('three-backends.yaml', [web(b)]);
  const r3 = await tandemAsync(['config', 'push', '--config', good]);
  assert.equal(r3.status, 0, r3.stderr);
  for (const id of three) assert.match(r3.stdout, new RegExp(`^${id}: runs revision 3$`, 'm'));
  const st = await tandemAsync(['config', 'status', '--config', good]);
  assert.equal(st.status, 0, st.stderr);
  assert.match(st.stdout, /^revision 3: 1 services, pushed .* by .*three-backends\.yaml$/m);
  for (const id of three) assert.match(st.stdout, new RegExp(`^${id}: runs revision 3$`, 'm'));
});

test('SIGHUP keeps the pushed services; a node started later starts with them', { skip }, async () => {
  c.node('lb1').process!.kill('SIGHUP');
  await new Promise((r) => setTimeout(r, 1000));
  assert.deepEqual((await backendsOf('lb1')).sort(), b.map((x) => x.address).sort(), 'the file has one backend, the pushed config three');
  assert.equal((await view(c, 'lb1'))?.configRevision, 3);
  await startUnlisted(c, 'lb4');
  assert.equal((await view(c, 'lb4'))?.configRevision, 3);
  assert.deepEqual((await backendsOf('lb4')).sort(), b.map((x) => x.address).sort());
});

test('deleting the pushed config sends every node back to the services of its file', { skip }, async () => {
  await kv.delete().key(`${PREFIX}config`);
  const all = ['lb1', 'lb2', 'lb3', 'lb4'];
  await waitUntil(async () => (await Promise.all(all.map(backendsOf))).every((l) => l.length === 1 && l[0] === b[0].address), 10_000, 'file services everywhere');
  for (const id of all) assert.equal((await view(c, id))?.configRevision, null);
});
