/**
 * Chaos (issue 10): 4 nodes, 3 backends per protocol, 60 s of bounded mixed load — HTTP GETs
 * with session keys, TCP connections, UDP flows — while a controller kills -9 a random node every
 * 10 s and restarts it 3 s later. Figures: failed idempotent GETs, sessions that changed backend,
 * UDP flows that changed backend, and whether the four tables are identical at the end (every
 * field of every entry, all services).
 *
 * Clients behave like clients of a load-balancer tier: they send to nodes that are up (as a VIP
 * or DNS in front of the tier would), and a request whose *ingress* node was killed while it was
 * in flight cannot be answered by anyone — such a GET is retried once on another node, like any
 * HTTP client retries an idempotent request after a connection reset, and is counted apart. What
 * the tier promises, and what is asserted, is that no GET fails because a flow's *owner* died and
 * that no session loses its backend. TANDEM_CHAOS_SEED picks another kill order; TANDEM_CHAOS_MS
 * another duration (default 60 000).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import net from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { startCluster, sleep, waitUntil, type TestCluster, type FlowView } from '../helpers/cluster.js';
import { httpBackend, udpBackend, type Backend } from '../helpers/backends.js';
import { prng } from '../helpers/prng.js';
import { assertNodesSound, assertStarted } from './helpers/metrics.js';
import { bindUdp } from './helpers/peer.js';
import { keyedGet } from './helpers/http-get.js';
import { idTcpBackend } from './helpers/mixed-load.js';

const BASE = 17800;
const HTTP_PORT = BASE + 5;
const TCP_PORT = BASE + 6;
const UDP_PORT = BASE + 7;
const SEED = Number(process.env.TANDEM_CHAOS_SEED ?? 20251124);
const DURATION_MS = Number(process.env.TANDEM_CHAOS_MS ?? 60_000);
const KILL_EVERY_MS = 10_000;
const DOWN_MS = 3_000;

let c: TestCluster;
const backends: Backend[] = [];

before(async () => {
  for (let i = 1; i <= 3; i++) {
    backends.push(await httpBackend(`h${i}`));
    backends.push(await idTcpBackend(`t${i}`));
    backends.push(await udpBackend(`u${i}`));
  }
  const of = (p: string) => backends.filter((b) => b.id.startsWith(p)).map((b) => ({ address: b.address }));
  c = await startCluster({
    basePort: BASE,
    nodes: 4,
    services: [
      { name: 'web', protocol: 'http', port: HTTP_PORT, flowKey: 'header:x-session', backends: of('h'), healthCheck: { type: 'http', path: '/healthz', intervalMs: 1000 }, timeouts: { connectMs: 1000, requestMs: 5000 } },
      { name: 'stream', protocol: 'tcp', port: TCP_PORT, flowKey: 'connection', backends: of('t'), healthCheck: { type: 'tcp', intervalMs: 1000 } },
      { name: 'dgram', protocol: 'udp', port: UDP_PORT, flowKey: 'connection', backends: of('u'), healthCheck: { type: 'none' } },
    ],
  });
  await assertStarted(c, ['lb1', 'lb2', 'lb3', 'lb4']);
});

after(async () => {
  await c?.stop();
  await Promise.all(backends.map((b) => b.close()));
});

/** Which nodes clients may use, and a per-node epoch bumped at each kill (to classify failures). */
class Tier {
  readonly up = new Set<string>();
  readonly epoch = new Map<string, number>();
  constructor(ids: readonly string[]) {
    for (const id of ids) {
      this.up.add(id);
      this.epoch.set(id, 0);
    }
  }
  pick(rand: () => number, not?: string): string | null {
    // Sorted: the choice depends on the seed alone, not on the order nodes came back in.
    const ids = [...this.up].filter((x) => x !== not).sort();
    return ids.length ? ids[Math.floor(rand() * ids.length)] : null;
  }
}

interface HttpFigures {
  requests: number;
  ok: number;
  failed: number;
  ingressKilled: number;
  retriedOk: number;
  errors: string[];
  backends: Map<string, Set<string>>;
}

function httpGet(host: string, agent: Agent, key: string): Promise<{ status: number; id: string | null }> {
  return keyedGet(host, HTTP_PORT, `/c?k=${key}`, agent, key, 8000);
}

async function httpLoad(tier: Tier, stop: () => boolean, rand: () => number): Promise<HttpFigures> {
  const f: HttpFigures = { requests: 0, ok: 0, failed: 0, ingressKilled: 0, retriedOk: 0, errors: [], backends: new Map() };
  const agents = new Map(c.nodes.map((n) => [n.id, new Agent({ keepAlive: true, maxSockets: 8 })]));
  const keys = Array.from({ length: 120 }, (_, i) => `chaos-${i}`);
  const one = async (id: string, key: string): Promise<{ status: number; id: string | null }> => httpGet(c.node(id).host, agents.get(id)!, key);
  await Promise.all(
    Array.from({ length: 6 }, async () => {
      while (!stop()) {
        const key = keys[Math.floor(rand() * keys.length)];
        const node = tier.pick(rand);
        if (node === null) {
          await sleep(10);
          continue;
        }
        const epoch = tier.epoch.get(node);
        f.requests++;
        let r: { status: number; id: string | null } | null = null;
        try {
          r = await one(node, key);
        } catch (err) {
          if (tier.epoch.get(node) !== epoch) {
            // The ingress itself was killed under this request: retry once elsewhere.
            f.ingressKilled++;
            const other = tier.pick(rand, node);
            if (other !== null) r = await one(other, key).catch(() => null);
            if (r?.status === 200) f.retriedOk++;
          } else if (f.errors.length < 10) f.errors.push(`${node} ${key}: ${(err as Error).message}`);
        }
        if (r?.status === 200 && r.id) {
          f.ok++;
          const s = f.backends.get(key) ?? new Set<string>();
          s.add(r.id);
          f.backends.set(key, s);
        } else {
          f.failed++;
          if (r && f.errors.length < 10) f.errors.push(`${node} ${key}: status ${r.status}`);
        }
        await sleep(10);
      }
    }),
  );
  for (const a of agents.values()) a.destroy();
  return f;
}

interface TcpFigures {
  connections: number;
  ok: number;
  ingressKilled: number;
  ownerLost: number;
  connectFailed: number;
  errors: string[];
}

async function tcpLoad(tier: Tier, stop: () => boolean, rand: () => number): Promise<TcpFigures> {
  const f: TcpFigures = { connections: 0, ok: 0, ingressKilled: 0, ownerLost: 0, connectFailed: 0, errors: [] };
  const once = (node: string): Promise<'ok' | 'connect' | 'broken'> =>
    new Promise((resolve) => {
      const s = net.connect(TCP_PORT, c.node(node).host);
      let got = '';
      let sent = 0;
      let settled = false;
      let backend: string | null = null;
      const done = (v: 'ok' | 'connect' | 'broken'): void => {
        if (settled) return;
        settled = true;
        clearInterval(timer);
        clearTimeout(limit);
        // A clean close (FIN) ends the connection flow the way a client normally does.
        if (v === 'ok') s.end();
        else s.destroy();
        setTimeout(() => s.destroy(), 1000).unref();
        resolve(v);
      };
      // Four pings 200 ms apart: each must come back, from the same backend.
      const timer = setInterval(() => {
        if (sent >= 4) return;
        s.write(`ping${sent++};`);
      }, 200);
      // Patience, not a bound (a busy machine answers late): a working connection ends well before.
      const limit = setTimeout(() => done('broken'), 20_000);
      s.on('connect', () => s.write(`ping${sent++};`));
      s.on('data', (d: Buffer) => {
        got += d.toString();
        const m = /^(t\d):/.exec(got);
        if (m) backend ??= m[1];
        const answers = got.split(';').filter((x) => x.length > 0);
        if (answers.length >= 4 && answers.every((a) => a.startsWith(`${backend}:`) || a.startsWith('ping'))) done('ok');
      });
      s.on('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'connect' : 'broken'));
      s.on('close', () => done(got.length === 0 && sent <= 1 ? 'connect' : 'broken'));
    });
  await Promise.all(
    Array.from({ length: 3 }, async () => {
      while (!stop()) {
        const node = tier.pick(rand);
        if (node === null) {
          await sleep(10);
          continue;
        }
        const epoch = tier.epoch.get(node);
        const epochs = new Map(tier.epoch);
        f.connections++;
        const r = await once(node);
        if (r === 'ok') f.ok++;
        else if (tier.epoch.get(node) !== epoch) f.ingressKilled++;
        else if ([...tier.epoch].some(([id, e]) => epochs.get(id) !== e)) f.ownerLost++; // another node died under it: its owner
        else {
          f.connectFailed++;
          if (f.errors.length < 10) f.errors.push(`${node}: ${r}`);
        }
        await sleep(20);
      }
    }),
  );
  return f;
}

interface UdpFigures {
  flows: number;
  sent: number;
  replies: number;
  backends: Map<number, Set<string>>;
  ingressMoves: number;
}

async function udpLoad(tier: Tier, stop: () => boolean, rand: () => number): Promise<UdpFigures> {
  const f: UdpFigures = { flows: 24, sent: 0, replies: 0, backends: new Map(), ingressMoves: 0 };
  const socks: UdpSocket[] = [];
  for (let i = 0; i < f.flows; i++) {
    const s = createSocket('udp4');
    await bindUdp(s, 0, '127.0.0.1');
    const port = s.address().port;
    s.on('message', (m: Buffer) => {
      f.replies++;
      const id = m.toString().split(':')[0];
      const set = f.backends.get(port) ?? new Set<string>();
      set.add(id);
      f.backends.set(port, set);
    });
    socks.push(s);
  }
  // Each flow sticks to its ingress until that node goes down, like a client behind a VIP.
  const ingress = socks.map(() => tier.pick(rand));
  while (!stop()) {
    for (let i = 0; i < socks.length; i++) {
      if (ingress[i] === null || !tier.up.has(ingress[i]!)) {
        ingress[i] = tier.pick(rand);
        f.ingressMoves++;
      }
      if (ingress[i] === null) continue;
      socks[i].send(`d${f.sent++}`, UDP_PORT, c.node(ingress[i]!).host);
    }
    await sleep(100);
  }
  await sleep(500);
  for (const s of socks) s.close();
  return f;
}

async function tables(): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const n of c.nodes) {
    const rows: string[] = [];
    for (const service of ['web', 'stream', 'dgram']) {
      const r = await c.get(n.id, `/api/flows?service=${service}&limit=1000000`);
      for (const e of (r.body as { flows: FlowView[] }).flows) rows.push(`${service} ${e.key} ${e.primary} ${e.backup} ${e.backend} ${e.version} ${e.writer}`);
    }
    out.set(n.id, rows.sort());
  }
  return out;
}

test(`chaos: 4 nodes, mixed load for ${DURATION_MS / 1000} s, kill -9 a random node every 10 s (restart after 3 s)`, { timeout: DURATION_MS + 60_000 }, async (t) => {
  const rand = prng(SEED);
  const tier = new Tier(c.nodes.map((n) => n.id));
  const t0 = Date.now();
  const stop = (): boolean => Date.now() - t0 >= DURATION_MS;
  const loads = Promise.all([httpLoad(tier, stop, prng(SEED + 1)), tcpLoad(tier, stop, prng(SEED + 2)), udpLoad(tier, stop, prng(SEED + 3))]);

  const kills: string[] = [];
  const restarts: number[] = [];
  const controller = (async () => {
    for (let at = KILL_EVERY_MS; at < DURATION_MS; at += KILL_EVERY_MS) {
      await sleep(t0 + at - Date.now());
      const victim = tier.pick(rand);
      if (victim === null) continue;
      tier.up.delete(victim);
      tier.epoch.set(victim, tier.epoch.get(victim)! + 1);
      await c.kill(victim);
      kills.push(`${victim}@${Math.round((Date.now() - t0) / 1000)}s`);
      await sleep(DOWN_MS);
      const r0 = Date.now();
      await c.start(victim);
      restarts.push(Date.now() - r0);
      tier.up.add(victim);
    }
  })();
  await controller;
  const [http, tcp, udp] = await loads;

  // Convergence: every node's table, every field, identical.
  let last = new Map<string, string[]>();
  let convergeMs = -1;
  try {
    convergeMs = await waitUntil(async () => {
      last = await tables();
      const [a, ...rest] = [...last.values()].map((x) => x.join('\n'));
      return rest.every((x) => x === a);
    }, 15_000, 'identical tables');
  } catch {
    /* reported below */
  }
  const sizes = [...last].map(([id, rows]) => `${id} ${rows.length}`).join(', ');
  // Every (service, key) on which the nodes disagree, with each node's row.
  const diffs: string[] = [];
  const byKey = new Map<string, Map<string, string>>();
  for (const [id, rows] of last) {
    for (const r of rows) {
      const [service, key] = r.split(' ');
      const k = `${service} ${key}`;
      const m = byKey.get(k) ?? new Map<string, string>();
      m.set(id, r.slice(k.length + 1));
      byKey.set(k, m);
    }
  }
  for (const [k, m] of byKey) {
    const vals = c.nodes.map((n) => m.get(n.id) ?? '(absent)');
    if (new Set(vals).size > 1) diffs.push(`${k}: ${c.nodes.map((n, i) => `${n.id}=${vals[i]}`).join(' | ')}`);
  }

  const sessionsMoved = [...http.backends].filter(([, s]) => s.size > 1).map(([k, s]) => `${k}: ${[...s].join('→')}`);
  const udpMoved = [...udp.backends].filter(([, s]) => s.size > 1).map(([p, s]) => `:${p} ${[...s].join('→')}`);
  const figures = {
    seed: SEED,
    durationS: DURATION_MS / 1000,
    kills,
    restartToReadyMs: restarts,
    http: { requests: http.requests, ok: http.ok, failed: http.failed, ingressKilledRetried: http.ingressKilled, retriedOk: http.retriedOk, sessions: http.backends.size, sessionsChangedBackend: sessionsMoved.length },
    tcp: { connections: tcp.connections, ok: tcp.ok, brokenByIngressKill: tcp.ingressKilled, brokenByOwnerKill: tcp.ownerLost, failedOtherwise: tcp.connectFailed },
    udp: { flows: udp.flows, sent: udp.sent, replies: udp.replies, lossPct: Math.round((1000 * (udp.sent - udp.replies)) / Math.max(1, udp.sent)) / 10, ingressMoves: udp.ingressMoves, flowsChangedBackend: udpMoved.length },
    tables: { identical: diffs.length === 0 && convergeMs >= 0, convergedAfterMs: convergeMs, entries: sizes },
  };
  t.diagnostic(`chaos figures ${JSON.stringify(figures)}`);
  if (http.errors.length) t.diagnostic(`http errors: ${http.errors.join(' | ')}`);
  if (tcp.errors.length) t.diagnostic(`tcp errors: ${tcp.errors.join(' | ')}`);
  if (sessionsMoved.length) t.diagnostic(`sessions that changed backend: ${sessionsMoved.slice(0, 10).join(', ')}`);
  if (udpMoved.length) t.diagnostic(`udp flows that changed backend: ${udpMoved.slice(0, 10).join(', ')}`);
  if (diffs.length) {
    t.diagnostic(diffs.slice(0, 20).join('\n'));
    // The membership story each node tells, to see which verdicts the differing entries came from.
    for (const n of c.nodes) {
      const ev = ((await c.get(n.id, '/api/events')).body as { events: Array<{ at: number; kind: string; message: string }> }).events;
      t.diagnostic(`${n.id} events: ${ev.filter((e) => e.kind === 'membership' || e.kind === 'reprotect').map((e) => `+${e.at - t0}ms ${e.message}`).join('; ')}`);
    }
  }

  assert.equal(kills.length, Math.ceil(DURATION_MS / KILL_EVERY_MS) - 1, 'a kill every 10 s');
  assert.ok(http.requests > 100, 'the load ran');
  assert.equal(http.failed, 0, `no GET failed: ${http.errors.join(' | ')}`);
  assert.deepEqual(sessionsMoved, [], 'no session changed backend (every backend stayed healthy)');
  assert.deepEqual(udpMoved, [], 'no UDP flow changed backend');
  assert.deepEqual(diffs, [], 'the four tables are identical');
  assert.ok(convergeMs >= 0, 'tables converged');
  assert.ok(tcp.ok > 0 && tcp.connectFailed === 0, `TCP connections to live nodes never failed to set up: ${tcp.errors.join(' | ')}`);
  await assertNodesSound(c, ['lb1', 'lb2', 'lb3', 'lb4']);
});
