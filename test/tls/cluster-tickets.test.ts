/**
 * TLS sessions that resume on any node: three node processes, each a real Cluster (authenticated
 * control links) with the real ticket-key share and the TLS listener factory (fixtures/tls-node.ts;
 * the HTTP engine does not call the factory yet, so this is not `tandem start`). openssl s_client
 * saves a session on one node and offers it to the others: `sessionTickets: cluster` resumes
 * everywhere, `node` only where it was issued; a session of the previous key epoch still resumes
 * after a rotation, one two epochs old does not; a restarted node gets the keys on link-up; the
 * key holder's death moves the role. Ports 26100-26129.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterSettings } from '../../src/cluster/cluster-options.js';
import { spawnTlsNode, type KeyView, type TlsNode } from './tls-nodes.js';
import { curl, sClient } from './clients.js';

const FIX = fileURLToPath(new URL('./fixtures/', import.meta.url));
const ROTATION_MS = 8000;
const CLUSTER_PORT = 26110;
const NODE_PORT = 26111;
const dir = mkdtempSync(join(tmpdir(), 'tandem-tls-cluster-'));

const settings: ClusterSettings = {
  name: 'tls-test',
  secret: 'tls-cluster-test-secret-0123456789',
  heartbeatMs: 100,
  failureTimeoutMs: 600,
  snapshotTimeoutMs: 1500,
  tls: null,
  nodes: [1, 2, 3].map((i) => ({ id: `lb${i}`, host: `127.0.0.${i}`, peerPort: 26100 + i })),
};
const options = (i: number) => ({
  host: `127.0.0.${i}`,
  clusterPort: CLUSTER_PORT,
  nodePort: NODE_PORT,
  rotationMs: ROTATION_MS,
  certificates: [
    { cert: join(FIX, 'a.crt'), key: join(FIX, 'a.key') },
    { cert: join(FIX, 'b.crt'), key: join(FIX, 'b.key') },
  ],
});

const nodes: TlsNode[] = [];
const host = (n: TlsNode) => n.options.host;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, fn: () => Promise<T | null | false>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== null && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** All live nodes hold the same cluster-made keys for the current epoch (and the next). */
async function agreedKeys(live: TlsNode[]): Promise<KeyView> {
  return waitFor('the nodes to agree on cluster ticket keys', async () => {
    const views = await Promise.all(live.map((n) => n.call<KeyView>('keys')));
    const first = JSON.stringify(views[0].keys);
    const ok = views.every((v) => JSON.stringify(v.keys) === first && v.keys.some((k) => k.epoch === v.epoch && k.writer !== '') && v.keys.some((k) => k.epoch === v.epoch + 1));
    return ok ? views[0] : null;
  });
}

/** Wait until the wall clock is early in an epoch, so a test step does not straddle a boundary. */
async function earlyInEpoch(): Promise<number> {
  for (;;) {
    const into = Date.now() % ROTATION_MS;
    if (into > 300 && into < ROTATION_MS / 3) return Math.floor(Date.now() / ROTATION_MS);
    await sleep(Math.min(200, (ROTATION_MS - into + 350) % ROTATION_MS || 50));
  }
}

async function untilEpoch(e: number): Promise<void> {
  while (Math.floor(Date.now() / ROTATION_MS) < e || Date.now() % ROTATION_MS < 400) await sleep(100);
}

before(async () => {
  for (const i of [1, 2, 3]) nodes.push(spawnTlsNode(settings, `lb${i}`, options(i)));
  await Promise.all(nodes.map((n) => n.event('started')));
  await Promise.all(nodes.map((n) => n.event('ready')));
});

after(async () => {
  await Promise.all(nodes.map((n) => n.kill()));
});

test('every node serves the right certificate per name (curl --resolve to each node)', async () => {
  for (const n of nodes) {
    for (const [name, cn] of [['a.test', 'a.test'], ['b.test', 'b.test'], ['x.a.test', 'a.test'], ['other.test', 'a.test']]) {
      const r = await curl(name, CLUSTER_PORT, host(n));
      assert.equal(r.status, 200, `${n.id} ${name}`);
      assert.equal(r.subject, cn, `${n.id} ${name}`);
      assert.match(r.body, new RegExp(`\\|${n.id}$`));
    }
  }
});

test('sessionTickets cluster: a session from node 1 resumes on nodes 2 and 3, TLS 1.2 and 1.3', async () => {
  await agreedKeys(nodes);
  await earlyInEpoch();
  for (const version of ['-tls1_2', '-tls1_3'] as const) {
    for (const name of ['a.test', 'b.test']) {
      const sess = join(dir, `cluster${version}-${name}`);
      const first = await sClient(host(nodes[0]), CLUSTER_PORT, { servername: name, version, sessOut: sess });
      assert.equal(first.session, 'New', first.output);
      for (const n of nodes.slice(1)) {
        const r = await sClient(host(n), CLUSTER_PORT, { servername: name, version, sessIn: sess, input: 'GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n' });
        assert.equal(r.session, 'Reused', `${version} ${name} on ${n.id}: ${r.output}`);
        assert.match(r.output, new RegExp(`\\|resumed\\|${n.id}`));
      }
    }
  }
});

test('sessionTickets node: a session from node 1 resumes on node 1 only', async () => {
  for (const version of ['-tls1_2', '-tls1_3'] as const) {
    const sess = join(dir, `node${version}`);
    assert.equal((await sClient(host(nodes[0]), NODE_PORT, { servername: 'a.test', version, sessOut: sess })).session, 'New');
    for (const n of nodes.slice(1)) {
      const r = await sClient(host(n), NODE_PORT, { servername: 'a.test', version, sessIn: sess });
      assert.equal(r.session, 'New', `${version} must not resume on ${n.id}`);
    }
    assert.equal((await sClient(host(nodes[0]), NODE_PORT, { servername: 'a.test', version, sessIn: sess })).session, 'Reused', `${version} resumes where it was issued`);
  }
});

test('after a rotation, sessions of the previous key epoch still resume on every node; two epochs later they do not', async () => {
  // Sessions made within one epoch e (retried if a slow step straddled a boundary).
  let e = -1;
  const sessions: Record<string, string> = {};
  for (let attempt = 0; attempt < 5 && e < 0; attempt++) {
    const at = await earlyInEpoch();
    for (const version of ['-tls1_2', '-tls1_3'] as const) {
      sessions[version] = join(dir, `rotation${version}`);
      assert.equal((await sClient(host(nodes[0]), CLUSTER_PORT, { servername: 'a.test', version, sessOut: sessions[version] })).session, 'New');
    }
    if (Math.floor(Date.now() / ROTATION_MS) === at) e = at;
  }
  assert.ok(e >= 0, 'sessions made within one epoch');
  await untilEpoch(e + 1);
  const view = await agreedKeys(nodes);
  assert.ok(view.epoch >= e + 1);
  for (const version of ['-tls1_2', '-tls1_3'] as const) {
    for (const n of nodes) {
      const r = await sClient(host(n), CLUSTER_PORT, { servername: 'a.test', version, sessIn: sessions[version] });
      assert.equal(r.session, 'Reused', `${version} from epoch ${e}, now ${Math.floor(Date.now() / ROTATION_MS)}, on ${n.id}`);
    }
  }
  await untilEpoch(e + 2);
  await agreedKeys(nodes);
  for (const version of ['-tls1_2', '-tls1_3'] as const) {
    const r = await sClient(host(nodes[1]), CLUSTER_PORT, { servername: 'a.test', version, sessIn: sessions[version] });
    assert.equal(r.session, 'New', `${version}: the key of epoch ${e} is gone at ${e + 2}`);
  }
});

test('a restarted node gets the cluster keys on link-up and resumes the others\' sessions; the holder role fails over', async () => {
  const view = await agreedKeys(nodes);
  const holder = view.keys.find((k) => k.epoch === view.epoch)?.writer;
  assert.ok(holder);
  // Restart a node that is not the holder: it must adopt the keys, not make its own.
  const idx = nodes.findIndex((n) => n.id !== holder);
  await nodes[idx].kill();
  nodes[idx] = spawnTlsNode(settings, nodes[idx].id, options(idx + 1));
  await nodes[idx].event('ready');
  const after_ = await agreedKeys(nodes);
  assert.equal(after_.keys.find((k) => k.epoch === after_.epoch)?.writer, holder, 'the restarted node adopted the holder\'s keys');
  await earlyInEpoch();
  const sess = join(dir, 'restart');
  const other = nodes.find((n, i) => i !== idx);
  assert.ok(other);
  assert.equal((await sClient(host(other), CLUSTER_PORT, { servername: 'b.test', version: '-tls1_3', sessOut: sess })).session, 'New');
  assert.equal((await sClient(host(nodes[idx]), CLUSTER_PORT, { servername: 'b.test', version: '-tls1_3', sessIn: sess })).session, 'Reused');

  // kill -9 the holder: at the next boundary another node makes the epoch after it.
  const h = nodes.findIndex((n) => n.id === holder);
  await nodes[h].kill();
  const live = nodes.filter((_, i) => i !== h);
  const start = Math.floor(Date.now() / ROTATION_MS);
  const later = await waitFor(
    'a new holder to make a key',
    async () => {
      const v = await live[0].call<KeyView>('keys');
      const made = v.keys.find((k) => k.epoch === v.epoch + 1 && k.epoch > start + 1);
      return made !== undefined && made.writer !== holder && made.writer !== '' ? v : null;
    },
    3 * ROTATION_MS,
  );
  const survivors = await agreedKeys(live);
  assert.equal(JSON.stringify(survivors.keys), JSON.stringify((await live[1].call<KeyView>('keys')).keys));
  assert.ok(later.keys.some((k) => k.writer !== holder));
  await earlyInEpoch();
  const s2 = join(dir, 'after-holder');
  assert.equal((await sClient(host(live[0]), CLUSTER_PORT, { servername: 'a.test', version: '-tls1_2', sessOut: s2 })).session, 'New');
  assert.equal((await sClient(host(live[1]), CLUSTER_PORT, { servername: 'a.test', version: '-tls1_2', sessIn: s2 })).session, 'Reused');
});

test('every node applied key frames from its peers, refused none, and encrypts under cluster keys (no local stand-in)', async () => {
  const live = nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null);
  for (const n of live) {
    const { text } = await n.call<{ text: string }>('metrics');
    assert.match(text, /tandem_tls_ticket_keys_frames_total\{result="applied"\} [1-9]/);
    assert.match(text, /^tandem_tls_ticket_keys_local 0$/m);
    assert.doesNotMatch(text, /tandem_peer_rejected_frames_total\{reason="malformed"\} [1-9]/);
  }
});
