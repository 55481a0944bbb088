import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { client, echoBackend, fakeCluster, metricValue, udpService, waitFor } from './harness.js';

// Ports 17420-17439 (this file): services on 17420-17424, data planes from 17430.
const IDS = ['lb1', 'lb2', 'lb3'];
const HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function setup(port: number, peerBase: number, extra: Record<string, unknown> = {}, nBackends = 3) {
  const backends = await Promise.all(Array.from({ length: nBackends }, (_, i) => echoBackend(`b${i + 1}`)));
  const cluster = await fakeCluster({ ids: IDS, peerBase, service: udpService('u', port, backends.map((b) => b.address), extra) });
  cleanups.push(async () => {
    await cluster.close();
    for (const b of backends) await b.close();
  });
  return { cluster, backends };
}

const backendOf = (text: string) => text.slice(0, text.indexOf(':'));

test('service: flows sent to random nodes get every reply from the address they sent to, one backend per flow', async () => {
  const port = 17420;
  const { cluster } = await setup(port, 17430);
  const clients = await Promise.all(Array.from({ length: 30 }, () => client()));
  cleanups.push(async () => void (await Promise.all(clients.map((c) => c.close()))));
  let sent = 0;
  for (let round = 0; round < 10; round++) {
    for (const [i, c] of clients.entries()) {
      const host = HOSTS[(i * 7 + round * 3) % 3];
      c.send({ host, port }, `${i}.${round}@${host}`);
      sent++;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await waitFor(() => clients.every((c) => c.replies.length === 10), 'all replies');
  for (const [i, c] of clients.entries()) {
    const backends = new Set(c.replies.map((r) => backendOf(r.text)));
    assert.equal(backends.size, 1, `flow ${i} saw backends ${[...backends]}`);
    for (const r of c.replies) {
      const host = r.text.slice(r.text.indexOf('@') + 1);
      assert.equal(r.from, `${host}:${port}`, 'reply from the service address the datagram went to');
    }
  }
  let local = 0;
  let forwarded = 0;
  for (const n of cluster.nodes) {
    local += await metricValue(n.registry, 'tandem_udp_datagrams_total', { direction: 'in', hop: 'local' });
    forwarded += await metricValue(n.registry, 'tandem_udp_datagrams_total', { direction: 'in', hop: 'forwarded' });
  }
  assert.equal(local + forwarded, sent);
  assert.ok(forwarded > sent / 3, `forwarded ${forwarded} of ${sent}`);
  // Each flow has exactly one backend socket, on its primary.
  const owned = cluster.nodes.reduce((s, n) => s + n.proxy.flowCount(), 0);
  assert.equal(owned, 30);
});

/** A QUIC v1 long-header Initial with the given DCID (RFC 9000 section 17.2). */
function quicLong(dcid: Buffer, body: string): Buffer {
  return Buffer.concat([Buffer.from([0xc3, 0, 0, 0, 1, dcid.length]), dcid, Buffer.from([4]), Buffer.from('scid'), Buffer.from(body.padEnd(40, '.'))]);
}
/** A short-header packet with an 8-byte DCID (RFC 9000 section 17.3.1). */
function quicShort(dcid: Buffer, body: string): Buffer {
  return Buffer.concat([Buffer.from([0x41]), dcid, Buffer.from(body.padEnd(40, '.'))]);
}

test('service: a quic-cid flow whose client changes address (and node) keeps its backend', async () => {
  const port = 17421;
  const { cluster } = await setup(port, 17433, { flowKey: 'quic-cid' });
  const cids = Array.from({ length: 12 }, (_, i) => Buffer.from(`cid-${String(i).padStart(4, '0')}`));
  const first = await Promise.all(cids.map(() => client()));
  const moved = await Promise.all(cids.map(() => client()));
  cleanups.push(async () => void (await Promise.all([...first, ...moved].map((c) => c.close()))));
  cids.forEach((cid, i) => first[i].send({ host: HOSTS[i % 3], port }, quicLong(cid, `hello${i}`)));
  await waitFor(() => first.every((c) => c.replies.length === 1), 'first replies');
  // The client "moves": a new source port, and it reaches another node (an anycast or ECMP change).
  cids.forEach((cid, i) => moved[i].send({ host: HOSTS[(i + 1) % 3], port }, quicShort(cid, `again${i}`)));
  await waitFor(() => moved.every((c) => c.replies.length === 1), 'replies after the move');
  for (let i = 0; i < cids.length; i++) {
    assert.equal(backendOf(moved[i].replies[0].text), backendOf(first[i].replies[0].text), `cid ${i} changed backend`);
    assert.equal(moved[i].replies[0].from, `${HOSTS[(i + 1) % 3]}:${port}`);
    assert.equal(first[i].replies.length, 1, 'nothing more to the old address');
  }
  assert.equal(cluster.nodes.reduce((s, n) => s + n.proxy.flowCount(), 0), cids.length, 'one backend socket per connection id');
});

test('service: client-ip keeps all ports of a client on one backend, each reply to its own port', async () => {
  const port = 17422;
  await setup(port, 17436, { flowKey: 'client-ip' });
  const cs = await Promise.all(Array.from({ length: 6 }, () => client('127.0.0.1')));
  cleanups.push(async () => void (await Promise.all(cs.map((c) => c.close()))));
  for (let r = 0; r < 3; r++) cs.forEach((c, i) => c.send({ host: HOSTS[(i + r) % 3], port }, `from-${c.port}`));
  await waitFor(() => cs.every((c) => c.replies.length === 3), 'replies');
  const backends = new Set(cs.flatMap((c) => c.replies.map((r) => backendOf(r.text))));
  assert.equal(backends.size, 1);
  for (const c of cs) for (const r of c.replies) assert.ok(r.text.endsWith(`from-${c.port}`), 'reply reached the port that asked');
});

test('service: primary dies → datagrams go to the backup, which reaches the same recorded backend', async () => {
  const port = 17423;
  const { cluster } = await setup(port, 17450);
  const cs = await Promise.all(Array.from({ length: 20 }, () => client()));
  cleanups.push(async () => void (await Promise.all(cs.map((c) => c.close()))));
  // Every client enters through lb1, which we keep alive; the victim is lb2.
  cs.forEach((c, i) => c.send({ host: HOSTS[0], port }, `one-${i}`));
  await waitFor(() => cs.every((c) => c.replies.length === 1), 'first replies');
  const victims = [...cluster.table.values()].filter((e) => e.primary === 'lb2').map((e) => e.key);
  assert.ok(victims.length > 0, 'some flows are owned by lb2');
  await cluster.crash('lb2');
  cluster.states.set('lb2', 'dead');
  cluster.node('lb1').router.reprotectAll([...cluster.table.values()], new Set(['lb1', 'lb3']));
  cs.forEach((c, i) => c.send({ host: HOSTS[0], port }, `two-${i}`));
  await waitFor(() => cs.every((c) => c.replies.length === 2), 'replies after failover');
  for (const c of cs) assert.equal(backendOf(c.replies[1].text), backendOf(c.replies[0].text));
});

test('service: a flood of distinct flows stays within maxFlows per node; evictions are counted', async () => {
  const port = 17424;
  const { cluster } = await setup(port, 17453, { maxFlows: 50 }, 1);
  // `connection` keys: one source port per flow.
  const senders = await Promise.all(Array.from({ length: 600 }, () => client()));
  cleanups.push(async () => void (await Promise.all(senders.map((s) => s.close()))));
  for (let b = 0; b < 600; b += 30) {
    const batch = senders.slice(b, b + 30);
    batch.forEach((s, i) => s.send({ host: HOSTS[(b + i) % 3], port }, 'x'));
    await waitFor(() => batch.every((s) => s.replies.length === 1), 'batch replies');
  }
  let evictions = 0;
  for (const n of cluster.nodes) {
    assert.ok(n.proxy.flowCount() <= 50, `${n.id} holds ${n.proxy.flowCount()} flows`);
    evictions += await metricValue(n.registry, 'tandem_udp_flow_evictions_total', { reason: 'lru' });
  }
  assert.ok(evictions >= 600 - 150, `evictions ${evictions}`);
});

test('service: quic-cid learns the server-chosen connection id, which reaches the same backend socket', async () => {
  const port = 17426;
  // A QUIC-shaped backend: a long-header reply carries a server CID ("S" + the client's DCID
  // minus its first byte, RFC 9000 section 7.2); every reply names the backend and the source
  // port it saw, so the test can tell whether the same socket was used.
  const sock = createSocket('udp4');
  sock.on('message', (m, r) => {
    const tag = Buffer.from(`qb:${r.port}`);
    if (m[0] & 0x80) {
      const dcid = m.subarray(6, 6 + m[5]);
      const scid = Buffer.concat([Buffer.from('S'), dcid.subarray(1)]);
      sock.send(Buffer.concat([Buffer.from([0xc0, 0, 0, 0, 1, 0, scid.length]), scid, tag]), r.port, r.address);
    } else sock.send(Buffer.concat([Buffer.from([0x40]), tag]), r.port, r.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const cluster = await fakeCluster({ ids: IDS, peerBase: 17456, service: udpService('u', port, [`127.0.0.1:${sock.address().port}`], { flowKey: 'quic-cid' }) });
  const cs = await Promise.all(Array.from({ length: 9 }, () => client()));
  cleanups.push(async () => {
    await cluster.close();
    await Promise.all(cs.map((c) => c.close()));
    await new Promise<void>((r) => sock.close(() => r()));
  });
  const tagOf = (text: string) => text.slice(text.indexOf('qb:'));
  cs.forEach((c, i) => c.send({ host: HOSTS[i % 3], port }, quicLong(Buffer.from(`C-conn-${i}`), 'initial')));
  await waitFor(() => cs.every((c) => c.replies.length === 1), 'server initials');
  // The client now addresses the server by the server's CID, through every node in turn.
  for (let r = 0; r < 3; r++) cs.forEach((c, i) => c.send({ host: HOSTS[(i + r + 1) % 3], port }, quicShort(Buffer.from(`S-conn-${i}`), `hs${r}`)));
  await waitFor(() => cs.every((c) => c.replies.length === 4), 'replies to the server CID');
  for (const c of cs) assert.deepEqual(new Set(c.replies.map((r) => tagOf(r.text))).size, 1, 'same backend socket for both ids');
  assert.equal(cluster.nodes.reduce((s, n) => s + n.proxy.flowCount(), 0), cs.length);
  const alias = [...cluster.table.values()].find((e) => e.key === Buffer.from('S-conn-0').toString('hex'));
  const orig = [...cluster.table.values()].find((e) => e.key === Buffer.from('C-conn-0').toString('hex'));
  assert.ok(alias && orig);
  assert.equal(alias.backend, orig.backend);
  assert.equal(alias.primary, orig.primary);
});
