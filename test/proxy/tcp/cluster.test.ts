/**
 * Issue 5 acceptance: the TCP service on 3 real node processes (bin/tandem.js, built in dist/)
 * with real backends. Ports: peers 17300-17302, admin 17350-17352, services 17310-17314.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { startCluster, sleep, TEST_SECRET, type TestCluster } from '../../helpers/cluster.js';
import { tcpBackend, type Backend } from '../../helpers/backends.js';
import { createServer, type Server, type AddressInfo } from 'node:net';
import { readProxyHeader } from '../../../src/proxy/tcp/proxy-protocol.js';
import { deriveForwardKey, encodeForwardHeader } from '../../../src/proxy/tcp/stream-header.js';

let c: TestCluster;
let echo: Backend[] = [];
let tagged: Backend[] = [];
let ppServer: Server;
let ppPort = 0;

before(async () => {
  echo = [await tcpBackend('e1'), await tcpBackend('e2')];
  // Tagged backends answer "<id>:<first chunk>" so a test can see which backend served it.
  tagged = await Promise.all(['t1', 't2', 't3'].map((id) => tcpBackend(id, '127.0.0.1', 0, (s, chunk) => s.end(`${id}:${chunk.toString()}`))));
  ppServer = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    readProxyHeader(s).then(
      (h) => {
        s.end(`v${h.version} ${h.source!.address}:${h.source!.port} ${h.destination!.address}:${h.destination!.port}\n`);
      },
      () => s.destroy(),
    );
  });
  await new Promise<void>((r) => ppServer.listen(0, '127.0.0.1', r));
  ppPort = (ppServer.address() as AddressInfo).port;
  const hc = { type: 'none' };
  c = await startCluster({
    basePort: 17300,
    services: [
      { name: 'echo', protocol: 'tcp', port: 17310, backends: echo.map((b) => ({ address: b.address })), healthCheck: hc },
      { name: 'pp1', protocol: 'tcp', port: 17311, flowKey: 'client-ip', proxyProtocol: 'v1', backends: [{ address: `127.0.0.1:${ppPort}` }], healthCheck: hc },
      { name: 'pp2', protocol: 'tcp', port: 17312, flowKey: 'client-ip', proxyProtocol: 'v2', backends: [{ address: `127.0.0.1:${ppPort}` }], healthCheck: hc },
      { name: 'sticky', protocol: 'tcp', port: 17313, flowKey: 'client-ip', backends: tagged.map((b) => ({ address: b.address })), healthCheck: hc },
    ],
  });
});

after(async () => {
  await c?.stop();
  await Promise.all([...echo, ...tagged].map((b) => b.close()));
  ppServer?.close();
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Sends `payload`, half-closes, reads until the FIN. Resolves null when the connection failed. */
function exchange(host: string, port: number, payload: Buffer, localAddress?: string, timeoutMs = 20_000): Promise<{ reply: Buffer; local: { address: string; port: number } } | null> {
  return new Promise((resolve) => {
    const s: Socket = connect({ host, port, allowHalfOpen: true, ...(localAddress ? { localAddress } : {}) });
    const parts: Buffer[] = [];
    let local = { address: '', port: 0 };
    const timer = setTimeout(() => {
      s.destroy();
      resolve(null);
    }, timeoutMs);
    s.once('connect', () => (local = { address: s.localAddress!, port: s.localPort! }));
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('end', () => {
      clearTimeout(timer);
      s.destroy();
      resolve({ reply: Buffer.concat(parts), local });
    });
    s.on('error', () => {
      clearTimeout(timer);
      resolve(null);
    });
    s.end(payload);
  });
}

test('tcp cluster: 200 connections via random nodes, 1 MB each, echoed intact and in order (half-close)', async (t) => {
  const t0 = Date.now();
  let next = 0;
  let bytes = 0;
  const worker = async () => {
    while (next < 200) {
      const i = next++;
      const node = c.nodes[Math.floor(Math.random() * 3)];
      const payload = randomBytes(1024 * 1024);
      const r = await exchange(node.host, 17310, payload);
      assert.ok(r, `connection ${i} via ${node.id} failed`);
      assert.equal(r.reply.length, payload.length, `connection ${i}: length`);
      assert.equal(sha(r.reply), sha(payload), `connection ${i}: content`);
      bytes += payload.length;
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  const s = (Date.now() - t0) / 1000;
  t.diagnostic(`200 x 1 MB echoed in ${s.toFixed(1)} s (${((2 * bytes) / s / 1e6).toFixed(0)} MB/s both ways, 16 at a time)`);
  let fromPeer = 0;
  for (const n of c.nodes) fromPeer += await c.metric(n.id, 'tandem_tcp_forwards_total', { service: 'echo', kind: 'from-peer' });
  assert.ok(fromPeer > 50, `only ${fromPeer} connections crossed two hops`);
});

test('tcp cluster: PROXY v1 and v2 carry the true client address and port across two hops', async () => {
  for (const [svc, port, v] of [
    ['pp1', 17311, 'v1'],
    ['pp2', 17312, 'v2'],
  ] as const) {
    const client = '127.0.0.41';
    const first = await exchange('127.0.0.1', port, Buffer.alloc(0), client);
    assert.ok(first);
    const flow = await c.flow('lb1', svc, client);
    assert.ok(flow, 'flow replicated');
    // Enter through a node that is not the primary: the connection crosses two hops.
    const ingress = c.nodes.find((n) => n.id !== flow.primary)!;
    const before = await c.metric(flow.primary, 'tandem_tcp_forwards_total', { service: svc, kind: 'from-peer' });
    const r = await exchange(ingress.host, port, Buffer.alloc(0), client);
    assert.ok(r);
    assert.equal(r.reply.toString(), `${v} ${client}:${r.local.port} ${ingress.host}:${port}\n`);
    assert.equal(await c.metric(flow.primary, 'tandem_tcp_forwards_total', { service: svc, kind: 'from-peer' }), before + 1);
  }
});

test('tcp cluster: forged forwards to the data-plane port are refused', async () => {
  const lb2 = c.node('lb2');
  const authBefore = await c.metric('lb2', 'tandem_peer_auth_failures_total');
  const valid = encodeForwardHeader(deriveForwardKey(TEST_SECRET), {
    service: 'echo',
    key: '6.6.6.6:666',
    clientAddress: '6.6.6.6',
    clientPort: 666,
    localAddress: lb2.host,
    localPort: 17310,
    ingress: 'lb1',
  });
  for (const bytes of [Buffer.from('junk junk junk\r\n'), encodeForwardHeader(deriveForwardKey('made-up-secret-xxxxxxxx'), { service: 'echo', key: 'k', clientAddress: '6.6.6.6', clientPort: 1, localAddress: '1.1.1.1', localPort: 1, ingress: 'lb1' }), valid]) {
    const s = connect({ host: lb2.host, port: lb2.peerPort });
    s.on('error', () => {});
    s.write(bytes);
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    const closed = await Promise.race([new Promise((r) => s.once('close', () => r(true))), sleep(6000).then(() => false)]);
    s.destroy();
    assert.ok(closed, 'the node closed the connection');
    // Whatever the transport sent (a challenge), never a forward status.
    assert.ok(!Buffer.concat(got).equals(Buffer.from([0])));
  }
  assert.ok((await c.metric('lb2', 'tandem_peer_auth_failures_total')) > authBefore);
  const served = echo.reduce((n, b) => n + b.count(), 0);
  await sleep(100);
  assert.equal(echo.reduce((n, b) => n + b.count(), 0), served, 'no backend connection came of it');
});

test('tcp cluster: client-ip, the primary hangs (SIGSTOP) — no connection fails, every one reaches the recorded backend', async (t) => {
  const client = '127.0.0.62';
  const r0 = await exchange('127.0.0.1', 17313, Buffer.from('hello'), client);
  assert.ok(r0);
  const backendId = r0.reply.toString().split(':')[0];
  const flow = await c.flow('lb1', 'sticky', client);
  assert.ok(flow?.backup && flow.backend);
  const primary = flow.primary;
  const survivors = c.nodes.filter((n) => n.id !== primary);
  for (const n of survivors) for (let i = 0; i < 100 && !(await c.flow(n.id, 'sticky', client))?.backend; i++) await sleep(10);
  const victim = c.node(primary).process!;
  victim.kill('SIGSTOP');
  try {
    const t0 = Date.now();
    let worst = 0;
    let failed = 0;
    const served = new Set<string>();
    // Concurrent connections, so that some are in flight when the peer stops answering.
    while (Date.now() - t0 < 2000) {
      const rs = await Promise.all(
        survivors.map(async (n) => {
          const s = Date.now();
          const r = await exchange(n.host, 17313, Buffer.from('x'), client);
          return { r, ms: Date.now() - s };
        }),
      );
      for (const { r, ms } of rs) {
        worst = Math.max(worst, ms);
        if (r && r.reply.length > 0) served.add(r.reply.toString().split(':')[0]);
        else failed++;
      }
      await sleep(20);
    }
    t.diagnostic(`SIGSTOP ${primary}: ${failed} connections failed; the slowest took ${worst} ms`);
    assert.equal(failed, 0);
    assert.deepEqual([...served], [backendId]);
  } finally {
    victim.kill('SIGCONT');
    await c.restart(primary);
  }
});

test('tcp cluster: client-ip, kill -9 the primary — new connections reach the same backend through the backup', async (t) => {
  const client = '127.0.0.61';
  const r0 = await exchange('127.0.0.1', 17313, Buffer.from('hello'), client);
  assert.ok(r0);
  const backendId = r0.reply.toString().split(':')[0];
  let flow = await c.flow('lb1', 'sticky', client);
  for (let i = 0; !flow?.backup && i < 50; i++) {
    await sleep(20);
    flow = await c.flow('lb1', 'sticky', client);
  }
  assert.ok(flow?.backup);
  const primary = flow.primary;
  const survivors = c.nodes.filter((n) => n.id !== primary);
  // Every surviving node has the entry (with its backend) before the kill.
  for (const n of survivors) {
    for (let i = 0; i < 100; i++) {
      const f = await c.flow(n.id, 'sticky', client);
      if (f?.backend) break;
      await sleep(10);
    }
  }
  await c.kill(primary);
  const tKill = Date.now();
  let refused = 0;
  let ok = 0;
  let firstOk = -1;
  let lastRefused = -1;
  const served = new Set<string>();
  // 1.5 s of new connections, alternating between the two surviving nodes, from the same client.
  while (Date.now() - tKill < 1500) {
    for (const n of survivors) {
      const r = await exchange(n.host, 17313, Buffer.from('x'), client);
      const t = Date.now() - tKill;
      if (r && r.reply.length > 0) {
        ok++;
        if (firstOk < 0) firstOk = t;
        served.add(r.reply.toString().split(':')[0]);
      } else {
        refused++;
        lastRefused = t;
      }
    }
    await sleep(20);
  }
  t.diagnostic(
    `kill -9 ${primary}: ${ok} connections served, ${refused} refused` +
      (refused > 0 ? ` (last refused ${lastRefused} ms after the kill)` : '') +
      `; first served ${firstOk} ms after the kill`,
  );
  assert.deepEqual([...served], [backendId], 'same backend after the primary died');
  assert.equal(refused, 0, 'no connection was refused');
  const after = await c.flow(survivors[0].id, 'sticky', client);
  assert.equal(after?.backend, flow.backend);
});
