/**
 * Issue 6 acceptance: a flood of 100k distinct flows against 3 real nodes with maxFlows 5000.
 * Every node's backend sockets (tandem_udp_flows) and flow table (tandem_flows) stay within the
 * maximum; the evictions are counted. Distinct flows are distinct QUIC connection ids (flowKey
 * quic-cid), so one client socket can make them all.
 * Ports (this file): peers 17444-17446, admin 17494-17496, service 17475.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { startCluster, sleep, WAIT_FLOOR_MS, type TestCluster } from '../../helpers/cluster.js';
import { udpBackend, type Backend } from '../../helpers/backends.js';

const PORT = 17475;
const RSS = 'tandem_process_process_resident_memory_bytes';
const MAX_FLOWS = 5000;
const FLOWS = 100_000;
/**
 * Once more flows than the three nodes can hold were sent, the flood stops here even if not all
 * were (a slow machine): the test stays bounded by count, and by time once eviction is exercised.
 */
const SEND_BUDGET_MS = 25_000;
/** Flows the three nodes cannot all hold: past this, every node must have evicted. */
const ENOUGH = 4 * MAX_FLOWS;
let c: TestCluster;
let backend: Backend;
const sockets: Socket[] = [];

before(async () => {
  backend = await udpBackend('b1');
  c = await startCluster({
    basePort: 17444,
    services: [{ name: 'flood', protocol: 'udp', port: PORT, flowKey: 'quic-cid', maxFlows: MAX_FLOWS, backends: [{ address: backend.address }], healthCheck: { type: 'none' } }],
  });
});

after(async () => {
  for (const s of sockets) s.close();
  await c?.stop();
  await backend?.close();
});

/** A short-header QUIC packet (RFC 9000 section 17.3.1) whose 8-byte DCID is the flow number. */
function packet(n: number): Buffer {
  const b = Buffer.alloc(1 + 8 + 24, 0x2e);
  b[0] = 0x41;
  b.writeUInt32BE(0x666c6f6f, 1); // "floo"
  b.writeUInt32BE(n, 5);
  return b;
}

test('a flood of 100k distinct flows: backend sockets and table stay within maxFlows on every node; evictions counted', async (t) => {
  const rss0 = await Promise.all(c.nodes.map((n) => c.metric(n.id, RSS)));
  let replies = 0;
  for (let i = 0; i < 6; i++) {
    const s = createSocket('udp4');
    s.on('message', () => replies++);
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    sockets.push(s);
  }
  const t0 = Date.now();
  let sent = 0;
  let peak = [0, 0, 0];
  let nextPeek = 20_000;
  while (sent < FLOWS && (sent < ENOUGH || Date.now() - t0 < SEND_BUDGET_MS)) {
    for (let k = 0; k < 500 && sent < FLOWS; k++, sent++) {
      const n = c.nodes[sent % 3];
      sockets[sent % sockets.length].send(packet(sent), PORT, n.host);
    }
    // Closed loop on the echo replies: keep at most ~2000 flows in flight, so that the kernel's
    // socket buffers do not drop most of the flood (the point is many flows, not UDP loss). A
    // lost datagram never replies, so the wait is capped.
    const until = Date.now() + 50;
    while (sent - replies > 2000 && Date.now() < until) await sleep(2);
    if (sent >= nextPeek) {
      nextPeek += 20_000;
      const now = await Promise.all(c.nodes.map((n) => c.metric(n.id, 'tandem_udp_flows', { service: 'flood' })));
      peak = peak.map((p, i) => Math.max(p, now[i]));
    }
  }
  const sendSec = (Date.now() - t0) / 1000;
  await sleep(500);
  let evictions = 0;
  let received = 0;
  const report: string[] = [];
  for (const [i, n] of c.nodes.entries()) {
    const flows = await c.metric(n.id, 'tandem_udp_flows', { service: 'flood' });
    const table = await c.metric(n.id, 'tandem_flows', { service: 'flood' });
    const ev = await c.metric(n.id, 'tandem_udp_flow_evictions_total', { service: 'flood', reason: 'lru' });
    const inn = await c.metric(n.id, 'tandem_udp_datagrams_total', { service: 'flood', direction: 'in' });
    const rss = await c.metric(n.id, RSS);
    peak[i] = Math.max(peak[i], flows);
    evictions += ev;
    received += inn;
    assert.ok(flows <= MAX_FLOWS, `${n.id}: ${flows} backend sockets > ${MAX_FLOWS}`);
    assert.ok(table <= MAX_FLOWS, `${n.id}: ${table} table entries > ${MAX_FLOWS}`);
    report.push(`${n.id}: sockets ${flows} (peak seen ${peak[i]}), table ${table}, socket evictions ${ev}, rss ${(rss0[i] / 2 ** 20).toFixed(0)} → ${(rss / 2 ** 20).toFixed(0)} MiB`);
    // 5000 sockets and entries are a few MiB; a leak of 100k flows would show as far more.
    assert.ok(rss - rss0[i] < 256 * 2 ** 20, `${n.id}: rss grew by ${(rss - rss0[i]) / 2 ** 20} MiB`);
  }
  t.diagnostic(`${sent} distinct flows sent in ${sendSec.toFixed(1)} s, ${received} received by the nodes (${Math.round(received / sendSec)} new flows/s), ${replies} replies; ${evictions} lru evictions`);
  for (const line of report) t.diagnostic(line);
  // Every reply means its flow got a backend socket; all but the 3 × MAX_FLOWS still open were evicted.
  assert.ok(evictions >= replies - 3 * MAX_FLOWS, `evictions ${evictions} for ${replies} flows that got a reply`);
  // Still serving: a new flow gets its reply (late replies of flood flows may arrive first).
  const probe = sockets[0];
  const want = Buffer.concat([Buffer.from('b1:'), packet(FLOWS + 1)]);
  const got = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), WAIT_FLOOR_MS);
    probe.on('message', (m) => {
      if (m.equals(want)) {
        clearTimeout(timer);
        resolve(true);
      }
    });
  });
  probe.send(packet(FLOWS + 1), PORT, c.nodes[0].host);
  assert.ok(await got, 'a new flow is served after the flood');
});
