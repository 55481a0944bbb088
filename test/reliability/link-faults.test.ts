/**
 * Bad links between nodes (issue 20): three nodes, each in its own network namespace, clients and
 * backends in another; every frame one node sends another goes through a relay that can drop,
 * delay, jitter and reorder it (helpers/impair.py: netem's model, in user space, because kernels
 * without sch_netem are common), while client traffic is untouched. Mixed HTTP/TCP/UDP load runs
 * through all three nodes throughout.
 *
 *  1. Lossy, slow, reordering links: 5 % loss, 50 ms ± 20 ms, 10 % reordered, every direction
 *     between nodes, after 3 s of load on clean links (the flows exist). Membership must not flap
 *     (every state change is counted and printed), no HTTP request and no TCP connection fails,
 *     no flow changes backend, replication converges.
 *  2. Asymmetric partition: frames lb1 → lb2 dropped, lb2 → lb1 delivered. What each node decides
 *     is sampled and printed; flows that existed before keep their backend, no request fails, the
 *     tables converge after the heal (every field of every entry), so no flow is left with two
 *     backends. Nobody is declared dead (lb3 witnesses both sides), and sessions *created* during the
 *     cut, sent through both lb1 and lb2, keep one backend: the node serving a new flow it does
 *     not own claims the backend from its primary, through lb3 when it must (claims.ts).
 *
 * The cluster runs with heartbeatMs/failureTimeoutMs tuned for such links (docs/reliability.md):
 * TANDEM_FAULTS_HEARTBEAT_MS and TANDEM_FAULTS_FAILURE_MS override them, to measure others.
 * Needs root, iproute2 and python3; skipped with a message elsewhere.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { stringify } from 'yaml';
import { TEST_SECRET, TEST_TOKEN, sleep, type FlowView } from '../helpers/cluster.js';
import { createTopology, destroyTopology, impairUnavailable, spawnIn, type ImpairRule, type Topology } from './helpers/netns.js';
import { AgentClient } from './helpers/agent-client.js';
import type { MixedResult } from './helpers/netns-agent.js';

const PEER_PORT = 24200;
const HTTP_PORT = 24210;
const TCP_PORT = 24211;
const UDP_PORT = 24212;
const BACKEND_PORTS = [24220, 24221, 24222];
const ADMIN_PORT = 24250;
// Tuned for these links (docs/reliability.md): a lost segment costs TCP's retransmission timeout
// (≥ 200 ms, doubling), so a beat every 500 ms judged suspect after 750 ms and dead after 3 s rides
// out two losses in a row; the defaults (100 / 500 ms) flap between alive and suspect.
const HEARTBEAT_MS = Number(process.env.TANDEM_FAULTS_HEARTBEAT_MS ?? 500);
const FAILURE_MS = Number(process.env.TANDEM_FAULTS_FAILURE_MS ?? 3000);
const LOSSY_MS = Number(process.env.TANDEM_FAULTS_LOSSY_MS ?? 15_000);
const BIN = new URL('../../bin/tandem.js', import.meta.url).pathname;
const AGENT = new URL('./helpers/netns-agent.ts', import.meta.url).pathname;
const IDS = ['lb1', 'lb2', 'lb3'];

/** A flow as the admin API lists it. */
type Flow = FlowView;
interface LoadOut {
  http: MixedResult[string];
  tcp: MixedResult[string];
  udp: MixedResult[string];
  udpCounts: { sent: number; replies: number; ingressMoves: number };
}
interface NodeEvent {
  seq: number;
  at: number;
  kind: string;
  message: string;
  data?: { peer: string; state: string; prev: string };
}

test('bad links: loss, delay and reordering, then an asymmetric partition; membership holds, nothing fails, tables converge', { timeout: 240_000 }, async (t) => {
  const why = impairUnavailable();
  if (why !== null) {
    t.skip(`link-faults test skipped: needs root, iproute2 (ip netns) and python3 — ${why}`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'tandem-links-'));
  const topo: Topology = await createTopology(3, { impair: true, logFile: join(dir, 'relay.log') });
  const procs: ChildProcess[] = [];
  t.after(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await sleep(100);
    destroyTopology(topo);
    rmSync(dir, { recursive: true, force: true });
  });
  const relay = topo.relay!;
  const agentProc = spawnIn(topo.clientNs, [process.execPath, '--import', 'tsx', AGENT], join(dir, 'agent.log'), true);
  procs.push(agentProc);
  const agent = new AgentClient(agentProc);
  await agent.ready(30_000);
  const be = await agent.call<{ http: string[]; tcp: string[]; udp: string[] }>('mixed-backends', { host: topo.clientHost, http: BACKEND_PORTS, tcp: 3, udp: 3 });
  const config = {
    cluster: {
      name: 'links',
      secret: TEST_SECRET,
      adminToken: TEST_TOKEN,
      heartbeatMs: HEARTBEAT_MS,
      failureTimeoutMs: FAILURE_MS,
      snapshotTimeoutMs: 2000,
      logLevel: 'warn',
      nodes: IDS.map((id, i) => ({ id, host: topo.nodeHosts[i], peerPort: PEER_PORT, adminPort: ADMIN_PORT })),
    },
    services: [
      { name: 'web', protocol: 'http', port: HTTP_PORT, flowKey: 'header:x-session', backends: be.http.map((address) => ({ address })), healthCheck: { type: 'http', path: '/healthz', intervalMs: 500, timeoutMs: 1000 } },
      { name: 'raw', protocol: 'tcp', port: TCP_PORT, flowKey: 'connection', backends: be.tcp.map((address) => ({ address })), healthCheck: { type: 'tcp', intervalMs: 500, timeoutMs: 1000 } },
      { name: 'dgram', protocol: 'udp', port: UDP_PORT, flowKey: 'connection', backends: be.udp.map((address) => ({ address })), healthCheck: { type: 'none' } },
    ],
  };
  const cfgPath = join(dir, 'tandem.yaml');
  writeFileSync(cfgPath, stringify(config));
  IDS.forEach((id, i) => procs.push(spawnIn(topo.nodeNs[i], [process.execPath, BIN, 'start', '--config', cfgPath, '--node', id, '--log-level', 'warn'], join(dir, `${id}.log`))));
  const log = (id: string): string => readFileSync(join(dir, `${id}.log`), 'utf8').split('\n').slice(-20).join('\n');

  const status = async (i: number, path: string): Promise<number> =>
    (await agent.call<{ status: number; body: string }>('get', { url: `http://${topo.nodeHosts[i]}:${ADMIN_PORT}${path}`, timeoutMs: 10_000 }, 20_000)).status;
  const admin = async (i: number, path: string): Promise<unknown> => {
    const r = await agent.call<{ status: number; body: string }>('get', { url: `http://${topo.nodeHosts[i]}:${ADMIN_PORT}${path}`, timeoutMs: 10_000 }, 20_000);
    return JSON.parse(r.body) as unknown;
  };
  const until = async (what: string, ms: number, cond: () => Promise<boolean>): Promise<number> => {
    const t0 = Date.now();
    while (Date.now() - t0 < ms) {
      if (await cond().catch(() => false)) return Date.now() - t0;
      await sleep(100);
    }
    throw new Error(`timed out after ${ms} ms: ${what}\n${IDS.map((id) => `--- ${id}\n${log(id)}`).join('\n')}`);
  };
  const views = async (): Promise<string[][]> =>
    Promise.all([0, 1, 2].map(async (i) => ((await admin(i, '/api/cluster')) as { nodes: Array<{ id: string; state: string }> }).nodes.map((n) => n.state)));
  const allAlive = async (): Promise<boolean> => (await views()).every((v) => v.every((s) => s === 'alive'));
  const dump = async (i: number): Promise<string> => {
    const rows: string[] = [];
    for (const service of ['web', 'raw', 'dgram']) {
      const r = (await admin(i, `/api/flows?service=${service}&limit=1000000`)) as { flows: Flow[] };
      for (const f of r.flows) rows.push(`${service} ${f.key} ${f.primary} ${f.backup} ${f.backend} ${f.version} ${f.writer}`);
    }
    return rows.sort().join('\n');
  };
  /** Polls until the three tables are identical; -1 when they are not after `ms` (diffs printed). */
  const converge = async (ms: number): Promise<{ ms: number; entries: number; diffs: string[] }> => {
    let tables: string[][] = [];
    const t0 = Date.now();
    while (Date.now() - t0 < ms) {
      tables = (await Promise.all([0, 1, 2].map((i) => dump(i)))).map((x) => x.split('\n'));
      if (tables[0].join('\n') === tables[1].join('\n') && tables[1].join('\n') === tables[2].join('\n')) return { ms: Date.now() - t0, entries: tables[0].length, diffs: [] };
      await sleep(200);
    }
    const byKey = new Map<string, string[]>();
    tables.forEach((rows, i) => {
      for (const r of rows) {
        const k = r.split(' ').slice(0, 2).join(' ');
        const v = byKey.get(k) ?? ['(absent)', '(absent)', '(absent)'];
        v[i] = r.split(' ').slice(2).join(' ');
        byKey.set(k, v);
      }
    });
    const diffs = [...byKey].filter(([, v]) => new Set(v).size > 1).map(([k, v]) => `${k}: ${v.map((x, i) => `${IDS[i]}=${x}`).join(' | ')}`);
    return { ms: -1, entries: tables[0]?.length ?? 0, diffs };
  };
  const lastSeq = async (): Promise<number[]> => Promise.all([0, 1, 2].map(async (i) => Math.max(0, ...((await admin(i, '/api/events')) as { events: NodeEvent[] }).events.map((e) => e.seq))));
  const transitions = async (since: number[], t0: number): Promise<string[]> => {
    const out: Array<[number, string]> = [];
    for (const i of [0, 1, 2]) {
      const ev = ((await admin(i, `/api/events?after=${since[i]}`)) as { events: NodeEvent[] }).events;
      for (const e of ev) if (e.kind === 'membership') out.push([e.at, `+${e.at - t0} ms ${IDS[i]} sees ${e.message}`]);
    }
    return out.sort((a, b) => a[0] - b[0]).map(([, s]) => s);
  };
  const dead = (ts: readonly string[]): string[] => ts.filter((s) => s.endsWith('→ dead'));
  const failovers = async (): Promise<string> => {
    const parts: string[] = [];
    for (const i of [0, 1, 2]) {
      const text = String(await agent.call<{ status: number; body: string }>('get', { url: `http://${topo.nodeHosts[i]}:${ADMIN_PORT}/metrics`, timeoutMs: 10_000 }, 20_000).then((r) => r.body));
      const total = (keep: (line: string) => boolean): number => text.split('\n').filter(keep).reduce((a, l) => a + Number(l.split(' ').pop()), 0);
      const sum = (name: string): number => total((l) => l.startsWith(name));
      const claims = ['asked', 'answered', 'relayed', 'served', 'unanswered', 'timeout'].map((o) => `${o} ${sum(`tandem_cluster_claims_total{outcome="${o}"}`)}`).join(' ');
      // A backend judged down on one node moves its flows there: a second backend that is not a second decision.
      const downs = total((l) => l.startsWith('tandem_backend_state_changes_total{') && l.includes('service="web"') && !l.includes('to="up"'));
      const health = `backend moves ${sum('tandem_backend_moves_total')}, web backends judged down ${downs}`;
      parts.push(`${IDS[i]} http failovers ${sum('tandem_http_failovers_total')}, ${health}, claims: ${claims}`);
    }
    return parts.join(', ');
  };
  const targets = (prefix: string) => ({
    http: { port: HTTP_PORT, sessions: 60, workers: 4, prefix },
    tcp: { port: TCP_PORT, workers: 2 },
    udp: { port: UDP_PORT, flows: 12, perSecond: 5, bindHost: topo.clientHost },
  });
  // Patience of 30 s per request: the test counts what failed; how slow it got is printed (max).
  const startLoad = (name: string, prefix: string) => agent.call('mixed-start', { name, hosts: topo.nodeHosts, targets: targets(prefix), timeoutMs: 30_000 });
  const stopLoad = (name: string) => agent.call<LoadOut>('mixed-stop', { name }, 120_000);
  const moved = (f: MixedResult[string]): string[] => Object.entries(f.backends).filter(([, b]) => b.length > 1).map(([k, b]) => `${k}: ${b.join('→')}`);
  const summary = (l: LoadOut): string =>
    `HTTP ${l.http.ops} GETs, ${l.http.failed} failed, p50/p99/max ${l.http.p50.toFixed(0)}/${l.http.p99.toFixed(0)}/${l.http.max.toFixed(0)} ms; ` +
    `TCP ${l.tcp.ops} connections, ${l.tcp.failed} failed, p99/max ${l.tcp.p99.toFixed(0)}/${l.tcp.max.toFixed(0)} ms; ` +
    `UDP ${l.udpCounts.sent} datagrams, ${l.udpCounts.replies} replies (${((100 * (l.udpCounts.sent - l.udpCounts.replies)) / Math.max(1, l.udpCounts.sent)).toFixed(1)} % lost), p99 ${l.udp.p99.toFixed(0)} ms; ` +
    `flows that changed backend: http ${moved(l.http).length}/${Object.keys(l.http.backends).length}, udp ${moved(l.udp).length}/${Object.keys(l.udp.backends).length}`;

  await until('all nodes ready', 60_000, async () => (await Promise.all([0, 1, 2].map((i) => status(i, '/readyz')))).every((s) => s === 200));
  await until('all nodes alive', 30_000, allAlive);
  await until('backends healthy everywhere', 30_000, async () => {
    for (const i of [0, 1, 2]) {
      const b = (await admin(i, '/api/backends')) as { services: Array<{ backends: Array<{ healthy: boolean }> }> };
      if (!b.services.every((s) => s.backends.every((x) => x.healthy))) return false;
    }
    return true;
  });
  t.diagnostic(`cluster: heartbeatMs ${HEARTBEAT_MS}, failureTimeoutMs ${FAILURE_MS}; nodes ${topo.nodeHosts.join(', ')}, clients ${topo.clientHost}`);

  // ---- 1. lossy, slow, reordering links ---------------------------------------------------------
  const lossy: ImpairRule[] = [];
  for (const a of topo.nodeHosts) for (const b of topo.nodeHosts) if (a !== b) lossy.push({ src: a, dst: b, loss: 0.05, delayMs: 50, jitterMs: 20, reorder: 0.1 });
  // The flows exist (owners and backend replicated) before the links turn bad: what is measured
  // is a tier running on bad links. (A flow created an instant before its primary turns suspect
  // can be served by a backup that has not heard of its backend yet: docs/reliability.md, open.)
  await startLoad('lossy', 'lossy');
  await sleep(3000);
  let since = await lastSeq();
  const lossyAt = Date.now();
  relay.set(lossy);
  await sleep(LOSSY_MS);
  const l1 = await stopLoad('lossy');
  const c1 = await converge(30_000);
  if (c1.ms < 0) t.diagnostic(`tables differ after the lossy phase (${c1.diffs.length} keys), e.g.\n  ${c1.diffs.slice(0, 10).join('\n  ')}`);
  const m1 = await transitions(since, lossyAt);
  const s1 = await relay.stats();
  const frames = Object.values(s1.stats).reduce((a, s) => ({ frames: a.frames + s.frames, dropped: a.dropped + s.dropped, ahead: a.ahead + s.ahead }), { frames: 0, dropped: 0, ahead: 0 });
  relay.set([]);
  t.diagnostic(`lossy links for ${LOSSY_MS / 1000} s: ${frames.frames} frames between nodes, ${frames.dropped} dropped, ${frames.ahead} sent ahead of their turn; ${summary(l1)}`);
  t.diagnostic(`membership changes (from the start of the loss): ${m1.length === 0 ? 'none' : m1.join('; ')}; tables identical (${c1.entries} entries) ${c1.ms} ms after the load stopped, links still lossy; ${await failovers()}`);
  if (l1.http.errors.length + l1.tcp.errors.length) t.diagnostic(`errors: ${[...l1.http.errors, ...l1.tcp.errors].join(' | ')}`);
  // No flapping: nobody was declared dead (that would move flows); a 'suspect' (a late beat or a
  // failed forward: the router tries the backup first, same backend) is printed above.
  assert.deepEqual(dead(m1), [], 'no node was declared dead on lossy links');
  assert.equal(l1.http.failed, 0, `no GET failed: ${l1.http.errors.join(' | ')}`);
  assert.equal(l1.tcp.failed, 0, `no TCP connection failed: ${l1.tcp.errors.join(' | ')}`);
  assert.ok(l1.http.ok > 0 && l1.tcp.ok > 0 && l1.udp.ok > 0, 'every protocol was served');
  assert.deepEqual(moved(l1.http), [], 'no HTTP session changed backend');
  // A new flow whose primary is only suspect goes to that primary first (router.hops), so a
  // missed heartbeat on a lossy link cannot give it a second backend at the backup.
  assert.deepEqual(moved(l1.udp), [], 'no UDP flow changed backend');
  assert.ok(c1.ms >= 0, 'replication converged on lossy links');

  // ---- 2. asymmetric partition: lb1 → lb2 dropped ----------------------------------------------
  await until('all alive after the lossy phase', 30_000, allAlive);
  since = await lastSeq();
  await startLoad('asym', 'asym');
  await sleep(3000); // every session has its flow, owners and backend before the cut
  const before = new Map((await dump(0)).split('\n').map((r) => [r.split(' ').slice(0, 2).join(' '), r.split(' ')[4]]));
  const cutAt = Date.now();
  relay.set([{ src: topo.nodeHosts[0], dst: topo.nodeHosts[1], loss: 1 }]);
  // New sessions only during the cut: where both sides still serve clients, what do they do?
  await startLoad('during', 'during');
  const timeline: string[] = [];
  let prev = '';
  while (Date.now() - cutAt < 8000) {
    const v = await views().catch(() => null);
    const line = v === null ? 'unreadable' : v.map((states, i) => `${IDS[i]}:[${states.map((s, j) => `${IDS[j]} ${s}`).join(', ')}]`).join(' ');
    if (line !== prev) timeline.push(`+${Date.now() - cutAt} ms ${line}`);
    prev = line;
    await sleep(200);
  }
  const during = await stopLoad('during');
  relay.set([]);
  const healAt = Date.now();
  await until('all alive after the heal', 60_000, allAlive);
  const rejoinMs = Date.now() - healAt;
  await sleep(2000);
  const l2 = await stopLoad('asym');
  const c2 = await converge(30_000);
  if (c2.ms < 0) t.diagnostic(`tables differ after the heal (${c2.diffs.length} keys), e.g.\n  ${c2.diffs.slice(0, 10).join('\n  ')}`);
  const m2 = await transitions(since, cutAt);
  const finalRows = (await dump(0)).split('\n');
  const after = new Map(finalRows.map((r) => [r.split(' ').slice(0, 2).join(' '), r.split(' ')[4]]));
  // Flows that had a backend before the cut (one created an instant before may not have had it yet).
  const changed = [...before].filter(([k, b]) => b !== 'null' && after.has(k) && after.get(k) !== b && !k.startsWith('raw ')).map(([k, b]) => `${k}: ${b} → ${after.get(k)}`);
  t.diagnostic(`asymmetric partition (lb1 → lb2 dropped) for ${healAt - cutAt} ms; what each node saw (node:[its view of lb1, lb2, lb3]):\n  ${timeline.join('\n  ')}`);
  t.diagnostic(`membership changes: ${m2.join('; ')}`);
  t.diagnostic(`sessions that existed before the cut: ${summary(l2)}`);
  t.diagnostic(`sessions created during the cut: ${summary(during)}; e.g. ${moved(during.http).slice(0, 5).join(', ')}`);
  t.diagnostic(`failovers and claims since the start: ${await failovers()}`);
  t.diagnostic(`healed: all alive after ${rejoinMs} ms; tables identical (${c2.entries} entries) ${c2.ms} ms after the load stopped; entries of flows from before the cut whose backend changed: ${changed.length}`);
  assert.equal(l2.http.failed, 0, `no GET of an existing session failed: ${l2.http.errors.join(' | ')}`);
  assert.equal(during.http.failed, 0, `no GET of a new session failed: ${during.http.errors.join(' | ')}`);
  assert.equal(l2.tcp.failed + during.tcp.failed, 0, `no TCP connection failed: ${[...l2.tcp.errors, ...during.tcp.errors].join(' | ')}`);
  assert.deepEqual(moved(l2.http), [], 'no session from before the cut changed backend');
  assert.deepEqual(moved(l2.udp), [], 'no UDP flow from before the cut changed backend');
  assert.ok(c2.ms >= 0, 'the tables converged after the heal');
  assert.deepEqual(changed, [], 'the converged tables keep every earlier flow on its backend');
  for (const i of [0, 1, 2]) assert.ok(procs[i + 1].exitCode === null, `${IDS[i]} still runs`);
  for (const id of IDS) assert.doesNotMatch(readFileSync(join(dir, `${id}.log`), 'utf8'), /uncaught exception/, `${id}: no uncaught exception`);
  await agent.call('exit', {}).catch(() => undefined);
  // lb1 and lb2 see each other suspect, not dead (lb3 witnesses both), so the three views agree on
  // every flow's owners; a node that serves a new flow it does not own first claims its backend
  // from the primary, through lb3 when it cannot reach it (src/cluster/claims.ts).
  assert.deepEqual(dead(m2), [], 'nobody was declared dead: lb3 heard lb1 and lb2 throughout');
  assert.deepEqual(moved(during.http), [], 'sessions created during the partial partition keep one backend');
  assert.deepEqual(moved(during.udp), [], 'UDP flows created during the partial partition keep one backend');
});
