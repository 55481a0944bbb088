/**
 * The shared hop loop (src/proxy/hops.ts) driven by the UDP attempt (serve here, or send the
 * encapsulated datagram to a peer), through every outcome. A UDP attempt is synchronous and a
 * peer hop fails only when the datagram cannot leave towards that peer (here: a peer host that
 * does not resolve); a primary that stops answering is skipped once membership says so.
 * Ports 21200-21249: services 21200, 21220, 21240; data planes 21210, 21230, 21245 (+0..2).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { echoBackend, fakeCluster, metricValue, udpService, waitFor, type FakeCluster } from './harness.js';

const IDS = ['lb1', 'lb2', 'lb3'];
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function setup(port: number, peerBase: number, unresolved: string[] = []): Promise<FakeCluster> {
  const backends = await Promise.all([echoBackend('b1'), echoBackend('b2')]);
  const cluster = await fakeCluster({ ids: IDS, peerBase, service: udpService('u', port, backends.map((b) => b.address), { flowKey: 'client-ip' }), unresolved });
  cleanups.push(async () => {
    await cluster.close();
    for (const b of backends) await b.close();
  });
  return cluster;
}

/** A client address (127.0.0.x) whose flow the cluster's rendezvous ranks in `order`. */
function clientRanked(c: FakeCluster, order: readonly string[], from = 60): string {
  for (let i = from; i < 250; i++) {
    const key = `127.0.0.${i}`;
    const rank = c.cluster.rank(key);
    if (rank.every((id, k) => id === order[k])) return key;
  }
  throw new Error(`no client address ranks ${order.join(',')}`);
}

async function udpClient(address: string): Promise<{ socket: Socket; replies: string[]; close(): Promise<void> }> {
  const socket = createSocket('udp4');
  const replies: string[] = [];
  socket.on('message', (m) => replies.push(m.toString()));
  await new Promise<void>((r) => socket.bind(0, address, r));
  const c = { socket, replies, close: () => new Promise<void>((r) => socket.close(() => r())) };
  cleanups.push(c.close);
  return c;
}

const flows = (c: FakeCluster, id: string) => c.node(id).proxy.flowCount();
const into = (c: FakeCluster, id: string, hop: 'local' | 'forwarded') => metricValue(c.node(id).registry, 'tandem_udp_datagrams_total', { direction: 'in', hop });

let main: FakeCluster;

test('udp loop: the primary takes it — sent to the primary, the reply comes back through the ingress', async () => {
  main = await setup(21200, 21210);
  const addr = clientRanked(main, ['lb2', 'lb3', 'lb1']);
  const cl = await udpClient(addr);
  const fwd0 = await into(main, 'lb1', 'forwarded');
  cl.socket.send('hello', 21200, '127.0.0.1');
  await waitFor(() => cl.replies.length === 1, 'reply');
  assert.match(cl.replies[0], /^b[12]:hello$/);
  assert.equal(await into(main, 'lb1', 'forwarded'), fwd0 + 1);
  assert.equal(flows(main, 'lb2'), 1);
  assert.equal(flows(main, 'lb3'), 0);
});

test('udp loop: a primary seen dead is skipped — the backup serves, with the recorded backend', async () => {
  const addr = clientRanked(main, ['lb2', 'lb3', 'lb1'], 120);
  const cl = await udpClient(addr);
  cl.socket.send('one', 21200, '127.0.0.1');
  await waitFor(() => cl.replies.length === 1, 'first reply');
  const backend = cl.replies[0].split(':')[0];
  main.states.set('lb2', 'dead');
  try {
    const before3 = flows(main, 'lb3');
    cl.socket.send('two', 21200, '127.0.0.1');
    await waitFor(() => cl.replies.length === 2, 'second reply');
    assert.equal(cl.replies[1], `${backend}:two`, 'affinity survives the failover');
    assert.equal(flows(main, 'lb3'), before3 + 1, 'the backup serves');
  } finally {
    main.states.set('lb2', 'alive');
  }
});

test('udp loop: a suspect primary is tried first for a new flow, after the alive backup once the flow has a backend', async () => {
  const addr = clientRanked(main, ['lb2', 'lb3', 'lb1'], 180);
  const cl = await udpClient(addr);
  main.states.set('lb2', 'suspect');
  try {
    const [f2, f3] = [flows(main, 'lb2'), flows(main, 'lb3')];
    // New: the primary may be choosing the backend right now; the backup would choose another.
    cl.socket.send('s', 21200, '127.0.0.1');
    await waitFor(() => cl.replies.length === 1, 'reply');
    assert.equal(flows(main, 'lb2'), f2 + 1, 'the new flow went to its suspect primary');
    assert.equal(flows(main, 'lb3'), f3);
    // Another new flow whose backend is already known here (as replication brings it): the backup.
    const router = main.node('lb1').router;
    const backend = router.lookup('u', addr).backend;
    assert.ok(backend, 'the primary recorded a backend');
    const addr2 = clientRanked(main, ['lb2', 'lb3', 'lb1'], Number(addr.split('.')[3]) + 1);
    router.assign(router.lookup('u', addr2), () => true, () => backend);
    const cl2 = await udpClient(addr2);
    cl2.socket.send('t', 21200, '127.0.0.1');
    await waitFor(() => cl2.replies.length === 1, 'reply');
    assert.equal(flows(main, 'lb3'), f3 + 1, 'the backup serves');
    assert.equal(flows(main, 'lb2'), f2 + 1, 'with the backend known, the suspect primary was not tried');
  } finally {
    main.states.set('lb2', 'alive');
  }
});

test('udp loop: both owners seen dead — re-owned once, served here, the backend kept', async () => {
  const addr = clientRanked(main, ['lb2', 'lb3', 'lb1'], 200);
  const cl = await udpClient(addr);
  cl.socket.send('a', 21200, '127.0.0.1');
  await waitFor(() => cl.replies.length === 1, 'first reply');
  const backend = cl.replies[0].split(':')[0];
  main.states.set('lb2', 'dead');
  main.states.set('lb3', 'dead');
  try {
    const router = main.node('lb1').router;
    const r0 = router.stats.reowned;
    cl.socket.send('b', 21200, '127.0.0.1');
    await waitFor(() => cl.replies.length === 2, 'second reply');
    assert.equal(cl.replies[1], `${backend}:b`);
    assert.equal(router.stats.reowned, r0 + 1, 'exactly one re-own');
    assert.equal(main.table.get(`u\0${addr}`)?.primary, 'lb1');
  } finally {
    main.states.set('lb2', 'alive');
    main.states.set('lb3', 'alive');
  }
});

test('udp loop: a datagram forwarded by a peer is served where it arrives, never forwarded again', async () => {
  // lb2 gets a forward for a flow that, in its own view, it does not own (lb1, then lb3).
  const addr = clientRanked(main, ['lb1', 'lb3', 'lb2']);
  const cl = await udpClient(addr);
  const port = cl.socket.address().port;
  const [f2, f3] = [flows(main, 'lb2'), flows(main, 'lb3')];
  const fwd2 = await into(main, 'lb2', 'forwarded');
  assert.equal(main.node('lb1').plane.forward('lb2', { service: 'u', key: addr, client: { address: addr, port }, ingress: 'lb1' }, Buffer.from('via-peer')), 'sent');
  await waitFor(() => cl.replies.length === 1, 'reply through the ingress');
  assert.match(cl.replies[0], /:via-peer$/);
  assert.equal(flows(main, 'lb2'), f2 + 1, 'served by the node it was forwarded to');
  assert.equal(flows(main, 'lb3'), f3, 'not forwarded again');
  assert.equal(await into(main, 'lb2', 'forwarded'), fwd2, 'lb2 did not forward it');
});

test('udp loop: a primary the datagram cannot be sent to — the next owner takes it, no drop', async () => {
  const c = await setup(21220, 21230, ['lb2']);
  const addr = clientRanked(c, ['lb2', 'lb3', 'lb1']);
  const cl = await udpClient(addr);
  cl.socket.send('x', 21220, '127.0.0.1');
  await waitFor(() => cl.replies.length === 1, 'reply');
  assert.equal(flows(c, 'lb3'), 1, 'the backup serves');
  assert.equal(flows(c, 'lb2'), 0);
  assert.equal(await metricValue(c.node('lb1').registry, 'tandem_udp_drops_total', { service: 'u' }), 0);
});

test('udp loop: neither owner can be sent to — re-owned once among the others, served here', async () => {
  const c = await setup(21240, 21245, ['lb2', 'lb3']);
  const addr = clientRanked(c, ['lb2', 'lb3', 'lb1']);
  const cl = await udpClient(addr);
  const router = c.node('lb1').router;
  cl.socket.send('y', 21240, '127.0.0.1');
  await waitFor(() => cl.replies.length === 1, 'reply');
  assert.equal(flows(c, 'lb1'), 1);
  assert.equal(router.stats.reowned, 1);
  assert.equal(c.table.get(`u\0${addr}`)?.primary, 'lb1');
});
