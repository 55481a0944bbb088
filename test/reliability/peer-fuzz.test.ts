/**
 * Fuzzing the peer port of a live node (issue 10): handshake bytes, control frames after a valid
 * handshake, forwarded TCP headers and UDP encapsulations. Seeded and bounded: the same seed gives
 * the same cases (TANDEM_FUZZ_SEED overrides it to explore; a failure names seed and case).
 *
 * The cluster is lb1 and lb2 (real processes) plus lb3, configured but never started: the test
 * poses as lb3, so that "authenticated" really means "knows the secret and a configured id".
 * Proves, for each surface: the node never crashes (nor logs an uncaught exception), never applies
 * anything that was not authenticated and well-formed, and counts every rejection exactly once,
 * by the reason docs/protocol.md gives. The control-link verdicts come from an independent model
 * of the protocol document (helpers/control-oracle.ts).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { Socket } from 'node:net';
import { randomBytes as cryptoRandom } from 'node:crypto';
import { startCluster, waitUntil, sleep, TEST_SECRET, type TestCluster } from '../helpers/cluster.js';
import { httpBackend, tcpBackend, udpBackend, type Backend } from '../helpers/backends.js';
import { prng } from '../helpers/prng.js';
import { computeProof, deriveAuthKey, encodeHello, transcript, decodeReply } from '../../src/cluster/handshake.js';
import { ByteWriter, FrameType, encodeFrame } from '../../src/cluster/frame.js';
import { encodeOpen } from '../../src/cluster/replication.js';
import { encodeResyncBegin, encodeResyncEnd } from '../../src/cluster/snapshot.js';
import { deriveForwardKey, encodeForwardHeader } from '../../src/proxy/tcp/stream-header.js';
import { deriveUdpKey, encodeEncap, EncapType } from '../../src/proxy/udp/encap.js';
import type { FlowEntry } from '../../src/cluster/flow-entry.js';
import { announce, authConnect, batchFrame, bindUdp, closed, entry, rawConnect, sendAndFinish, type PeerTarget } from './helpers/peer.js';
import { bytes, int, mutate, pick, type Rand } from './helpers/fuzz.js';
import { judge, type ModelEntry, type StreamState } from './helpers/control-oracle.js';
import { assertNodesSound, assertStarted, byLabel, delta, metricsText, reasons, total } from './helpers/metrics.js';

const BASE = 17720;
const SEED = Number(process.env.TANDEM_FUZZ_SEED ?? 0x7a11d3);
const WEB = 'web';
const TCP = 'tcpsvc';
const UDP = 'udpsvc';

let c: TestCluster;
let backends: Backend[] = [];
let lb1: PeerTarget;

before(async () => {
  const [h, t, u] = await Promise.all([httpBackend('h1'), tcpBackend('t1'), udpBackend('u1')]);
  backends = [h, t, u];
  c = await startCluster({
    basePort: BASE,
    nodes: 3,
    start: false,
    services: [
      { name: WEB, protocol: 'http', port: BASE + 10, flowKey: 'header:x-session', backends: [{ address: h.address }], healthCheck: { type: 'none' }, timeouts: { requestMs: 3000, connectMs: 500 } },
      { name: TCP, protocol: 'tcp', port: BASE + 11, flowKey: 'connection', backends: [{ address: t.address }], healthCheck: { type: 'none' } },
      { name: UDP, protocol: 'udp', port: BASE + 12, flowKey: 'connection', backends: [{ address: u.address }], healthCheck: { type: 'none' } },
    ],
  });
  // lb3 stays down: the test is lb3.
  await Promise.all([c.start('lb1'), c.start('lb2')]);
  await assertStarted(c, ['lb1', 'lb2']);
  await waitUntil(async () => (await c.cluster('lb1')).nodes.find((n) => n.id === 'lb2')?.state === 'alive', 5000, 'lb1 sees lb2');
  const n1 = c.node('lb1');
  lb1 = { host: n1.host, port: n1.peerPort, id: 'lb1' };
});

after(async () => {
  await c?.stop();
  await Promise.all(backends.map((b) => b.close()));
});

/** Every (service, key) in lb1's table, services found through the tandem_flows gauge. */
async function tableKeys(id = 'lb1'): Promise<Set<string>> {
  const services = byLabel(await metricsText(c, id), 'tandem_flows', 'service');
  const out = new Set<string>();
  for (const s of services.keys()) {
    const r = await c.get(id, `/api/flows?service=${encodeURIComponent(s)}&limit=1000000`);
    for (const f of (r.body as { flows: Array<{ key: string }> }).flows) out.add(`${s}\u0000${f.key}`);
  }
  return out;
}

async function lb2Alive(): Promise<void> {
  const v = await c.cluster('lb1');
  assert.equal(v.nodes.find((n) => n.id === 'lb2')?.state, 'alive', 'the real lb1-lb2 link was never disturbed');
}

/** Runs `fn` over `items` with at most `n` at a time. */
async function pool<T>(items: readonly T[], n: number, fn: (x: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i], i);
      }
    }),
  );
}

// ---- 1. handshake bytes (unauthenticated) ------------------------------------------------------

interface HsCase {
  readonly what: string;
  /** Bytes sent at once; for proof cases, sent after the node's HELLO_REPLY. */
  readonly first: Buffer;
  readonly proof?: (t: Buffer) => Buffer;
}

function hello(rand: Rand, fields: Partial<{ from: string; to: string; cluster: string; channel: 'control' | 'http' | 'tcp' | 'udp'; nonce: Buffer; version: number }> = {}): Buffer {
  return Buffer.from(
    encodeHello({
      channel: fields.channel ?? pick(rand, ['control', 'http', 'tcp', 'udp'] as const),
      cluster: fields.cluster ?? 'test',
      from: fields.from ?? 'lb3',
      to: fields.to ?? 'lb1',
      nonce: fields.nonce ?? bytes(rand, 24),
      ...(fields.version !== undefined ? { version: fields.version } : {}),
    }),
  );
}

function proofFrame(proof: Buffer): Buffer {
  const w = ByteWriter.frame(FrameType.HELLO_PROOF, 40);
  w.bytes(proof);
  return Buffer.from(w.finish());
}

function handshakeCases(rand: Rand, n: number): HsCase[] {
  const authKey = deriveAuthKey(TEST_SECRET);
  const wrongKey = deriveAuthKey('a-wrong-secret-of-enough-length');
  const fixed: HsCase[] = [
    { what: 'empty then FIN', first: Buffer.alloc(0) },
    { what: 'HTTP request', first: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n') },
    { what: 'TLS ClientHello-like', first: Buffer.from('160301020001000100', 'hex') },
    { what: 'bad magic', first: (() => { const b = hello(rand); b[6] = 0x58; return b; })() },
    { what: 'protocol version 2', first: hello(rand, { version: 2 }) },
    { what: 'wrong cluster', first: hello(rand, { cluster: 'other' }) },
    { what: 'from self', first: hello(rand, { from: 'lb1' }) },
    { what: 'from unknown node', first: hello(rand, { from: 'lb9' }) },
    { what: 'wrong target', first: hello(rand, { to: 'lb2' }) },
    { what: 'nonce 15 bytes', first: hello(rand, { nonce: bytes(rand, 15) }) },
    { what: 'nonce 33 bytes', first: hello(rand, { nonce: bytes(rand, 33) }) },
    { what: 'length 1 KiB + 1', first: (() => { const b = Buffer.alloc(6); b.writeUInt32BE(1025, 0); b[4] = 1; b[5] = 1; return b; })() },
    { what: 'length 4 GiB', first: Buffer.from('ffffffff0101', 'hex') },
    { what: 'length 0', first: Buffer.from('000000000101', 'hex') },
    { what: 'control frame before auth', first: encodeFrame(FrameType.HEARTBEAT) },
    { what: 'PROOF before HELLO', first: proofFrame(Buffer.alloc(32)) },
    { what: 'TCP forward header without handshake', first: encodeForwardHeader(deriveForwardKey(TEST_SECRET), { service: TCP, key: 'k', clientAddress: '127.0.0.9', clientPort: 1, localAddress: '127.0.0.1', localPort: BASE + 11, ingress: 'lb3' }) },
    { what: 'proof with the wrong secret', first: hello(rand), proof: (t) => proofFrame(computeProof(wrongKey, 'init', t)) },
    { what: 'reflected responder proof', first: hello(rand), proof: (t) => proofFrame(computeProof(authKey, 'resp', t)) },
    { what: 'empty proof', first: hello(rand), proof: () => proofFrame(Buffer.alloc(0)) },
    { what: '31-byte proof', first: hello(rand), proof: (t) => proofFrame(computeProof(authKey, 'init', t).subarray(0, 31)) },
    { what: 'second HELLO instead of proof', first: hello(rand), proof: () => hello(rand) },
  ];
  const out = [...fixed];
  for (let i = out.length; i < n; i++) {
    const kind = rand();
    if (kind < 0.25) {
      out.push({ what: `random#${i}`, first: bytes(rand, int(rand, 1, 300)) });
    } else if (kind < 0.75) {
      const m = mutate(rand, hello(rand));
      out.push({ what: `hello-mut#${i}(${m.what})`, first: m.out });
    } else {
      const seed = rand();
      out.push({
        what: `proof-mut#${i}`,
        first: hello(rand, { channel: 'control' }),
        proof: (t) => {
          // Mutate the correct proof frame, but never into it (a prefix of it would authenticate).
          const good = proofFrame(computeProof(authKey, 'init', t));
          const r = prng(Math.floor(seed * 2 ** 32));
          for (;;) {
            const m = mutate(r, good);
            if (m.out.length >= good.length && m.out.subarray(0, good.length).equals(good)) continue;
            return m.out;
          }
        },
      });
    }
  }
  return out;
}

/** Reads one frame from the socket (the node's HELLO_REPLY), or null when it closes first. */
function readFrame(s: Socket, ms: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => finish(null), ms);
    const finish = (v: Buffer | null): void => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('close', onClose);
      s.pause();
      resolve(v);
    };
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) finish(buf.subarray(0, 4 + buf.readUInt32BE(0)));
    };
    const onClose = (): void => finish(null);
    s.on('data', onData);
    s.once('close', onClose);
  });
}

async function runHandshakeCase(k: HsCase): Promise<void> {
  const s = await rawConnect(lb1.host, lb1.port);
  if (!k.proof) {
    await sendAndFinish(s, k.first);
    return;
  }
  const nonceA = k.first.subarray(k.first.length - 24);
  s.write(k.first);
  const reply = await readFrame(s, 10_000);
  if (reply === null) {
    s.destroy();
    throw new Error(`${k.what}: the node refused a valid HELLO`);
  }
  const r = decodeReply(reply.subarray(6));
  const channel = (['control', 'http', 'tcp', 'udp'] as const)[k.first[6 + 5]];
  const t = transcript({ cluster: 'test', initiator: 'lb3', responder: 'lb1', channel, nonceA, nonceB: r.nonce });
  await sendAndFinish(s, k.proof(t));
}

test('handshake fuzz: every unauthenticated connection is refused and counted once; nothing changes', async (t) => {
  const rand = prng(SEED);
  const cases = handshakeCases(rand, 400);
  const tablesBefore = await tableKeys();
  const before = await reasons(c, 'lb1', 'tandem_peer_auth_failures_total');
  const t0 = Date.now();
  // Two silent half-HELLOs run alongside: they must end as `timeout` (after 2 s), not hang forever.
  const silent = await Promise.all([0, 1].map(() => rawConnect(lb1.host, lb1.port)));
  for (const s of silent) s.write(hello(rand).subarray(0, 10));
  const silentDone = Promise.all(silent.map((s) => closed(s, 20_000)));
  await pool(cases, 16, async (k) => {
    try {
      await runHandshakeCase(k);
    } catch (err) {
      throw new Error(`seed ${SEED} case "${k.what}": ${(err as Error).message}`, { cause: err });
    }
  });
  assert.deepEqual(await silentDone, [true, true], 'silent connections dropped by the handshake timeout');
  const expected = cases.length + silent.length;
  await waitUntil(async () => total(await reasons(c, 'lb1', 'tandem_peer_auth_failures_total')) - total(before) >= expected, 2000, 'failures counted').catch(() => undefined);
  const d = delta(before, await reasons(c, 'lb1', 'tandem_peer_auth_failures_total'));
  t.diagnostic(`seed ${SEED}: ${cases.length} handshake cases + 2 silent in ${Date.now() - t0} ms; refusals by reason ${JSON.stringify(d)}`);
  assert.equal(Object.values(d).reduce((a, b) => a + b, 0), expected, 'exactly one counted refusal per connection');
  assert.equal(d.timeout, 2, 'the two silent connections timed out');
  assert.deepEqual(await tableKeys(), tablesBefore, 'no table change');
  await lb2Alive();
  await assertNodesSound(c, ['lb1', 'lb2']);
});

test('handshake flood: past 256 pending handshakes new connections are refused as busy, all counted', async (t) => {
  const before = await reasons(c, 'lb1', 'tandem_peer_auth_failures_total');
  const N = 300;
  const socks: Socket[] = [];
  for (let i = 0; i < N; i += 50) socks.push(...(await Promise.all(Array.from({ length: Math.min(50, N - i) }, () => rawConnect(lb1.host, lb1.port)))));
  // The node refuses what is over the bound as it accepts it: wait until it has (a busy node is slow).
  let mid: Record<string, number> = {};
  await waitUntil(async () => {
    mid = delta(before, await reasons(c, 'lb1', 'tandem_peer_auth_failures_total'));
    return (mid.busy ?? 0) >= N - 256;
  }, 20_000, 'busy refusals').catch(() => undefined);
  for (const s of socks) s.destroy();
  await waitUntil(async () => total(await reasons(c, 'lb1', 'tandem_peer_auth_failures_total')) - total(before) >= N, 3000, 'all counted');
  const d = delta(before, await reasons(c, 'lb1', 'tandem_peer_auth_failures_total'));
  t.diagnostic(`${N} silent connections: while open ${JSON.stringify(mid)}; in the end ${JSON.stringify(d)}`);
  assert.ok((mid.busy ?? 0) >= N - 256, `at least ${N - 256} refused as busy at once`);
  assert.equal(total(new Map(Object.entries(d))), N, 'one refusal per connection');
  // The node still accepts a real handshake afterwards.
  const s = await authConnect(lb1, 'lb3', 'tcp');
  s.destroy();
  await lb2Alive();
});

// ---- 2. control frames after a valid handshake --------------------------------------------------

type Prelude = 'established' | 'unestablished' | 'in-resync';
const BASE_SEQ = 1000;

interface CtlCase {
  readonly what: string;
  readonly prelude: Prelude;
  readonly incarnation: Buffer;
  readonly bytes: Buffer;
}

/** A fixed clock for fuzzed entries, so that a seed gives byte-identical cases on every run. */
const FUZZ_T0 = Date.UTC(2025, 0, 1);

function fuzzEntries(rand: Rand, i: number): FlowEntry[] {
  const now = FUZZ_T0;
  return Array.from({ length: int(rand, 1, 4) }, (_, j) =>
    entry(pick(rand, [WEB, TCP, UDP]), `fz${i}-${j}`, {
      primary: pick(rand, ['lb1', 'lb2', 'lb3']),
      backup: pick(rand, ['lb1', 'lb2', 'lb3', null]),
      backend: pick(rand, [null, backends[0].address, '127.0.0.1:9']),
      version: now * 1024 + j,
      lastActive: now,
      ended: rand() < 0.1,
    }),
  );
}

function controlCases(rand: Rand, n: number): CtlCase[] {
  const out: CtlCase[] = [];
  for (let i = 0; i < n; i++) {
    const p = rand();
    const prelude: Prelude = p < 0.7 ? 'established' : p < 0.8 ? 'unestablished' : 'in-resync';
    const incarnation = bytes(rand, 8);
    incarnation[0] |= 1; // never all zero
    let template: Buffer;
    let kind: string;
    const k = rand();
    if (k < 0.35) {
      kind = 'entries';
      template = batchFrame(BASE_SEQ + 1, fuzzEntries(rand, i));
    } else if (k < 0.5) {
      kind = 'chunk';
      template = batchFrame(null, fuzzEntries(rand, i));
    } else if (k < 0.6) {
      kind = 'entries×2';
      template = Buffer.concat([batchFrame(BASE_SEQ + 1, fuzzEntries(rand, i)), batchFrame(BASE_SEQ + 2, fuzzEntries(rand, i + 100_000))]);
    } else if (k < 0.65) {
      kind = 'open';
      template = Buffer.from(encodeOpen(bytes(rand, 8), true, null, 0));
    } else if (k < 0.7) {
      kind = 'ack';
      const w = ByteWriter.frame(FrameType.ACK, 16);
      w.u64(int(rand, 0, 5));
      template = Buffer.from(w.finish());
    } else if (k < 0.75) {
      kind = 'resync';
      template = Buffer.concat([encodeResyncBegin(incarnation, BASE_SEQ + 5, true), batchFrame(null, fuzzEntries(rand, i)), encodeResyncEnd(1)]);
    } else if (k < 0.8) {
      kind = 'heartbeat';
      template = encodeFrame(FrameType.HEARTBEAT);
    } else if (k < 0.9) {
      kind = 'random-frame';
      const payload = bytes(rand, int(rand, 0, 64));
      const type = rand() < 0.7 ? int(rand, 0x10, 0x16) : int(rand, 0, 255);
      template = encodeFrame(type, payload);
    } else {
      kind = 'random-bytes';
      template = bytes(rand, int(rand, 1, 100));
    }
    const m = kind.startsWith('random') || rand() < 0.15 ? { out: template, what: 'as is' } : mutate(rand, template);
    out.push({ what: `#${i} ${prelude} ${kind} (${m.what})`, prelude, incarnation, bytes: m.out });
  }
  return out;
}

function preludeBytes(k: { prelude: Prelude; incarnation: Buffer }): Buffer {
  const parts = [encodeOpen(k.incarnation, true, null, 0)];
  if (k.prelude !== 'unestablished') parts.push(encodeResyncBegin(k.incarnation, BASE_SEQ, true));
  if (k.prelude === 'established') parts.push(encodeResyncEnd(0));
  return Buffer.concat(parts.map((b) => Buffer.from(b)));
}

const keyOf = (e: { service: string; key: string }): string => `${e.service}\u0000${e.key}`;

test('control-link fuzz: verdicts match the protocol model; nothing of a rejected frame is applied', async (t) => {
  const rand = prng(SEED + 1);
  const cases = controlCases(rand, 300);
  const baseline = await tableKeys();
  const before = await reasons(c, 'lb1', 'tandem_peer_rejected_frames_total');
  const state: StreamState = { incarnation: null, lastSeq: 0, complete: false };
  const allowed = new Set(baseline);
  const refusedByClock: ModelEntry[] = [];
  const expected: Record<string, number> = {};
  let last = before;
  const mismatches: string[] = [];
  const t0 = Date.now();
  for (const k of cases) {
    const pre = preludeBytes(k);
    const vp = judge(pre, state);
    assert.equal(vp.rejected, null, 'the prelude is valid');
    const v = judge(k.bytes, state);
    for (const e of v.applied) allowed.add(keyOf(e));
    refusedByClock.push(...v.hlcRefused);
    if (v.rejected) expected[v.rejected] = (expected[v.rejected] ?? 0) + 1;
    const s = await authConnect(lb1, 'lb3', 'control');
    const finished = await sendAndFinish(s, Buffer.concat([pre, k.bytes]));
    assert.ok(finished, `${k.what}: the node closed the link`);
    const now = await reasons(c, 'lb1', 'tandem_peer_rejected_frames_total');
    const d = delta(last, now);
    last = now;
    const got = Object.keys(d).join(',') || null;
    if (got !== v.rejected || (v.rejected && d[v.rejected] !== 1)) mismatches.push(`seed ${SEED + 1} ${k.what}: model ${v.rejected ?? 'accept'}, node ${JSON.stringify(d)}; bytes ${k.bytes.subarray(0, 48).toString('hex')}`);
  }
  const d = delta(before, last);
  t.diagnostic(`${cases.length} control cases in ${Date.now() - t0} ms; rejected by reason: node ${JSON.stringify(d)}, model ${JSON.stringify(expected)}`);
  assert.deepEqual(mismatches, [], 'node and protocol model agree on every case');
  // Entries: everything in the table was there before or came in a batch the model accepts.
  await sleep(100);
  const after = await tableKeys();
  const stray = [...after].filter((x) => !allowed.has(x));
  assert.deepEqual(stray.slice(0, 5), [], 'no entry from a rejected or refused batch');
  for (const e of refusedByClock) assert.ok(!after.has(keyOf(e)) || baseline.has(keyOf(e)), `entry ${e.key} with a far-future version was refused`);
  await lb2Alive();
  await assertNodesSound(c, ['lb1', 'lb2']);
});

test('odd but well-formed entries from an authenticated peer never break routing', async (t) => {
  const now = Date.now();
  const inc = cryptoRandom(8);
  inc[0] |= 1;
  const web = (key: string, f: Partial<FlowEntry>) => entry(WEB, key, { version: now * 1024 + 7, ...f });
  const odd: Array<{ what: string; e: FlowEntry; probe: boolean }> = [
    { what: 'primary is a node this config does not know (rolling membership change)', e: web('odd-unknown-primary', { primary: 'lb9', backup: null }), probe: true },
    { what: 'backup unknown', e: web('odd-unknown-backup', { primary: 'lb2', backup: 'lb9' }), probe: true },
    { what: 'primary == backup', e: web('odd-same-owners', { primary: 'lb2', backup: 'lb2' }), probe: true },
    { what: 'backend not an address', e: web('odd-bad-backend', { primary: 'lb1', backend: 'not-an-address' }), probe: true },
    { what: 'backend not in the pool', e: web('odd-foreign-backend', { primary: 'lb1', backend: '127.0.0.1:9' }), probe: true },
    { what: 'version 0', e: web('odd-version-0', { version: 0 }), probe: true },
    { what: 'lastActive 0 (long idle)', e: web('odd-idle', { lastActive: 0 }), probe: true },
    { what: 'lastActive 1e300', e: web('odd-future-active', { lastActive: 1e300 }), probe: true },
    { what: 'tombstone for an unknown key', e: web('odd-ended', { ended: true }), probe: true },
    { what: 'empty key', e: web('', {}), probe: false },
    { what: 'unknown service', e: entry('no-such-service', 'k', { version: now * 1024 }), probe: false },
    { what: 'control entry without a bar', e: entry('~backends', 'nobar', { backend: 'draining', version: now * 1024 }), probe: false },
    { what: 'control entry for an unknown service', e: entry('~backends', 'zzz|1.2.3.4:5', { backend: 'draining', version: now * 1024 }), probe: false },
    { what: 'control entry, empty service', e: entry('~backends', '|1.2.3.4:5', { backend: 'draining', version: now * 1024 }), probe: false },
  ];
  const s = await authConnect(lb1, 'lb3', 'control');
  s.resume();
  s.write(Buffer.concat([preludeBytes({ prelude: 'established', incarnation: inc }), batchFrame(BASE_SEQ + 1, odd.map((o) => o.e))]));
  await sleep(300);
  assert.ok(!s.destroyed, 'the batch is well-formed: the link stays up');
  s.destroy();
  // A client request for each of those keys gets an answer (any status) within the timeout.
  const results: string[] = [];
  for (const o of odd.filter((x) => x.probe)) {
    const n = c.node('lb1');
    const res = await fetch(`http://${n.host}:${BASE + 10}/odd`, { headers: { 'x-session': o.e.key }, signal: AbortSignal.timeout(15_000) }).then(
      async (r) => `${r.status}`,
      (err: Error) => `no answer (${err.name})`,
    );
    results.push(`${o.what}: ${res}`);
  }
  t.diagnostic(results.join('\n'));
  assert.deepEqual(results.filter((r) => r.includes('no answer')), [], 'every request answered');
  assert.deepEqual(results.filter((r) => / 5\d\d$/.test(r) && !/ 50[234]$/.test(r)), [], 'no internal error status');
  await lb2Alive();
  await assertNodesSound(c, ['lb1', 'lb2']);
});

// ---- 3. forwarded TCP headers --------------------------------------------------------------------

test('TCP forward-header fuzz: only intact, unreplayed headers from their own ingress pass, whatever their timestamp; every refusal counted', async (t) => {
  const rand = prng(SEED + 2);
  const key = deriveForwardKey(TEST_SECRET);
  const header = (f: Partial<Parameters<typeof encodeForwardHeader>[1]> = {}, k = key) =>
    encodeForwardHeader(k, { service: TCP, key: `127.0.0.9:${int(rand, 1024, 65535)}`, clientAddress: '127.0.0.9', clientPort: 4000, localAddress: '127.0.0.1', localPort: BASE + 11, ingress: 'lb3', nonce: bytes(rand, 16), ...f });
  const replayed = header();
  type TcpCase = { what: string; bytes: Buffer; expect: string | null };
  const cases: TcpCase[] = [
    { what: 'intact', bytes: header(), expect: null },
    { what: 'ingress is another node', bytes: header({ ingress: 'lb2' }), expect: 'misrouted' },
    // Freshness is the stream's own handshake, not a clock: a sender's clock 5 minutes off is fine.
    { what: 'stamped by a clock five minutes behind', bytes: header({ timestampMs: Date.now() - 300_000 }), expect: null },
    { what: 'first use', bytes: replayed, expect: null },
    { what: 'replayed', bytes: replayed, expect: 'replay' },
    { what: 'unknown service', bytes: header({ service: 'nope' }), expect: 'unknown-service' },
    { what: 'MAC with another secret', bytes: header({}, deriveForwardKey('another-secret-of-some-length')), expect: 'mac' },
    { what: 'random bytes', bytes: bytes(rand, 64), expect: 'malformed' },
  ];
  for (let i = 0; i < 150; i++) {
    const h = header();
    const m = mutate(rand, h);
    const intact = m.out.length >= h.length && m.out.subarray(0, h.length).equals(h);
    cases.push({ what: `mut#${i}(${m.what})`, bytes: m.out, expect: intact ? null : 'any' });
  }
  const before = await reasons(c, 'lb1', 'tandem_tcp_forward_rejected_total');
  const conns0 = backends[1].count();
  const echoes: string[] = [];
  // In order for the replay pair; the rest may overlap.
  const ordered = cases.slice(0, 8);
  for (const k of ordered) {
    const s = await authConnect(lb1, 'lb3', 'tcp');
    if (k.expect === null) {
      const got: Buffer[] = [];
      s.on('data', (d: Buffer) => got.push(d));
      s.write(Buffer.concat([k.bytes, Buffer.from('ping')]));
      await waitUntil(() => Buffer.concat(got).length >= 5, 3000, `${k.what}: status + echo`);
      echoes.push(Buffer.concat(got).toString('latin1', 1));
      assert.equal(Buffer.concat(got)[0], 0, `${k.what}: status OK`);
      s.destroy();
    } else {
      await sendAndFinish(s, Buffer.concat([k.bytes, Buffer.from('ping')]));
    }
  }
  await pool(cases.slice(8), 8, async (k) => {
    const s = await authConnect(lb1, 'lb3', 'tcp');
    await sendAndFinish(s, Buffer.concat([k.bytes, Buffer.from('ping')]));
  });
  const wantRejected = cases.filter((k) => k.expect !== null).length;
  await waitUntil(async () => total(await reasons(c, 'lb1', 'tandem_tcp_forward_rejected_total')) - total(before) >= wantRejected, 3000, 'refusals counted').catch(() => undefined);
  const d = delta(before, await reasons(c, 'lb1', 'tandem_tcp_forward_rejected_total'));
  t.diagnostic(`${cases.length} TCP forward cases: refusals ${JSON.stringify(d)}; ${cases.length - wantRejected} intact; echo ${JSON.stringify(echoes)}`);
  for (const k of ordered) if (k.expect !== null && k.expect !== 'any') assert.ok((d[k.expect] ?? 0) >= 1, `${k.what} counted as ${k.expect}`);
  assert.equal(total(new Map(Object.entries(d))), wantRejected, 'every refused header counted once, no intact one refused');
  assert.deepEqual(echoes, ['ping', 'ping', 'ping'], 'intact headers reach the backend');
  // Backend connections: only the intact headers opened one (mutations that only appended bytes did too).
  const intactCount = cases.length - wantRejected;
  await waitUntil(() => backends[1].count() - conns0 === intactCount, 2000, 'backend connections').catch(() => undefined);
  assert.equal(backends[1].count() - conns0, intactCount, 'no refused header reached the backend');
  await assertNodesSound(c, ['lb1', 'lb2']);
});

// ---- 4. UDP encapsulations --------------------------------------------------------------------

test('UDP encapsulation fuzz: only authentic datagrams of the current incarnations, from the sender\'s own address, pass once; every refusal counted', async (t) => {
  const rand = prng(SEED + 3);
  const key = deriveUdpKey(TEST_SECRET);
  const other = deriveUdpKey('another-secret-of-some-length');
  // The test owns lb3's UDP address: lb3 never runs, so its datagrams come from the right source.
  const lb3: UdpSocket = createSocket('udp4');
  const stranger: UdpSocket = createSocket('udp4');
  t.after(() => {
    for (const s of [lb3, stranger]) {
      try {
        s.close();
      } catch {
        /* never bound */
      }
    }
  });
  await bindUdp(lb3, c.node('lb3').peerPort, c.node('lb3').host);
  await bindUdp(stranger, 0, '127.0.0.1');
  let replies = 0;
  lb3.on('message', () => replies++);
  // The incarnations are agreed on the control link: lb3 (the test) announces one, learns lb1's.
  const lb3Inc = bytes(rand, 8);
  lb3Inc[0] |= 1;
  const { theirs: lb1Inc } = await announce(lb1, 'lb3', lb3Inc);
  const earlier = Buffer.from(lb3Inc.map((b) => b ^ 0x5a));
  let counter = 1n;
  const enc = (f: Partial<{ type: 1 | 2; sender: string; service: string; key: string; ingress: string; from: Buffer; to: Buffer; k: Buffer; port: number }> = {}) =>
    encodeEncap(
      f.k ?? key,
      { type: f.type ?? EncapType.FORWARD, sender: f.sender ?? 'lb3', service: f.service ?? UDP, key: f.key ?? `127.0.0.9:${f.port ?? 5000}`, client: { address: '127.0.0.9', port: f.port ?? 5000 }, ingress: f.ingress ?? 'lb3' },
      { sender: f.from ?? lb3Inc, receiver: f.to ?? lb1Inc },
      counter++,
      Buffer.from('hello'),
    )!;
  type UdpCase = { what: string; bytes: Buffer; from: UdpSocket; expect: string | null };
  const replay = enc({ port: 5001 });
  const cases: UdpCase[] = [
    { what: 'authentic', bytes: enc({ port: 5000 }), from: lb3, expect: null },
    { what: 'authentic, first use', bytes: replay, from: lb3, expect: null },
    { what: 'replayed', bytes: replay, from: lb3, expect: 'replay' },
    { what: 'from another source address', bytes: enc({ port: 5002 }), from: stranger, expect: 'source-mismatch' },
    { what: 'sender is the receiver itself', bytes: enc({ sender: 'lb1' }), from: lb3, expect: 'unknown-sender' },
    { what: 'sender unknown', bytes: enc({ sender: 'lb9' }), from: lb3, expect: 'unknown-sender' },
    { what: 'MAC with another secret', bytes: enc({ k: other }), from: lb3, expect: 'mac' },
    { what: 'from an earlier incarnation of the sender', bytes: enc({ from: earlier }), from: lb3, expect: 'stale' },
    { what: 'for an earlier incarnation of the receiver', bytes: enc({ to: earlier }), from: lb3, expect: 'stale' },
    { what: 'forward whose ingress is another node', bytes: enc({ ingress: 'lb2' }), from: lb3, expect: 'misrouted' },
    { what: 'reply addressed to another node', bytes: enc({ type: EncapType.REPLY, ingress: 'lb2' }), from: lb3, expect: 'misrouted' },
    { what: 'empty datagram', bytes: Buffer.alloc(0), from: lb3, expect: 'malformed' },
  ];
  for (let i = 0; i < 300; i++) {
    const b = enc({ port: 6000 + i });
    const m = rand() < 0.1 ? { out: bytes(rand, int(rand, 1, 120)), what: 'random' } : mutate(rand, b);
    cases.push({ what: `mut#${i}(${m.what})`, bytes: m.out, from: lb3, expect: m.out.equals(b) ? null : 'any' });
  }
  const before = await reasons(c, 'lb1', 'tandem_udp_rejected_total');
  const served0 = backends[2].count();
  const keys0 = await tableKeys();
  for (let i = 0; i < cases.length; i++) {
    const k = cases[i];
    k.from.send(k.bytes, c.node('lb1').peerPort, c.node('lb1').host);
    // A few at a time (~1000/s): the point is the receiver's checks, not the kernel's socket
    // buffer, which must absorb a stall of the node (GC, a busy CI machine) without dropping.
    if (i % 5 === 4) await sleep(5);
  }
  const wantRejected = cases.filter((k) => k.expect !== null).length;
  const wantServed = cases.length - wantRejected;
  await waitUntil(async () => total(await reasons(c, 'lb1', 'tandem_udp_rejected_total')) - total(before) >= wantRejected && backends[2].count() - served0 >= wantServed, 3000, 'all datagrams handled').catch(() => undefined);
  const d = delta(before, await reasons(c, 'lb1', 'tandem_udp_rejected_total'));
  t.diagnostic(`${cases.length} UDP cases: refusals ${JSON.stringify(d)}; served ${backends[2].count() - served0} (expected ${wantServed}); replies back to lb3 ${replies}`);
  for (const k of cases.slice(0, 12)) if (k.expect !== null && k.expect !== 'any') assert.ok((d[k.expect] ?? 0) >= 1, `${k.what} counted as ${k.expect}`);
  assert.equal(total(new Map(Object.entries(d))), wantRejected, 'every refused datagram counted once');
  assert.equal(backends[2].count() - served0, wantServed, 'only authentic datagrams reached the backend');
  const added = [...(await tableKeys())].filter((x) => !keys0.has(x));
  assert.ok(added.every((x) => x.startsWith(`${UDP}\u0000`)), 'only flows of the UDP service were added');
  assert.ok(added.length <= wantServed, `entries added (${added.length}) only for authentic datagrams (${wantServed})`);
  await assertNodesSound(c, ['lb1', 'lb2']);
});
