/**
 * Clock skew between nodes (issue 20): three real node processes on 127.0.0.1-3, lb2 running 10
 * minutes ahead and lb3 10 minutes behind (libfaketime, Debian package `faketime`), under mixed
 * HTTP/TCP/UDP load through all three; lb3 is killed -9 and restarted (still 10 minutes behind)
 * half-way. Data-plane freshness comes from the links, not the clocks (docs/protocol.md,
 * docs/udp.md, docs/tcp.md), and the HLC follows the fastest clock (src/cluster/hlc.ts), so:
 * no request fails, no flow changes backend, the three tables converge to identical (every field
 * but lastActive, which each node keeps in its own clock), nothing is refused — neither entries
 * by the HLC nor datagrams or streams by the data plane. Prints what the HLC did.
 *
 * Skipped with a message when libfaketime is not installed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster, sleep, waitUntil, type Launch, type TestCluster, type FlowView } from '../helpers/cluster.js';
import { httpBackend, udpBackend, type Backend } from '../helpers/backends.js';
import { MixedLoad, idTcpBackend, movedFlows, percentile } from './helpers/mixed-load.js';
import { assertNodesSound, assertStarted, byLabel, metricsText, total } from './helpers/metrics.js';

const BASE = 24100;
const HTTP_PORT = BASE + 10;
const TCP_PORT = BASE + 11;
const UDP_PORT = BASE + 12;
const SKEW: Record<string, string> = { lb1: '+0', lb2: '+10m', lb3: '-10m' };
const SKEW_S: Record<string, number> = { lb1: 0, lb2: 600, lb3: -600 };

/**
 * libfaketime itself, preloaded into node (what the `faketime` command does, except that the
 * command forks: kill -9 must reach the node, not a wrapper).
 */
function libfaketime(): string | null {
  for (const dir of ['/usr/lib', '/usr/lib64', '/usr/local/lib']) {
    const candidates = [join(dir, 'faketime'), ...(existsSync(dir) ? readdirSync(dir).map((d) => join(dir, d, 'faketime')) : [])];
    for (const d of candidates) if (existsSync(join(d, 'libfaketimeMT.so.1'))) return join(d, 'libfaketimeMT.so.1');
  }
  return null;
}

const LIB = libfaketime();
const fakeEnv = (offset: string): Record<string, string> => ({ LD_PRELOAD: LIB ?? '', FAKETIME: offset, FAKETIME_DONT_FAKE_MONOTONIC: '1' });

function faketimeMissing(): string | null {
  if (LIB === null) return 'libfaketimeMT.so.1 not found';
  try {
    const out = execFileSync(process.execPath, ['-e', 'process.stdout.write(String(Date.now()))'], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, ...fakeEnv('+10m') } });
    const skew = Number(out) - Date.now();
    return skew > 500_000 && skew < 700_000 ? null : `libfaketime loaded but the clock moved by ${skew} ms`;
  } catch (err) {
    return (err as Error).message.split('\n')[0] ?? 'libfaketime failed';
  }
}

const missing = faketimeMissing();
let c: TestCluster;
const backends: Backend[] = [];
const launch = (id: string): Launch => ({ env: fakeEnv(SKEW[id]!) });

before(async () => {
  if (missing !== null) return;
  for (let i = 1; i <= 3; i++) backends.push(await httpBackend(`h${i}`), await idTcpBackend(`t${i}`), await udpBackend(`u${i}`));
  const of = (p: string) => backends.filter((b) => b.id.startsWith(p)).map((b) => ({ address: b.address }));
  c = await startCluster({
    basePort: BASE,
    start: false,
    services: [
      { name: 'web', protocol: 'http', port: HTTP_PORT, flowKey: 'header:x-session', backends: of('h'), healthCheck: { type: 'http', path: '/healthz', intervalMs: 1000 } },
      { name: 'raw', protocol: 'tcp', port: TCP_PORT, flowKey: 'client-ip', backends: of('t'), healthCheck: { type: 'tcp', intervalMs: 1000 } },
      { name: 'dgram', protocol: 'udp', port: UDP_PORT, flowKey: 'connection', backends: of('u'), healthCheck: { type: 'none' } },
    ],
  });
  await Promise.all(c.nodes.map((n) => c.start(n.id, 30_000, launch(n.id))));
  await assertStarted(c, ['lb1', 'lb2', 'lb3']);
});

after(async () => {
  await c?.stop();
  await Promise.all(backends.map((b) => b.close()));
});

async function rows(id: string): Promise<string[]> {
  const out: string[] = [];
  for (const service of ['web', 'raw', 'dgram']) {
    const r = await c.get(id, `/api/flows?service=${service}&limit=1000000`);
    for (const e of (r.body as { flows: FlowView[] }).flows) out.push(`${service} ${e.key} ${e.primary} ${e.backup} ${e.backend} ${e.version} ${e.writer}`);
  }
  return out.sort();
}

test('clock skew: one node 10 min ahead, one 10 min behind — no failed request, affinity kept, tables converge, nothing refused', { skip: missing !== null ? `clock-skew test skipped: needs libfaketime (Debian package faketime) — ${missing}` : false, timeout: 180_000 }, async (t) => {
  // The skew really is there: each process reports its start time by its own clock (off by its
  // uptime, seconds, from "now": far inside the tolerance).
  const seen: string[] = [];
  for (const n of c.nodes) {
    const start = byLabel(await metricsText(c, n.id), 'tandem_process_process_start_time_seconds', '').get('') ?? 0;
    const skew = start - Date.now() / 1000;
    seen.push(`${n.id} ${skew >= 0 ? '+' : ''}${Math.round(skew)} s`);
    assert.ok(Math.abs(skew - SKEW_S[n.id]!) < 120, `${n.id} runs ${SKEW[n.id]} (its clock reads ${Math.round(skew)} s off)`);
  }
  await waitUntil(async () => (await Promise.all(c.nodes.map((n) => c.cluster(n.id)))).every((v) => v.nodes.every((x) => x.state === 'alive')), 20_000, 'all alive');

  const hosts = c.nodes.map((n) => n.host);
  const down = new Set<string>();
  const epochs = new Map(hosts.map((h) => [h, 0]));
  const load = new MixedLoad(
    {
      http: { port: HTTP_PORT, sessions: 60, workers: 4, prefix: 'skew' },
      tcp: { port: TCP_PORT, workers: 2, clients: Array.from({ length: 30 }, (_, i) => `127.0.1.${i + 1}`) },
      udp: { port: UDP_PORT, flows: 12, perSecond: 10, bindHost: '127.0.0.1' },
    },
    { hosts, up: () => hosts.filter((h) => !down.has(h)), epochOf: (h) => epochs.get(h) ?? 0 },
  );
  load.start();
  await sleep(5000);
  // Kill -9 the node that is behind; its flows go to their backups (written by nodes whose clocks
  // disagree by 10 and 20 minutes), then it comes back, still behind, and resyncs.
  const lb3 = c.node('lb3');
  down.add(lb3.host);
  epochs.set(lb3.host, 1);
  await c.kill('lb3');
  await sleep(4000);
  await c.start('lb3');
  down.delete(lb3.host);
  await sleep(4000);
  await load.stop();

  let last: string[][] = [];
  const convergeMs = await waitUntil(async () => {
    last = await Promise.all(c.nodes.map((n) => rows(n.id)));
    return last.every((r) => r.join('\n') === last[0]!.join('\n'));
  }, 20_000, 'identical tables').catch(() => -1);

  const per: string[] = [];
  let refused = 0;
  let rejected = 0;
  for (const n of c.nodes) {
    const text = await metricsText(c, n.id);
    const ahead = byLabel(text, 'tandem_hlc_ahead_seconds', '').get('') ?? 0;
    const r = total(byLabel(text, 'tandem_hlc_refused_total', 'reason'));
    const udpStale = byLabel(text, 'tandem_udp_rejected_total', 'reason');
    const tcpRej = byLabel(text, 'tandem_tcp_forward_rejected_total', 'reason');
    refused += r;
    rejected += total(udpStale) + total(tcpRej);
    per.push(`${n.id} (${SKEW[n.id]}): HLC ahead of its clock by ${Math.round(ahead)} s, entries refused ${r}, udp rejected ${JSON.stringify(Object.fromEntries(udpStale))}, tcp forwards rejected ${JSON.stringify(Object.fromEntries(tcpRej))}`);
  }
  const f = { http: load.http, tcp: load.tcp, udp: load.udp };
  t.diagnostic(`clocks as the nodes report them: ${seen.join(', ')}`);
  t.diagnostic(
    `HTTP ${f.http.ops} GETs, ${f.http.failed} failed, p99 ${percentile(f.http.all, 99).toFixed(1)} ms; TCP ${f.tcp.ops} connections, ${f.tcp.failed} failed, ${f.tcp.cut} cut by the kill; ` +
      `UDP ${load.udpCounts.sent} datagrams, ${load.udpCounts.replies} replies, ${load.udpCounts.ingressMoves} ingress moves; ` +
      `moved: http ${movedFlows(f.http).length}/${f.http.backends.size}, tcp ${movedFlows(f.tcp).length}/${f.tcp.backends.size}, udp ${movedFlows(f.udp).length}/${f.udp.backends.size}; ` +
      `tables ${convergeMs >= 0 ? `identical (${last[0]!.length} entries) after ${convergeMs} ms` : 'NOT identical'}`,
  );
  for (const line of per) t.diagnostic(line);
  if (f.http.errors.length + f.tcp.errors.length) t.diagnostic(`errors: ${[...f.http.errors, ...f.tcp.errors].join(' | ')}`);

  assert.equal(f.http.failed, 0, `no GET failed: ${f.http.errors.join(' | ')}`);
  assert.equal(f.tcp.failed, 0, `no TCP connection failed: ${f.tcp.errors.join(' | ')}`);
  assert.ok(f.http.ok > 0 && f.tcp.ok > 0 && f.udp.ok > 0, 'every protocol was served');
  assert.deepEqual(movedFlows(f.http), [], 'no HTTP session changed backend');
  assert.deepEqual(movedFlows(f.tcp), [], 'no TCP client changed backend');
  assert.deepEqual(movedFlows(f.udp), [], 'no UDP flow changed backend');
  assert.ok(convergeMs >= 0, 'the three tables are identical');
  assert.equal(refused, 0, 'the HLC refused nothing (10 and 20 minutes are far inside its bound)');
  assert.equal(rejected, 0, 'the data plane refused no datagram and no stream');
  await assertNodesSound(c, ['lb1', 'lb2', 'lb3']);
});
