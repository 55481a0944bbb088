/**
 * EtcdDiscovery against a real etcd (the `etcd` binary), in one process: registration under a
 * lease, the watched view of members, config and statuses, bad values refused and counted, the own
 * record put back when deleted, graceful leave (revoke) against lease expiry, reconnection after
 * etcd restarts, a start while etcd is down, and authentication by user/password and by client
 * certificate.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Etcd3, Range } from 'etcd3';
import { EtcdDiscovery, type DiscoveryState, type EtcdSettings } from '../../../src/cluster/discovery/etcd-discovery.js';
import { DiscoveryMetrics } from '../../../src/cluster/discovery/metrics.js';
import type { ConfigDoc, ConfigStatus, MemberRecord } from '../../../src/cluster/discovery/records.js';
import { encodeConfig } from '../../../src/cluster/discovery/records.js';
import { EtcdCluster, haveEtcd, makeEtcdTls } from '../../helpers/etcd.js';
import { waitFor } from '../fixtures/cluster-harness.js';

const skip = haveEtcd() ? false : 'the etcd binary (Debian etcd-server) is not installed';
const running: EtcdCluster[] = [];
const sessions: EtcdDiscovery[] = [];

after(async () => {
  await Promise.all(sessions.map((s) => s.stop(false)));
  await Promise.all(running.map((e) => e.stop()));
});

async function startEtcd(basePort: number, tls = false): Promise<EtcdCluster> {
  const probe = new EtcdCluster({ basePort });
  const e = tls ? new EtcdCluster({ basePort, tls: makeEtcdTls(probe.dir) }) : probe;
  running.push(e);
  await e.start();
  return e;
}

interface Seen {
  members: ReadonlyMap<string, MemberRecord>;
  config: ConfigDoc | null | undefined;
  statuses: ReadonlyMap<string, ConfigStatus>;
  states: DiscoveryState[];
  registry: Registry;
  d: EtcdDiscovery;
}

const record = (id: string): MemberRecord => ({
  id,
  cluster: 'unit',
  host: `127.0.0.${id.slice(2)}`,
  peerPort: 7000,
  adminPort: 9000,
  weight: 1,
  phase: 'joining',
  incarnation: `${id.slice(2).padStart(2, '0')}aabbccddeeff00`,
  startedAt: Date.now(),
  version: 'test',
});

function session(id: string, settings: EtcdSettings): Seen {
  const registry = new Registry();
  const seen = { members: new Map(), config: undefined, statuses: new Map(), states: [], registry } as unknown as Seen;
  seen.d = new EtcdDiscovery({
    settings,
    cluster: 'unit',
    self: record(id),
    logger: pino({ level: process.env.TANDEM_TEST_LOG ?? 'silent' }),
    metrics: new DiscoveryMetrics(registry),
    onMembers: (m) => (seen.members = new Map(m)),
    onConfig: (doc) => (seen.config = doc),
    onStatuses: (s) => (seen.statuses = new Map(s)),
    onState: (state) => seen.states.push(state),
    tuning: { degradedAfterMs: 300, retryBaseMs: 50, retryMaxMs: 500 },
  });
  sessions.push(seen.d);
  return seen;
}

const plain = (e: EtcdCluster, prefix: string): EtcdSettings => ({ endpoints: e.endpoints, prefix, ttlMs: 2000, dialTimeoutMs: 2000, auth: null, tls: null });

async function metric(r: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = r.getSingleMetric(name);
  if (!m) return 0;
  return (await m.get()).values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((a, v) => a + v.value, 0);
}

test('registration, the watched view, bad values, the own record, leave and expiry', { skip }, async (t) => {
  const e = await startEtcd(22950);
  const prefix = '/unit/view/';
  const kv = new Etcd3({ hosts: e.endpoints });
  try {
    const a = session('lb1', plain(e, prefix));
    const b = session('lb2', plain(e, prefix));
    assert.equal(await a.d.start(5000), true);
    assert.equal(await b.d.start(5000), true);
    assert.equal(a.d.state, 'connected');
    await waitFor(() => a.members.has('lb2') && b.members.has('lb1'), 5000, 'both see both');
    assert.equal(a.members.get('lb2')?.phase, 'joining');
    assert.equal(await b.d.setPhase('serving'), true);
    await waitFor(() => a.members.get('lb2')?.phase === 'serving', 5000, 'phase change seen');
    b.d.reportStatus({ node: 'lb2', applied: 7, refused: null, at: 'now' });
    await waitFor(() => a.statuses.get('lb2')?.applied === 7, 5000, 'status seen');

    await kv.put(`${prefix}config`).value(encodeConfig({ revision: 7, services: [{ name: 'web' }], pushedAt: 'now', by: 'test' }));
    await waitFor(() => a.config?.revision === 7 && b.config?.revision === 7, 5000, 'config seen');

    // Garbage under the prefix: refused, counted, nothing else changes.
    await kv.put(`${prefix}members/lb9`).value('{not json');
    await kv.put(`${prefix}members/lb8`).value(JSON.stringify({ ...record('lb7'), format: 1 }));
    await kv.put(`${prefix}config`).value('[]');
    await kv.put(`${prefix}status/lb1`).value('"x"');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await metric(a.registry, 'tandem_discovery_bad_records_total', { kind: 'member' }), 2);
    assert.equal(await metric(a.registry, 'tandem_discovery_bad_records_total', { kind: 'config' }), 1);
    assert.ok((await metric(a.registry, 'tandem_discovery_bad_records_total', { kind: 'status' })) >= 1);
    assert.deepEqual([...a.members.keys()].sort(), ['lb1', 'lb2']);
    assert.equal(a.config?.revision, 7, 'a malformed config leaves the last good one in force');

    // Someone deletes lb1's own record: it puts it back.
    let deletedSeen = false;
    const watcher = await kv.watch().key(`${prefix}members/lb1`).create();
    watcher.on('delete', () => (deletedSeen = true));
    await kv.delete().key(`${prefix}members/lb1`);
    await waitFor(() => deletedSeen, 5000, 'the delete went through');
    let restored: string | null = null;
    for (let i = 0; i < 100 && restored === null; i++) {
      await new Promise((r) => setTimeout(r, 50));
      restored = await kv.get(`${prefix}members/lb1`).string();
    }
    await watcher.cancel();
    assert.ok(restored, 'own record put back');
    await waitFor(() => b.members.has('lb1'), 5000, 'the others see it again');

    // Graceful leave: the keys go at once. Passive stop: they go when the lease expires.
    const t0 = Date.now();
    await b.d.stop(true);
    await waitFor(() => !a.members.has('lb2'), 2000, 'revoked at once');
    const revokeMs = Date.now() - t0;
    assert.equal(await kv.get(`${prefix}status/lb2`).string(), null, 'the status key went with the lease');
    const c = session('lb3', plain(e, prefix));
    await c.d.start(5000);
    await waitFor(() => a.members.has('lb3'), 5000, 'lb3 registered');
    const t1 = Date.now();
    await c.d.stop(false);
    await waitFor(() => !a.members.has('lb3'), 10_000, 'lease expired');
    const expiryMs = Date.now() - t1;
    assert.ok(expiryMs >= 1000, `the record stays until the TTL runs out (${expiryMs} ms)`);
    t.diagnostic(`revoke: ${revokeMs} ms; expiry after a passive stop: ${expiryMs} ms (ttl 2 s)`);
    assert.equal(await metric(a.registry, 'tandem_discovery_members'), 1);
  } finally {
    kv.close();
  }
});

test('etcd restarts: degraded, then connected again with the records back; a start while etcd is down', { skip }, async (t) => {
  const e = await startEtcd(22952);
  const prefix = '/unit/restart/';
  const a = session('lb1', plain(e, prefix));
  assert.equal(await a.d.start(5000), true);
  await e.kill(0);
  const t0 = Date.now();
  await waitFor(() => a.d.state === 'degraded', 10_000, 'degraded');
  t.diagnostic(`degraded ${Date.now() - t0} ms after etcd died (grace 300 ms in this test)`);
  assert.equal(await metric(a.registry, 'tandem_discovery_degraded'), 1);
  assert.ok(a.d.lastError !== null);

  // A second session starts while etcd is down: it gives up waiting, and registers later.
  const b = session('lb2', plain(e, prefix));
  assert.equal(await b.d.start(300), false);
  assert.equal(b.d.state, 'degraded');

  // Longer than twice the TTL: the lease is lost client-side and granted anew.
  await new Promise((r) => setTimeout(r, 4500));
  const t1 = Date.now();
  await e.startMember(0);
  await waitFor(() => a.d.state === 'connected' && b.d.state === 'connected', 20_000, 'both connected');
  await waitFor(() => a.members.has('lb1') && a.members.has('lb2') && b.members.has('lb1'), 10_000, 'both registered');
  t.diagnostic(`connected again ${Date.now() - t1} ms after etcd was started again`);
  assert.ok((await metric(a.registry, 'tandem_discovery_sessions_total')) >= 2, 'a new session');
  assert.ok((await metric(a.registry, 'tandem_discovery_errors_total')) >= 1);
  assert.deepEqual(a.states.filter((s, i) => s !== a.states[i - 1]).slice(0, 3), ['connected', 'degraded', 'connected']);
});

test('authentication: user and password; a wrong password is refused and reported', { skip }, async () => {
  const e = await startEtcd(22954);
  const prefix = '/unit/auth/';
  const root = new Etcd3({ hosts: e.endpoints });
  await root.role('root').create();
  await root.user('root').create('root-password');
  await root.user('root').addRole('root');
  await root.role('tandem').create();
  await root.role('tandem').grant({ permission: 'Readwrite', range: Range.prefix(prefix) });
  await root.user('tandem').create('tandem-password');
  await root.user('tandem').addRole('tandem');
  await root.auth.authEnable();
  root.close();

  const good = session('lb1', { ...plain(e, prefix), auth: { username: 'tandem', password: 'tandem-password' } });
  assert.equal(await good.d.start(5000), true);
  await waitFor(() => good.members.has('lb1'), 5000, 'registered with a password');
  const bad = session('lb2', { ...plain(e, prefix), auth: { username: 'tandem', password: 'wrong' } });
  assert.equal(await bad.d.start(1500), false);
  assert.equal(bad.d.state, 'degraded');
  assert.match(bad.d.lastError ?? '', /auth|password|invalid/i);
  const anonymous = new Etcd3({ hosts: e.endpoints });
  await assert.rejects(anonymous.get(`${prefix}members/lb1`).string(), 'etcd refuses the anonymous');
  anonymous.close();
});

test('authentication: client certificates over TLS', { skip }, async () => {
  const e = await startEtcd(22956, true);
  const prefix = '/unit/tls/';
  const tls = e.tls!;
  // By host name (the server certificate names localhost): gRPC sends the endpoint's host as the
  // TLS server name, which Node 26 refuses to be an IP address — said at once, clearly.
  const byName = e.endpoints.map((u) => u.replace('127.0.0.1', 'localhost'));
  if (Number(process.versions.node.split('.')[0]) >= 26) {
    const byIp = session('lb3', { ...plain(e, prefix), tls: { ca: tls.ca, cert: tls.clientCert, key: tls.clientKey } });
    assert.equal(await byIp.d.start(1500), false);
    assert.equal(byIp.d.state, 'degraded');
  }
  const withCert = session('lb1', { ...plain(e, prefix), endpoints: byName, tls: { ca: tls.ca, cert: tls.clientCert, key: tls.clientKey } });
  assert.equal(await withCert.d.start(5000), true);
  await waitFor(() => withCert.members.has('lb1'), 5000, 'registered over TLS');
  const noCert = session('lb2', { ...plain(e, prefix), endpoints: byName, tls: { ca: tls.ca, cert: null, key: null } });
  assert.equal(await noCert.d.start(1500), false, 'no client certificate: refused');
  assert.equal(noCert.d.state, 'degraded');
});
