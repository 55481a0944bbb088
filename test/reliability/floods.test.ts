/**
 * Client floods (issue 10), each bounded in count and time:
 *  - 1M distinct flow keys over UDP (QUIC connection ids, so one socket makes them all) against a
 *    two-node cluster whose service allows 20 000 flows: every node's flow table and backend
 *    sockets stay within that bound, evictions are counted, memory stays bounded, and the service
 *    still serves a new flow afterwards. The flood is open-loop (faster than two nodes on a small
 *    machine absorb, so the kernel drops part of it); the figures say how many keys reached the
 *    nodes; the test needs each node to have turned its table over at least once (evicted as many
 *    flows as it holds) to prove anything, and keeps flooding past its budget until then (a slow
 *    machine gets fewer keys out). Bounded by count and time: how many keys the sender got out is
 *    printed, never asserted — what is asserted is what the nodes did with what reached them.
 *  - 10 000 idle client connections to the HTTP service and 10 000 to the TCP service, each capped
 *    at 1 000 connections (with a long idle timeout, so that however slowly the connections open,
 *    the held ones stay): the node holds the cap and never more, and the service answers
 *    afterwards. Then 300 idle connections to a twin service with a 3 s idle/header timeout: every
 *    one is closed by the timeout.
 * (The peer-side flood, 100k entries/s, is peer-flood.test.ts.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { startCluster, sleep, waitUntil, type TestCluster } from '../helpers/cluster.js';
import { httpBackend, tcpBackend, udpBackend, type Backend } from '../helpers/backends.js';
import { assertNodesSound, assertStarted } from './helpers/metrics.js';
import { bindUdp } from './helpers/peer.js';

const BASE = 17760;
const UDP_PORT = BASE + 5;
const HTTP_PORT = BASE + 6;
const TCP_PORT = BASE + 7;
const KEYS = 1_000_000;
// Below any sane file-descriptor limit: each UDP flow holds a socket on its owner (see the todo
// test at the end for what happens when maxFlows exceeds the limit).
const MAX_FLOWS = 5_000;
const RATE = 45_000; // datagrams per second offered (at most: a busy machine sends fewer)
/** The flood stops after this, all keys sent or not, once the bound has been exercised. */
const FLOOD_BUDGET_MS = 30_000;
/** ...and after this in any case. */
const FLOOD_HARD_MS = 120_000;
/** Idle and header timeout of the capped services: longer than opening 10 000 connections takes. */
const HOLD_MS = 300_000;
/** ...and of their twins, where idle connections must be closed. */
const IDLE_MS = 3000;
const HTTP_IDLE_PORT = BASE + 10;
const TCP_IDLE_PORT = BASE + 11;
const IDLE_CONNS = 300;
const CONNS = 10_000;
const MAX_CONNS = 1_000;
/** The peer pool's default of idle streams per peer (src/proxy/tcp/peer-pool.ts). */
const PEER_POOL = 64;
const RSS = 'tandem_process_process_resident_memory_bytes';
let c: TestCluster;
const backends: Backend[] = [];

before(async () => {
  backends.push(await udpBackend('u1'), await httpBackend('h1'), await tcpBackend('t1'));
  c = await startCluster({
    basePort: BASE,
    nodes: 2,
    services: [
      { name: 'quic', protocol: 'udp', port: UDP_PORT, flowKey: 'quic-cid', maxFlows: MAX_FLOWS, backends: [{ address: backends[0].address }], healthCheck: { type: 'none' } },
      { name: 'web', protocol: 'http', port: HTTP_PORT, flowKey: 'header:x-session', maxConnections: MAX_CONNS, backends: [{ address: backends[1].address }], healthCheck: { type: 'none' }, timeouts: { headerMs: HOLD_MS, idleMs: HOLD_MS, requestMs: 5000 } },
      { name: 'raw', protocol: 'tcp', port: TCP_PORT, maxConnections: MAX_CONNS, backends: [{ address: backends[2].address }], healthCheck: { type: 'none' }, timeouts: { idleMs: HOLD_MS, connectMs: 1000 } },
      { name: 'web-idle', protocol: 'http', port: HTTP_IDLE_PORT, flowKey: 'header:x-session', backends: [{ address: backends[1].address }], healthCheck: { type: 'none' }, timeouts: { headerMs: IDLE_MS, idleMs: IDLE_MS, requestMs: 5000 } },
      { name: 'raw-idle', protocol: 'tcp', port: TCP_IDLE_PORT, backends: [{ address: backends[2].address }], healthCheck: { type: 'none' }, timeouts: { idleMs: IDLE_MS, connectMs: 1000 } },
    ],
  });
  await assertStarted(c, ['lb1', 'lb2']);
});

after(async () => {
  await c?.stop();
  await Promise.all(backends.map((b) => b.close()));
});

/** A short-header QUIC packet (RFC 9000 section 17.3.1) whose 8-byte DCID is `n`: one flow per n. */
function quicPacket(n: number): Buffer {
  const b = Buffer.alloc(1 + 8 + 24, 0x2e);
  b[0] = 0x41;
  b.writeUInt32BE(0x71666c64, 1); // "qfld"
  b.writeUInt32BE(n, 5);
  return b;
}

test(`${KEYS / 1e6}M distinct flow keys over UDP: tables and backend sockets within maxFlows ${MAX_FLOWS}, memory bounded`, { timeout: FLOOD_HARD_MS + 90_000 }, async (t) => {
  const rss0 = await Promise.all(c.nodes.map((n) => c.metric(n.id, RSS)));
  const socks: UdpSocket[] = [];
  let replies = 0;
  for (let i = 0; i < 4; i++) {
    const s = createSocket('udp4');
    await bindUdp(s, 0, '127.0.0.1');
    s.on('message', () => replies++);
    socks.push(s);
  }
  t.after(() => {
    for (const s of socks) s.close();
  });
  const t0 = Date.now();
  let sent = 0;
  const peaks = c.nodes.map(() => ({ table: 0, sockets: 0, evicted: 0 }));
  let nextPeek = Date.now() + 2000;
  let missedSamples = 0;
  // The bound is exercised once every node has evicted as many flows as its table holds.
  const exercised = (): boolean => peaks.every((p) => p.evicted >= MAX_FLOWS);
  const sample = async (): Promise<void> => {
    for (const [i, n] of c.nodes.entries()) {
      try {
        peaks[i].table = Math.max(peaks[i].table, await c.metric(n.id, 'tandem_flows', { service: 'quic' }));
        peaks[i].sockets = Math.max(peaks[i].sockets, await c.metric(n.id, 'tandem_udp_flows', { service: 'quic' }));
        peaks[i].evicted = Math.max(peaks[i].evicted, await c.metric(n.id, 'tandem_flow_evictions_total', { service: 'quic', reason: 'lru' }));
      } catch {
        // A node saturated by the flood may answer its admin API late: a missed sample is counted,
        // not an error — the bound is checked after.
        missedSamples++;
      }
    }
  };
  for (;;) {
    const elapsed = Date.now() - t0;
    if (sent >= KEYS || elapsed >= FLOOD_HARD_MS || (elapsed >= FLOOD_BUDGET_MS && exercised())) break;
    const due = Math.min(KEYS, Math.floor((elapsed / 1000) * RATE) + 200);
    for (; sent < due; sent++) socks[sent % socks.length].send(quicPacket(sent), UDP_PORT, c.nodes[sent % 2].host);
    if (Date.now() >= nextPeek) {
      await sample();
      nextPeek = Date.now() + 2000;
    }
    await sleep(2);
  }
  const floodMs = Date.now() - t0;
  // Let the nodes work off what the kernel queued, then wait until both answer again.
  await sleep(1000);
  for (const n of c.nodes) await waitUntil(async () => (await c.get(n.id, '/healthz').catch(() => null))?.status === 200, 15_000, `${n.id} answers after the flood`);
  const lines: string[] = [];
  let received = 0;
  let created = 0;
  for (const [i, n] of c.nodes.entries()) {
    const table = await c.metric(n.id, 'tandem_flows', { service: 'quic' });
    const sockets = await c.metric(n.id, 'tandem_udp_flows', { service: 'quic' });
    const inn = await c.metric(n.id, 'tandem_udp_datagrams_total', { service: 'quic', direction: 'in' });
    const made = await c.metric(n.id, 'tandem_flows_created_total');
    const lru = await c.metric(n.id, 'tandem_flow_evictions_total', { service: 'quic', reason: 'lru' });
    peaks[i].evicted = Math.max(peaks[i].evicted, lru);
    const sockEv = await c.metric(n.id, 'tandem_udp_flow_evictions_total', { service: 'quic' });
    const rss = await c.metric(n.id, RSS);
    received += inn;
    created += made;
    peaks[i].table = Math.max(peaks[i].table, table);
    peaks[i].sockets = Math.max(peaks[i].sockets, sockets);
    lines.push(
      `${n.id}: datagrams in ${inn}, flows created ${made}, table ${table} (peak seen ${peaks[i].table}), backend sockets ${sockets} (peak ${peaks[i].sockets}), ` +
        `table LRU evictions ${lru}, socket evictions ${sockEv}, RSS ${Math.round(rss0[i] / 2 ** 20)} → ${Math.round(rss / 2 ** 20)} MiB`,
    );
    assert.ok(table <= MAX_FLOWS && peaks[i].table <= MAX_FLOWS, `${n.id}: table within the bound`);
    assert.ok(sockets <= MAX_FLOWS && peaks[i].sockets <= MAX_FLOWS, `${n.id}: backend sockets within the bound`);
    assert.ok(made <= MAX_FLOWS || lru > 0, `${n.id}: evictions counted`);
    assert.ok(rss - rss0[i] < 300 * 2 ** 20, `${n.id}: RSS grew ${Math.round((rss - rss0[i]) / 2 ** 20)} MiB`);
  }
  t.diagnostic(`${sent} distinct keys sent in ${floodMs} ms (${Math.round(sent / (floodMs / 1000))}/s offered); ${received} datagrams reached the nodes' service sockets, ${created} flows created cluster-wide, ${replies} replies; ${missedSamples} admin samples timed out during the flood`);
  for (const l of lines) t.diagnostic(l);
  // Without this the test would prove nothing; it is what tandem did with what reached it.
  assert.ok(exercised(), `the bound was exercised: every node evicted at least ${MAX_FLOWS} flows (${peaks.map((p) => p.evicted).join(', ')})`);
  // Still serving: a fresh flow gets its reply (resent once a second: UDP may drop one).
  const probe = createSocket('udp4');
  await bindUdp(probe, 0, '127.0.0.1');
  let served = false;
  probe.on('message', () => (served = true));
  for (const until = Date.now() + 20_000; !served && Date.now() < until; ) {
    probe.send(quicPacket(KEYS + 7), UDP_PORT, c.nodes[0].host);
    for (let i = 0; i < 20 && !served; i++) await sleep(50);
  }
  probe.close();
  assert.ok(served, 'a new flow is served after the flood');
  await assertNodesSound(c, ['lb1', 'lb2']);
});

/** Opens `n` connections (in batches) and keeps them idle; tracks when each is closed by the peer. */
async function idleConnections(port: number, host: string, n: number, batch: number): Promise<{ socks: net.Socket[]; closedAt: number[]; refused: number }> {
  const socks: net.Socket[] = [];
  const closedAt: number[] = [];
  let refused = 0;
  for (let i = 0; i < n; i += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, n - i) }, () =>
        new Promise<void>((resolve) => {
          const s = net.connect(port, host);
          s.on('error', () => undefined);
          // Read, so that a close after an answer (HTTP's 408) is seen: a paused socket holding
          // unread bytes never reports the peer's FIN.
          s.resume();
          s.once('connect', () => {
            socks.push(s);
            resolve();
          });
          s.once('close', () => {
            closedAt.push(Date.now());
            if (!s.remotePort) refused++;
            resolve();
          });
        }),
      ),
    );
  }
  return { socks, closedAt, refused };
}

for (const [label, port, idlePort] of [['HTTP', HTTP_PORT, HTTP_IDLE_PORT], ['TCP', TCP_PORT, TCP_IDLE_PORT]] as const) {
  test(`${CONNS} idle ${label} client connections: at most ${MAX_CONNS} held; idle ones closed by the idle timeout; the service answers after`, { timeout: 600_000 }, async (t) => {
    const host = c.node('lb1').host;
    // What the node holds, from the node: its open descriptors above what it held before (every
    // held connection is one; one over the cap is closed as it is accepted), and for TCP its own
    // gauge. The client's view also counts connections still waiting in the kernel's accept queue.
    const fds = 'tandem_process_process_open_fds';
    const fd0 = await c.metric('lb1', fds);
    let peak = 0;
    let peakFds = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const f = await c.metric('lb1', fds).catch(() => null);
        if (f !== null) peakFds = Math.max(peakFds, f - fd0);
        if (label === 'TCP') peak = Math.max(peak, await c.metric('lb1', 'tandem_tcp_active_connections', { service: 'raw' }).catch(() => 0));
        await sleep(100);
      }
    })();
    const t0 = Date.now();
    const { socks } = await idleConnections(port, host, CONNS, label === 'TCP' ? 200 : 500);
    const openedMs = Date.now() - t0;
    t.after(() => {
      for (const s of socks) s.destroy();
    });
    // Nothing closes the held ones now (HOLD_MS): wait until the node has worked through its
    // accept queue (the client-side count settles at the cap), then read what the node holds.
    const stillOpen = (): number => socks.filter((s) => !s.destroyed && !s.readableEnded).length;
    await waitUntil(() => stillOpen() <= MAX_CONNS + 10, 120_000, 'the node works through its accept queue').catch(() => undefined);
    const held = stillOpen();
    const heldFds = (await c.metric('lb1', fds)) - fd0;
    const active = label === 'TCP' ? await c.metric('lb1', 'tandem_tcp_active_connections', { service: 'raw' }) : null;
    sampling = false;
    await sampler;
    for (const s of socks) s.destroy();
    t.diagnostic(
      `${CONNS} connections opened in ${openedMs} ms (${socks.length} saw the handshake complete, the rest were reset at once); held: ${held} on the client side, ` +
        `${heldFds} descriptors above the node's baseline (at most ${peakFds} while opening)${active !== null ? `, gauge ${active} (peak ${peak})` : ''}; cap ${MAX_CONNS}`,
    );
    // A held TCP connection is two descriptors (the client's and the backend's or the peer
    // stream's, opened at once); an idle HTTP connection one. Besides: the TCP forwarder keeps up
    // to PEER_POOL idle pre-opened streams to its peer (src/proxy/tcp/peer-pool.ts), and a few
    // of slack for health checks, control links and the admin scrape.
    const perConn = label === 'TCP' ? 2 : 1;
    const pool = label === 'TCP' ? PEER_POOL : 0;
    assert.ok(peakFds <= perConn * MAX_CONNS + pool + 30, `the node held ${peakFds} descriptors over its baseline, cap ${MAX_CONNS} connections`);
    assert.ok(held <= MAX_CONNS + 10 && held >= MAX_CONNS * 0.9, `${held} connections held, cap ${MAX_CONNS}`);
    assert.ok(heldFds >= perConn * MAX_CONNS * 0.9, `the cap was reached: ${heldFds} descriptors`);
    if (label === 'TCP') assert.ok(peak <= MAX_CONNS && active! >= MAX_CONNS * 0.9, `the cap was reached and held: gauge ${active}, peak ${peak}`);

    // Idle connections to the twin with a short timeout: every one closed by the node.
    const idle = await idleConnections(idlePort, host, IDLE_CONNS, 100);
    t.after(() => {
      for (const s of idle.socks) s.destroy();
    });
    const i0 = Date.now();
    const openIdle = (): number => idle.socks.filter((s) => !s.destroyed && !s.readableEnded).length;
    await waitUntil(() => openIdle() === 0, IDLE_MS + 60_000, 'idle connections closed').catch(() => undefined);
    const lastClose = idle.closedAt.length ? Math.max(...idle.closedAt) - i0 : -1;
    t.diagnostic(`${IDLE_CONNS} idle connections to a service with a ${IDLE_MS} ms idle timeout: ${openIdle()} still open at the end, last closed +${lastClose} ms`);
    // HTTP: node:http's connection check answers a connection that never sent a byte with 408 and
    // closes it after headersTimeout (it lingers at most 2 s after its FIN, then is destroyed).
    assert.equal(openIdle(), 0, 'every idle connection closed by the timeout');
    // The service answers afterwards.
    if (label === 'HTTP') {
      const r = await fetch(`http://${host}:${port}/after`, { headers: { 'x-session': 'after-flood' }, signal: AbortSignal.timeout(10_000) });
      assert.equal(r.status, 200);
      await r.text();
    } else {
      const echoed = await new Promise<string>((resolve) => {
        const s = net.connect(port, host, () => s.write('after'));
        let got = '';
        s.on('data', (d: Buffer) => {
          got += d.toString();
          if (got.length >= 5) {
            s.destroy();
            resolve(got);
          }
        });
        s.on('error', () => resolve(got));
        setTimeout(() => {
          s.destroy();
          resolve(got);
        }, 10_000).unref();
      });
      assert.equal(echoed, 'after');
    }
    await assertNodesSound(c, ['lb1', 'lb2']);
  });
}

/**
 * Found by the 1M-key flood (reported to the UDP proxy's owner, src/proxy/udp/flows.ts): with
 * maxFlows above what the process may open, the owner keeps every flow socket it managed to open
 * and each new flow then fails with EMFILE (counted as `socket-error` drops) instead of evicting
 * the least recently used flow, so no new UDP flow was served until idle expiry freed sockets.
 * Fixed: on EMFILE the owner evicts its least recently used flow and opens the new flow's socket
 * again with what it had queued. A node limited to 256 descriptors, a flood of 600 flows.
 */
test('UDP: a flood past the file-descriptor limit must not lock new flows out', async (t) => {
  const { execFileSync, spawn } = await import('node:child_process');
  const { mkdtempSync, writeFileSync, readFileSync } = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const { stringify } = await import('yaml');
  const join = (...parts: string[]): string => path.join(...parts);
  try {
    execFileSync('prlimit', ['--version'], { stdio: 'ignore' });
  } catch {
    t.skip('prlimit (util-linux) not available');
    return;
  }
  const dir = mkdtempSync(join(os.tmpdir(), 'tandem-fd-'));
  const cfg = join(dir, 'tandem.yaml');
  const admin = 17819;
  writeFileSync(
    cfg,
    stringify({
      cluster: { name: 'fd', secret: 'integration-test-secret-0123456789', snapshotTimeoutMs: 200, logLevel: 'warn', nodes: [{ id: 'lb1', host: '127.0.0.1', peerPort: 17769, adminPort: admin }] },
      services: [{ name: 'q', protocol: 'udp', port: 17768, flowKey: 'quic-cid', maxFlows: 1000, backends: [{ address: backends[0].address }], healthCheck: { type: 'none' } }],
    }),
  );
  const bin = new URL('../../bin/tandem.js', import.meta.url).pathname;
  const child = spawn('prlimit', ['--nofile=256:256', process.execPath, bin, 'start', '--config', cfg, '--node', 'lb1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  t.after(() => {
    child.kill('SIGKILL');
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${admin}/readyz`, { signal: AbortSignal.timeout(500) }).then((r) => r.status === 200, () => false);
    if (ok) break;
    assert.ok(Date.now() < deadline, `node not ready:\n${readFileSync(join(dir, 'tandem.yaml'), 'utf8')}\n${log}`);
    await sleep(50);
  }
  const s = createSocket('udp4');
  await bindUdp(s, 0, '127.0.0.1');
  t.after(() => s.close());
  let replies = 0;
  s.on('message', () => replies++);
  for (let i = 0; i < 600; i++) {
    s.send(quicPacket(5_000_000 + i), 17768, '127.0.0.1');
    if (i % 20 === 19) await sleep(5);
  }
  await sleep(500);
  // The new flow from a socket of its own, so that late replies to the 600 cannot pass for it.
  const fresh = createSocket('udp4');
  await bindUdp(fresh, 0, '127.0.0.1');
  t.after(() => fresh.close());
  let freshReplies = 0;
  fresh.on('message', () => freshReplies++);
  for (const until = Date.now() + 20_000; freshReplies === 0 && Date.now() < until; ) {
    fresh.send(quicPacket(9_999_999), 17768, '127.0.0.1');
    for (let i = 0; i < 20 && freshReplies === 0; i++) await sleep(50);
  }
  t.diagnostic(`600 flows against a 256-descriptor node with maxFlows 1000: ${replies} replies; a new flow afterwards: ${freshReplies > 0 ? 'served' : 'NOT served'}`);
  assert.ok(freshReplies > 0, 'a new flow is served once the descriptor limit is reached');
});
