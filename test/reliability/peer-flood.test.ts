/**
 * A peer flooding replication (issue 10): an authenticated peer sends 100 000 entries per second
 * for a few seconds, in the real frame format, to a live node. Proves that the receiver stays
 * responsive (every admin and client request answered, no false failure verdict on its other link
 * nor on the flooded one), takes everything (acknowledges every batch, applies every entry) and
 * keeps its table within the configured bound (evictions counted). Rates and latencies are
 * printed, not asserted: they say how fast this machine is (the figures are in
 * docs/reliability.md; performance is `npm run bench`'s job).
 *
 * Cluster: lb1 and lb3 real, lb2 configured but never started; the test is lb2.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { startCluster, sleep, waitUntil, type TestCluster } from '../helpers/cluster.js';
import { httpBackend, type Backend } from '../helpers/backends.js';
import { ByteWriter, FrameType } from '../../src/cluster/frame.js';
import { EntryBatchEncoder } from '../../src/cluster/entry-codec.js';
import { encodeOpen } from '../../src/cluster/replication.js';
import { encodeResyncBegin, encodeResyncEnd } from '../../src/cluster/snapshot.js';
import { authConnect } from './helpers/peer.js';
import { assertNodesSound, assertStarted, byLabel, metricsText } from './helpers/metrics.js';

const BASE = 17740;
const RATE = 100_000; // entries per second
const SECONDS = 4;
const PER_FRAME = 1000;
const MAX_FLOWS = 100_000;
let c: TestCluster;
let backend: Backend;

before(async () => {
  backend = await httpBackend('b1');
  c = await startCluster({
    basePort: BASE,
    nodes: 3,
    start: false,
    // What "no false failure verdict" means here: lb1 never stalls for 3 s. The suite's default
    // (500 ms) is a stall that a machine whose other core runs the 1M-key UDP flood reaches (lb1
    // silent 905 ms in one run, 9 probes instead of 29): that would be the machine's speed, not tandem's.
    cluster: { failureTimeoutMs: 3000 },
    services: [{ name: 'web', protocol: 'http', port: BASE + 5, flowKey: 'header:x-session', maxFlows: MAX_FLOWS, backends: [{ address: backend.address }], healthCheck: { type: 'none' } }],
  });
  await Promise.all([c.start('lb1'), c.start('lb3')]);
  await assertStarted(c, ['lb1', 'lb3']);
  await waitUntil(async () => (await c.cluster('lb1')).nodes.find((n) => n.id === 'lb3')?.state === 'alive', 5000, 'lb1 sees lb3');
});

after(async () => {
  await c?.stop();
  await backend?.close();
});

/** Frames from the node: the highest ACK, and the longest silence between any two arrivals. */
function watch(s: Socket): { ack: () => number; maxGapMs: () => number; frames: () => number } {
  let buf: Buffer = Buffer.alloc(0);
  let ack = 0;
  let frames = 0;
  let last = performance.now();
  let maxGap = 0;
  s.on('data', (d: Buffer) => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
      const len = buf.readUInt32BE(0);
      if (buf[5] === FrameType.ACK) ack = Math.max(ack, Number(buf.readBigUInt64BE(6)));
      frames++;
      buf = buf.subarray(4 + len);
    }
  });
  return { ack: () => ack, maxGapMs: () => Math.max(maxGap, performance.now() - last), frames: () => frames };
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}

test(`a peer sending ${RATE / 1000}k entries/s for ${SECONDS} s: the receiver stays responsive, keeps up and bounded`, async (t) => {
  const n1 = c.node('lb1');
  const s = await authConnect({ host: n1.host, port: n1.peerPort, id: 'lb1' }, 'lb2', 'control');
  t.after(() => s.destroy());
  const w = watch(s);
  const inc = randomBytes(8);
  inc[0] |= 1;
  s.write(Buffer.concat([encodeOpen(inc, true, null, 0), encodeResyncBegin(inc, 0, true), encodeResyncEnd(0)].map((b) => Buffer.from(b))));
  const rss0 = byLabel(await metricsText(c, 'lb1'), 'tandem_process_process_resident_memory_bytes', '').get('') ?? 0;

  // Probes while the flood runs: admin /healthz and a client GET through lb1, and both nodes'
  // views of the lb1-lb3 link (a stalled event loop would show as a false suspect/dead).
  const adminMs: number[] = [];
  const clientMs: number[] = [];
  const verdicts = new Set<string>();
  const floodedLink = new Set<string>();
  let flooding = true;
  let adminFailed = 0;
  let clientFailed = 0;
  let probing = true;
  const probes = (async () => {
    let i = 0;
    while (probing) {
      const t0 = performance.now();
      const h = await c.get('lb1', '/healthz').catch(() => null);
      if (h?.status !== 200) adminFailed++;
      adminMs.push(h?.status === 200 ? performance.now() - t0 : Infinity);
      const t1 = performance.now();
      const r = await fetch(`http://${n1.host}:${BASE + 5}/probe`, { headers: { 'x-session': `probe-${i++ % 20}` }, signal: AbortSignal.timeout(10_000) }).then(
        async (res) => (await res.text(), res.status),
        () => 0,
      );
      clientMs.push(r === 200 ? performance.now() - t1 : Infinity);
      if (r !== 200) clientFailed++;
      for (const [a, b] of [['lb1', 'lb3'], ['lb3', 'lb1']]) {
        const v = await c.cluster(a).catch(() => null);
        verdicts.add(`${a} sees ${b} ${v?.nodes.find((x) => x.id === b)?.state ?? 'unreachable'}`);
      }
      // The flooding peer is heard from while it floods (it sends no heartbeats afterwards).
      if (flooding) {
        const v = await c.cluster('lb1').catch(() => null);
        if (flooding) floodedLink.add(v?.nodes.find((x) => x.id === 'lb2')?.state ?? 'unreachable');
      }
      await sleep(50);
    }
  })();

  // The flood: paced to RATE, one ENTRIES frame per PER_FRAME entries, waiting on 'drain' when
  // the node reads slower than we write (that is backpressure, and it is measured).
  const t0 = performance.now();
  const total = RATE * SECONDS;
  let sent = 0;
  let seq = 0;
  let version = Date.now() * 1024;
  let drains = 0;
  const owners = ['lb1', 'lb2', 'lb3'];
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * RATE) + PER_FRAME);
    while (sent < due) {
      const w8 = ByteWriter.frame(FrameType.ENTRIES, PER_FRAME * 48);
      w8.u64(++seq);
      const enc = new EntryBatchEncoder(w8);
      const now = Date.now();
      for (let i = 0; i < PER_FRAME && sent < total; i++, sent++) {
        version = Math.max(version + 1, now * 1024);
        const p = owners[sent % 3];
        enc.add({ service: 'web', key: `flood-${sent}`, primary: p, backup: owners[(sent + 1) % 3], backend: backend.address, version, writer: 'lb2', lastActive: now, ended: false });
      }
      enc.finish();
      if (!s.write(Buffer.from(w8.finish()))) {
        drains++;
        await new Promise<void>((r) => s.once('drain', () => r()));
      }
    }
    await sleep(5);
  }
  const floodMs = performance.now() - t0;
  flooding = false;
  const linkUpAfterFlood = !s.destroyed;
  // Keeping up: every batch acknowledged soon after the last one left.
  const ackMs = await waitUntil(() => w.ack() === seq, 30_000, `ACK of seq ${seq}`);
  probing = false;
  await probes;

  const text = await metricsText(c, 'lb1');
  const rss1 = byLabel(text, 'tandem_process_process_resident_memory_bytes', '').get('') ?? 0;
  const entriesIn = byLabel(text, 'tandem_replication_entries_total', 'direction').get('in') ?? 0;
  const size = byLabel(text, 'tandem_flows', 'service').get('web') ?? 0;
  const evicted = byLabel(text, 'tandem_flow_evictions_total', 'reason').get('lru') ?? 0;
  const rate = Math.round(total / (floodMs / 1000));
  t.diagnostic(
    `sent ${total} entries in ${seq} frames in ${Math.round(floodMs)} ms (${rate}/s, ${drains} waits on drain); all acknowledged ${ackMs} ms after the last; ` +
      `lb1 applied ${entriesIn} entries; table ${size} (bound ${MAX_FLOWS}), ${evicted} LRU evictions; RSS ${Math.round(rss0 / 2 ** 20)} → ${Math.round(rss1 / 2 ** 20)} MiB`,
  );
  t.diagnostic(
    `during the flood: admin /healthz p50 ${percentile(adminMs, 50).toFixed(1)} / p99 ${percentile(adminMs, 99).toFixed(1)} / max ${Math.max(...adminMs).toFixed(1)} ms (${adminMs.length}); ` +
      `client GET p50 ${percentile(clientMs, 50).toFixed(1)} / p99 ${percentile(clientMs, 99).toFixed(1)} / max ${Math.max(...clientMs).toFixed(1)} ms; ` +
      `longest silence from lb1 on the flooded link ${w.maxGapMs().toFixed(0)} ms; verdicts ${[...verdicts].join(', ')}; lb1 on its flooding peer: ${[...floodedLink].join(', ')}`,
  );
  assert.ok(entriesIn >= total, 'every entry was read and applied');
  assert.ok(size <= MAX_FLOWS, `table ${size} within its bound ${MAX_FLOWS}`);
  assert.ok(evicted >= total - MAX_FLOWS, 'evictions counted');
  assert.equal(adminFailed, 0, 'the admin API answered every probe');
  assert.equal(clientFailed, 0, 'every client request through the flooded node was served');
  // The flooded link held (lb1 drops a link it cannot keep up with or that sends garbage).
  assert.ok(linkUpAfterFlood, 'the flooded link is still up');
  // No false failure verdict between the real nodes: nobody declared dead, every view answered.
  // (A 'suspect' — one late beat — is printed; it moves no flow.)
  assert.deepEqual([...verdicts].filter((v) => / (dead|unreachable)$/.test(v)), [], `no false failure verdict (${[...verdicts].join(', ')})`);
  assert.ok(rss1 - rss0 < 512 * 2 ** 20, 'RSS grew by less than 512 MiB');
  await assertNodesSound(c, ['lb1', 'lb3']);
});
