/**
 * The TCP service in one process: 3 fake nodes (fake-cluster.ts) with real sockets for clients,
 * backends and the data plane. The real-process acceptance tests are in cluster.test.ts.
 * Ports: services 17330-17339 on 127.0.0.1-3.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket, type AddressInfo } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { FakeCluster } from './fake-cluster.js';
import { tcpBackend, type Backend } from '../../helpers/backends.js';
import { readProxyHeader } from '../../../src/proxy/tcp/proxy-protocol.js';
import { deriveForwardKey, encodeForwardHeader } from '../../../src/proxy/tcp/stream-header.js';
import { readExactly } from '../../../src/proxy/tcp/pipe.js';
import { ForwardStatus } from '../../../src/proxy/tcp/forward.js';
import { waitFor } from '../../helpers/wait.js';

let echo: Backend[] = [];
let proxyBackend: Server;
let proxyPort = 0;
let cluster: FakeCluster;

/** Parses the PROXY header, answers "v<version> src:port dst:port\n", then echoes. */
function startProxyBackend(): Promise<void> {
  proxyBackend = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    readProxyHeader(s).then(
      (h) => {
        s.write(`v${h.version} ${h.source!.address}:${h.source!.port} ${h.destination!.address}:${h.destination!.port}\n`);
        s.pipe(s);
        s.resume();
      },
      () => s.destroy(),
    );
  });
  return new Promise((r) =>
    proxyBackend.listen(0, '127.0.0.1', () => {
      proxyPort = (proxyBackend.address() as AddressInfo).port;
      r();
    }),
  );
}

before(async () => {
  echo = [await tcpBackend('e1'), await tcpBackend('e2')];
  await startProxyBackend();
  const be = echo.map((b) => ({ address: b.address }));
  const pp = [{ address: `127.0.0.1:${proxyPort}` }];
  cluster = new FakeCluster(
    3,
    [
      { name: 'echo', protocol: 'tcp', port: 17330, backends: be },
      { name: 'sticky', protocol: 'tcp', port: 17331, flowKey: 'client-ip', backends: be },
      { name: 'pp1', protocol: 'tcp', port: 17332, flowKey: 'client-ip', proxyProtocol: 'v1', backends: pp },
      { name: 'pp2', protocol: 'tcp', port: 17333, flowKey: 'client-ip', proxyProtocol: 'v2', backends: pp },
      { name: 'small', protocol: 'tcp', port: 17334, maxConnections: 2, backends: be },
      { name: 'dead', protocol: 'tcp', port: 17335, backends: [{ address: '127.0.0.1:1' }], timeouts: { connectMs: 500 } },
    ],
    17300,
  );
  await cluster.start();
});

after(async () => {
  await cluster.stop();
  await Promise.all(echo.map((b) => b.close()));
  proxyBackend.close();
});

interface Round {
  readonly ok: boolean;
  readonly socket: Socket;
  readonly reply: Buffer;
}

/** Connects, sends `payload`, half-closes, reads until the server's FIN. */
function round(host: string, port: number, payload: Buffer, localAddress?: string): Promise<Round> {
  return new Promise((resolve) => {
    const s = connect({ host, port, allowHalfOpen: true, ...(localAddress ? { localAddress } : {}) });
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer) => parts.push(c));
    s.on('end', () => resolve({ ok: true, socket: s, reply: Buffer.concat(parts) }));
    s.on('error', () => resolve({ ok: false, socket: s, reply: Buffer.concat(parts) }));
    s.end(payload);
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('tcp: 60 connections through random nodes, 256 KiB each, echoed intact with half-close', async () => {
  const jobs = Array.from({ length: 60 }, async (_, i) => {
    const node = cluster.nodes[i % 3];
    const payload = randomBytes(256 * 1024);
    const r = await round(node.host, 17330, payload);
    assert.ok(r.ok, `connection ${i} failed`);
    assert.equal(r.reply.length, payload.length);
    assert.equal(sha(r.reply), sha(payload));
  });
  await Promise.all(jobs);
  const kinds = new Set<string>();
  for (const n of cluster.nodes) {
    const m = await n.registry.getSingleMetric('tandem_tcp_forwards_total')!.get();
    for (const v of m.values) if (v.value > 0) kinds.add(String(v.labels.kind));
  }
  assert.ok(kinds.has('local') && kinds.has('to-primary') && kinds.has('from-peer'), [...kinds].join(','));
  // Connection flows end with their connection: no live entry is left behind.
  await new Promise((r) => setTimeout(r, 50));
  const live = [...cluster.table.values()].filter((e) => e.service === 'echo' && !e.ended);
  assert.equal(live.length, 0);
});

test('tcp: PROXY v1 and v2 carry the true client address across two hops', async () => {
  // The client (from 127.0.0.9) connects to lb1; the flow is owned by lb3: two hops.
  cluster.forcedOrder.set('127.0.0.9', ['lb3', 'lb2', 'lb1']);
  for (const [svc, port, v] of [
    ['pp1', 17332, 'v1'],
    ['pp2', 17333, 'v2'],
  ] as const) {
    const s = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.9', allowHalfOpen: true });
    await new Promise((r) => s.once('connect', r));
    const lport = s.localPort!;
    let got = '';
    s.on('data', (c) => (got += String(c)));
    s.end('after-header');
    await new Promise((r) => s.once('end', r));
    assert.equal(got, `${v} 127.0.0.9:${lport} 127.0.0.1:${port}\nafter-header`);
    assert.equal(cluster.entry(svc, '127.0.0.9')?.primary, 'lb3');
  }
  const fwd = await cluster.node('lb3').registry.getSingleMetric('tandem_tcp_forwards_total')!.get();
  assert.ok(fwd.values.some((v) => v.labels.service === 'pp2' && v.labels.kind === 'from-peer' && v.value >= 1));
});

test('tcp: pre-opened streams serve forwards without dialling', async () => {
  cluster.forcedOrder.set('127.0.0.10', ['lb2', 'lb3', 'lb1']);
  const lb1 = cluster.node('lb1');
  const pool = lb1.peers; // the node's one pool, shared by its services
  {
    for (let t = 0; pool.idle('lb2') < 2 && t < 300; t++) await new Promise((r) => setTimeout(r, 10)); // let the pool fill
    assert.ok(pool.idle('lb2') >= 2);
    const misses = pool.stats.misses;
    const hits = pool.stats.hits;
    for (let i = 0; i < 3; i++) {
      const r = await round('127.0.0.1', 17331, Buffer.from('x'), '127.0.0.10');
      assert.equal(r.reply.toString(), 'x');
    }
    assert.equal(pool.stats.misses - misses, 0, 'no forward waited for a dial');
    assert.equal(pool.stats.hits - hits, 3);
  }
});

test('tcp: limit — connections beyond maxConnections are refused and counted', async () => {
  const held: Socket[] = [];
  for (let i = 0; i < 2; i++) {
    const s = connect({ host: '127.0.0.2', port: 17334, allowHalfOpen: true });
    s.on('error', () => {});
    s.write('hold');
    await new Promise((r) => s.once('data', r));
    held.push(s);
  }
  const r = await round('127.0.0.2', 17334, Buffer.from('third'));
  assert.equal(r.reply.length, 0);
  const m = await cluster.node('lb2').registry.getSingleMetric('tandem_tcp_rejected_total')!.get();
  assert.ok(m.values.some((v) => v.labels.service === 'small' && v.labels.reason === 'limit' && v.value >= 1));
  for (const s of held) s.destroy();
});

test('tcp: a dead backend fails the connection (reset) and is counted', async () => {
  const r = await round('127.0.0.1', 17335, Buffer.from('x'));
  assert.equal(r.reply.length, 0);
  let failed = 0;
  for (const n of cluster.nodes) {
    const m = await n.registry.getSingleMetric('tandem_tcp_rejected_total')!.get();
    for (const v of m.values) if (v.labels.service === 'dead' && v.labels.reason === 'backend-failed') failed += v.value;
  }
  assert.ok(failed >= 1);
});

test('tcp: forged forwards — junk, a bad MAC, a wrong ingress and a replayed header are refused; a skewed timestamp is not', async () => {
  const lb2 = cluster.node('lb2');
  const key = deriveForwardKey(cluster.config.cluster.secret);
  const h = {
    service: 'sticky',
    key: '127.0.0.77',
    clientAddress: '127.0.0.77',
    clientPort: 5000,
    localAddress: '127.0.0.1',
    localPort: 17331,
    ingress: 'lb1',
  };
  const send = async (bytes: Buffer, from = 'lb1'): Promise<Buffer | null> => {
    const s = await cluster.dialRaw(from, 'lb2');
    s.on('error', () => {});
    s.write(bytes);
    const b = await readExactly(s, 1, 20_000);
    s.destroy();
    return b;
  };
  const rejected = async (reason: string) => {
    const m = await lb2.registry.getSingleMetric('tandem_tcp_forward_rejected_total')!.get();
    return m.values.find((v) => v.labels.reason === reason)?.value ?? 0;
  };
  const valid = encodeForwardHeader(key, h);
  assert.deepEqual(await send(valid), Buffer.from([ForwardStatus.OK]));
  assert.equal(await send(valid), null, 'replay of a captured header');
  assert.equal(await rejected('replay'), 1);
  assert.equal(await send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')), null);
  assert.equal(await rejected('malformed'), 1);
  const forged = encodeForwardHeader(deriveForwardKey('not-the-cluster-secret'), h);
  assert.equal(await send(forged), null);
  assert.equal(await rejected('mac'), 1);
  assert.equal(await send(encodeForwardHeader(key, h), 'lb3'), null, 'header of lb1 on a stream from lb3');
  assert.equal(await rejected('misrouted'), 1);
  // No clock is compared: a header stamped by a clock an hour off is served (the stream's own
  // handshake is what makes it fresh, replay.ts).
  const skewed = encodeForwardHeader(key, { ...h, timestampMs: Date.now() - 3_600_000 });
  assert.deepEqual(await send(skewed), Buffer.from([ForwardStatus.OK]));
});

test('tcp: client-ip failover — primary killed: same backend through the backup, then re-owned', async () => {
  cluster.forcedOrder.set('127.0.0.20', ['lb2', 'lb3', 'lb1']);
  const first = await round('127.0.0.1', 17331, Buffer.from('a'), '127.0.0.20');
  assert.equal(first.reply.toString(), 'a');
  const e0 = cluster.entry('sticky', '127.0.0.20')!;
  assert.equal(e0.primary, 'lb2');
  assert.ok(e0.backend);
  const counts = () => echo.map((b) => b.count());
  // kill -9 lb2; membership has not noticed yet (state stays alive): the forward is refused.
  await cluster.kill('lb2', 'alive');
  const c0 = counts();
  const r = await round('127.0.0.1', 17331, Buffer.from('b'), '127.0.0.20');
  assert.equal(r.reply.toString(), 'b');
  assert.equal(cluster.state.get('lb2'), 'suspect', 'the failed forward made lb2 suspect');
  const c1 = counts();
  const servedBy = echo.findIndex((_, i) => c1[i] > c0[i]);
  assert.equal(echo[servedBy].address, e0.backend, 'same backend through the backup');
  const fwd = await cluster.node('lb1').registry.getSingleMetric('tandem_tcp_forwards_total')!.get();
  assert.ok(fwd.values.some((v) => v.labels.service === 'sticky' && v.labels.kind === 'to-backup' && v.value >= 1));
  // Both owners gone (and seen dead): re-owned, still the same backend.
  await cluster.kill('lb3', 'dead');
  cluster.state.set('lb2', 'dead');
  const r2 = await round('127.0.0.1', 17331, Buffer.from('c'), '127.0.0.20');
  assert.equal(r2.reply.toString(), 'c');
  const e2 = cluster.entry('sticky', '127.0.0.20')!;
  assert.equal(e2.primary, 'lb1');
  assert.equal(e2.backend, e0.backend);
  await cluster.startNode('lb2');
  await cluster.startNode('lb3');
});

test('tcp: drain — stops accepting, lets open connections finish, and peers fail over past it', async () => {
  const lb1 = cluster.node('lb1');
  const svc = lb1.services.get('echo')!;
  const held = connect({ host: '127.0.0.1', port: 17330, allowHalfOpen: true });
  held.on('error', () => {});
  held.write('one');
  await new Promise((r) => held.once('data', r));
  let drained = false;
  // A drain timeout far beyond the wait below: if the drain ends, it ended with the last connection.
  void svc.drain(600_000).then(() => (drained = true));
  await new Promise((r) => setTimeout(r, 50));
  const refused = await round('127.0.0.1', 17330, Buffer.from('new'));
  assert.equal(refused.ok, false, 'no new connection while draining');
  held.write('two');
  const echoed = await new Promise<string>((r) => held.once('data', (d) => r(String(d))));
  assert.equal(echoed, 'two', 'the open connection still flows');
  assert.equal(drained, false);
  held.end();
  await waitFor(() => drained, 'the drain to end with the last connection');
  // A forward to a node whose service is draining is answered DRAINING: the ingress tries the backup.
  cluster.forcedOrder.set('127.0.0.30', ['lb1', 'lb3', 'lb2']);
  await lb1.services.get('sticky')!.drain(1000);
  const r = await round('127.0.0.2', 17331, Buffer.from('z'), '127.0.0.30');
  assert.equal(r.reply.toString(), 'z');
  const fwd = await cluster.node('lb2').registry.getSingleMetric('tandem_tcp_forwards_total')!.get();
  assert.ok(fwd.values.some((v) => v.labels.service === 'sticky' && v.labels.kind === 'to-backup' && v.value >= 1));
});
