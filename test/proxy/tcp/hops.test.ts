/**
 * The shared hop loop (src/proxy/hops.ts) driven by the TCP attempt (a backend connect, or a
 * forward with its status byte), through every outcome, with real sockets: 3 in-process nodes
 * (fake-cluster.ts) with no pre-opened streams, so that every forward dials its owner.
 * Ports: services 21010-21019 on 127.0.0.1-3 (peer streams on ephemeral ports).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { FakeCluster } from './fake-cluster.js';
import { tcpBackend, type Backend } from '../../helpers/backends.js';
import { deriveForwardKey, encodeForwardHeader } from '../../../src/proxy/tcp/stream-header.js';
import { readExactly } from '../../../src/proxy/tcp/pipe.js';
import { ForwardStatus } from '../../../src/proxy/tcp/forward.js';

const PORT = 21010;
let echo: Backend[] = [];
let c: FakeCluster;

before(async () => {
  echo = [await tcpBackend('e1'), await tcpBackend('e2')];
  c = new FakeCluster(
    3,
    // A status wait far longer than any test: only the loop's abort can end a wait for a frozen peer.
    [{ name: 'svc', protocol: 'tcp', port: PORT, flowKey: 'client-ip', backends: echo.map((b) => ({ address: b.address })), timeouts: { connectMs: 20_000 } }],
    21000,
    { poolSize: 0 },
  );
  await c.start();
});

after(async () => {
  await c.stop();
  await Promise.all(echo.map((b) => b.close()));
});

/** One connection from `client` (a 127.0.0.x address) to lb1: the echoed reply, or null when reset. */
function roundTrip(client: string, payload = 'ping'): Promise<string | null> {
  return new Promise((resolve) => {
    const s: Socket = connect({ host: '127.0.0.1', port: PORT, localAddress: client, allowHalfOpen: true });
    let got = '';
    s.on('data', (d) => (got += String(d)));
    s.on('end', () => resolve(got));
    s.on('error', () => resolve(null));
    s.end(payload);
  });
}

async function metric(node: string, name: string, labels: Record<string, string>): Promise<number> {
  const m = c.node(node).registry.getSingleMetric(name);
  if (!m) return 0;
  const data = await m.get();
  let sum = 0;
  for (const v of data.values) if (Object.entries(labels).every(([k, x]) => String((v.labels as Record<string, unknown>)[k]) === x)) sum += v.value;
  return sum;
}

const forwards = (node: string, kind: string) => metric(node, 'tandem_tcp_forwards_total', { service: 'svc', kind });

async function reset(): Promise<void> {
  c.freeze('lb2', false);
  for (const id of ['lb2', 'lb3']) {
    if (!c.node(id).alive) await c.startNode(id);
    c.state.set(id, 'alive');
  }
}

test('tcp loop: the primary answers — one hop, to-primary; served by the primary as from-peer', async () => {
  await reset();
  c.forcedOrder.set('127.0.0.41', ['lb2', 'lb3', 'lb1']);
  const [p0, f0] = [await forwards('lb1', 'to-primary'), await forwards('lb2', 'from-peer')];
  assert.equal(await roundTrip('127.0.0.41'), 'ping');
  assert.equal(await forwards('lb1', 'to-primary'), p0 + 1);
  assert.equal(await forwards('lb2', 'from-peer'), f0 + 1);
  assert.equal(c.state.get('lb2'), 'alive');
});

test('tcp loop: the primary refuses before any byte — the backup serves the same backend, the primary is suspect', async () => {
  await reset();
  c.forcedOrder.set('127.0.0.42', ['lb2', 'lb3', 'lb1']);
  assert.equal(await roundTrip('127.0.0.42', 'a'), 'a');
  const backend = c.entry('svc', '127.0.0.42')!.backend;
  await c.kill('lb2', 'alive'); // kill -9, membership has not noticed: the dial is refused
  const b0 = await forwards('lb1', 'to-backup');
  const counts = echo.map((e) => e.count());
  assert.equal(await roundTrip('127.0.0.42', 'b'), 'b');
  assert.equal(await forwards('lb1', 'to-backup'), b0 + 1);
  assert.equal(c.state.get('lb2'), 'suspect', 'the refused forward made the primary suspect');
  const served = echo.findIndex((e, i) => e.count() > counts[i]);
  assert.equal(echo[served].address, backend, 'affinity: the backup used the recorded backend');
});

test('tcp loop: a frozen primary (SIGSTOP) — declared dead mid-attempt, the wait is cut, the backup serves', { timeout: 30_000 }, async () => {
  await reset();
  c.forcedOrder.set('127.0.0.43', ['lb2', 'lb3', 'lb1']);
  c.freeze('lb2');
  const b0 = await forwards('lb1', 'to-backup');
  const f3 = await forwards('lb3', 'from-peer');
  const reply = roundTrip('127.0.0.43', 'frozen');
  // The forward to lb2 waits for a status byte that never comes (its timeout is 61 s) …
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(c.node('lb1').forwarder.inflight, 1, 'the attempt to the frozen primary is in flight');
  // … until membership declares lb2 dead: the loop aborts the attempt and goes on to the backup.
  c.state.set('lb2', 'dead');
  assert.equal(await reply, 'frozen');
  assert.equal(await forwards('lb1', 'to-backup'), b0 + 1);
  assert.equal(await forwards('lb3', 'from-peer'), f3 + 1);
  assert.equal(c.node('lb1').forwarder.inflight, 0);
});

test('tcp loop: a suspect primary is tried first for a new flow, after the alive backup once the flow has a backend', async () => {
  await reset();
  c.forcedOrder.set('127.0.0.44', ['lb2', 'lb3', 'lb1']);
  c.state.set('lb2', 'suspect');
  const [f2, f3] = [await forwards('lb2', 'from-peer'), await forwards('lb3', 'from-peer')];
  // New: the primary may be choosing the backend right now; the backup would choose another.
  assert.equal(await roundTrip('127.0.0.44'), 'ping');
  assert.equal(await forwards('lb2', 'from-peer'), f2 + 1, 'the new flow went to its suspect primary');
  assert.equal(await forwards('lb3', 'from-peer'), f3);
  assert.ok(c.entry('svc', '127.0.0.44')?.backend, 'the primary recorded a backend');
  assert.equal(await roundTrip('127.0.0.44'), 'ping');
  assert.equal(await forwards('lb3', 'from-peer'), f3 + 1);
  assert.equal(await forwards('lb2', 'from-peer'), f2 + 1, 'with the backend known, the suspect primary was not tried');
});

test('tcp loop: both owners gone — re-owned once, to a node not tried, the backend kept', async () => {
  await reset();
  c.forcedOrder.set('127.0.0.45', ['lb2', 'lb3', 'lb1']);
  assert.equal(await roundTrip('127.0.0.45', 'x'), 'x');
  const backend = c.entry('svc', '127.0.0.45')!.backend;
  await c.kill('lb2', 'alive');
  await c.kill('lb3', 'alive');
  const reowned0 = c.node('lb1').router.stats.reowned;
  const r0 = await forwards('lb1', 'reowned');
  assert.equal(await roundTrip('127.0.0.45', 'y'), 'y');
  assert.equal(c.node('lb1').router.stats.reowned, reowned0 + 1, 'exactly one re-own');
  assert.equal(await forwards('lb1', 'reowned'), r0 + 1);
  const e = c.entry('svc', '127.0.0.45')!;
  assert.equal(e.primary, 'lb1', 're-owned among the nodes not tried');
  assert.equal(e.backend, backend, 're-own keeps the backend');
  assert.equal(c.state.get('lb2'), 'suspect');
  assert.equal(c.state.get('lb3'), 'suspect');
});

test('tcp loop: a connection forwarded by a peer is served where it arrives, never forwarded again', async () => {
  await reset();
  // lb2 receives a forward for a flow that, in its own view, lb3 owns.
  c.forcedOrder.set('127.0.0.46', ['lb3', 'lb1', 'lb2']);
  const [p2, f2, f3] = [await forwards('lb2', 'to-primary'), await forwards('lb2', 'from-peer'), await forwards('lb3', 'from-peer')];
  const key = deriveForwardKey(c.config.cluster.secret);
  const s = await c.dialRaw('lb1', 'lb2');
  s.on('error', () => {});
  s.write(encodeForwardHeader(key, { service: 'svc', key: '127.0.0.46', clientAddress: '127.0.0.46', clientPort: 4000, localAddress: '127.0.0.1', localPort: PORT, ingress: 'lb1' }));
  assert.deepEqual(await readExactly(s, 1, 20_000), Buffer.from([ForwardStatus.OK]));
  s.end('direct');
  const got = await new Promise<string>((resolve) => {
    let t = '';
    s.on('data', (d) => (t += String(d)));
    s.on('end', () => resolve(t));
  });
  assert.equal(got, 'direct');
  assert.equal(await forwards('lb2', 'from-peer'), f2 + 1);
  assert.equal(await forwards('lb2', 'to-primary'), p2, 'not forwarded again');
  assert.equal(await forwards('lb3', 'from-peer'), f3);
});
