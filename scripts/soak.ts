/**
 * Soak: a 3-node tier under mixed HTTP/TCP/UDP load at about half its measured capacity for N
 * minutes, with a node killed -9 and restarted every few minutes. Every 10 s it samples each
 * node's RSS, heap, event-loop delay (p99), open descriptors and active handles, flow-table sizes,
 * and the clients' p99 latency per protocol; at the end it writes samples.json, report.md and one
 * SVG chart per figure into the results directory, and says whether memory stayed flat (no growth
 * trend after warm-up) and what failed apart from connections cut by a kill.
 *
 *   npm run soak -- --minutes 20 [--restart-every 4] [--out DIR]
 *
 * Real processes (bin/tandem.js, so `npm run build` first — the npm script does) on 127.0.0.1-3,
 * ports 24500-24599, backends in this process. Bounded: the load stops after --minutes, every
 * wait has a limit, and the tier is stopped on exit, Ctrl-C included.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startCluster, sleep, type TestCluster, type FlowView } from '../test/helpers/cluster.js';
import { httpBackend, udpBackend, type Backend } from '../test/helpers/backends.js';
import { MixedLoad, idTcpBackend, movedFlows, percentile, type MixedTargets } from '../test/reliability/helpers/mixed-load.js';
import { lineChart, slope, type Series } from './soak-chart.js';

interface Args {
  minutes: number;
  restartEvery: number;
  out: string;
}

function parseArgs(argv: readonly string[]): Args {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const minutes = Number(get('minutes') ?? 20);
  if (!(minutes > 0 && minutes <= 24 * 60)) throw new Error(`--minutes must be a number of minutes (got ${get('minutes')})`);
  const restartEvery = Number(get('restart-every') ?? (minutes <= 4 ? minutes / 2 : 4));
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  return { minutes, restartEvery, out: resolve(get('out') ?? join('soak-results', stamp)) };
}

const BASE = 24500;
const HTTP_PORT = BASE + 10;
const TCP_PORT = BASE + 11;
const UDP_PORT = BASE + 12;
const SAMPLE_MS = 10_000;
const WARMUP_S = 60;
const DOWN_MS = 3000;
const IDS = ['lb1', 'lb2', 'lb3'];
const METRICS = {
  rssMiB: ['tandem_process_process_resident_memory_bytes', 1 / 2 ** 20],
  heapMiB: ['tandem_process_nodejs_heap_size_used_bytes', 1 / 2 ** 20],
  loopP99Ms: ['tandem_process_nodejs_eventloop_lag_p99_seconds', 1000],
  fds: ['tandem_process_process_open_fds', 1],
  handles: ['tandem_process_nodejs_active_handles_total', 1],
  flows: ['tandem_flows', 1],
} as const;
type Metric = keyof typeof METRICS;

interface Sample {
  readonly t: number;
  readonly nodes: Record<string, Partial<Record<Metric, number>>>;
  readonly p99: { http: number; tcp: number; udp: number };
  readonly ops: number;
}

function sumMetric(text: string, name: string): number {
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    sum += Number(m[3]);
    seen = true;
  }
  return seen ? sum : NaN;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  mkdirSync(args.out, { recursive: true });
  const log = (s: string): void => console.log(`[soak +${Math.round((Date.now() - t0) / 1000)}s] ${s}`);
  let t0 = Date.now();
  const backends: Backend[] = [];
  for (let i = 1; i <= 3; i++) backends.push(await httpBackend(`h${i}`), await idTcpBackend(`t${i}`), await udpBackend(`u${i}`));
  const of = (p: string) => backends.filter((b) => b.id.startsWith(p)).map((b) => ({ address: b.address }));
  const c: TestCluster = await startCluster({
    basePort: BASE,
    nodes: 3,
    services: [
      { name: 'web', protocol: 'http', port: HTTP_PORT, flowKey: 'header:x-session', backends: of('h'), healthCheck: { type: 'http', path: '/healthz', intervalMs: 1000 } },
      { name: 'raw', protocol: 'tcp', port: TCP_PORT, flowKey: 'connection', backends: of('t'), healthCheck: { type: 'tcp', intervalMs: 1000 } },
      { name: 'dgram', protocol: 'udp', port: UDP_PORT, flowKey: 'connection', backends: of('u'), healthCheck: { type: 'none' } },
    ],
  });
  let stopping = false;
  const shutdown = async (): Promise<void> => {
    stopping = true;
    await c.stop();
    await Promise.all(backends.map((b) => b.close()));
  };
  process.once('SIGINT', () => {
    console.log('interrupted: stopping the tier');
    void shutdown().then(() => process.exit(130));
  });
  try {
    const hosts = c.nodes.map((n) => n.host);
    const down = new Set<string>();
    const epochs = new Map(hosts.map((h) => [h, 0]));
    const control = (pauses: { http: number; tcp: number }) => ({ hosts, up: () => hosts.filter((h) => !down.has(h)), epochOf: (h: string) => epochs.get(h) ?? 0, pauses });
    const targets = (prefix: string): MixedTargets => ({
      http: { port: HTTP_PORT, sessions: 200, workers: 12, prefix },
      tcp: { port: TCP_PORT, workers: 4 },
      udp: { port: UDP_PORT, flows: 24, perSecond: 10, bindHost: '127.0.0.1' },
    });

    // Capacity, per protocol: the same clients with no pause between operations, 6 s each after
    // 2 s of warm-up (connections, health checks).
    t0 = Date.now();
    const capacity = async (proto: 'http' | 'tcp'): Promise<number> => {
      const t = targets(`cap-${proto}`);
      const probe = new MixedLoad({ [proto]: t[proto] }, control({ http: 0, tcp: 0 }));
      probe.start();
      await sleep(2000);
      const warm = probe[proto].ok;
      await sleep(6000);
      const rate = (probe[proto].ok - warm) / 6;
      await probe.stop();
      return rate;
    };
    const capHttp = await capacity('http');
    const capTcp = await capacity('tcp');
    // Half of it: at capacity an operation of one client takes workers / capacity; waiting that
    // long between operations halves the rate.
    const pause = (workers: number, cap: number): number => Math.max(1, Math.round((1000 * workers) / Math.max(1, cap)));
    const pauses = { http: pause(targets('x').http!.workers, capHttp), tcp: pause(targets('x').tcp!.workers, capTcp) };
    const pauseMs = pauses.http;
    log(`capacity with ${targets('x').http!.workers} HTTP clients: ${capHttp.toFixed(0)} GET/s; with ${targets('x').tcp!.workers} TCP clients: ${capTcp.toFixed(0)} conn/s; soak pauses ${pauses.http} / ${pauses.tcp} ms per operation`);

    t0 = Date.now();
    const load = new MixedLoad(targets('soak'), control(pauses));
    load.start();
    const samples: Sample[] = [];
    const restarts: Array<readonly [number, string]> = [];
    let nextRestart = args.restartEvery * 60_000;
    let victim = 0;
    let lastOps = 0;
    const endAt = args.minutes * 60_000;
    const sampler = (async () => {
      while (!stopping && Date.now() - t0 < endAt) {
        const at = Date.now() - t0;
        const nodes: Sample['nodes'] = {};
        for (const n of c.nodes) {
          if (down.has(n.host)) continue;
          const text = (await c.get(n.id, '/metrics').catch(() => null))?.text;
          if (text === undefined) continue;
          const v: Partial<Record<Metric, number>> = {};
          for (const [k, [name, scale]] of Object.entries(METRICS) as Array<[Metric, readonly [string, number]]>) v[k] = sumMetric(text, name) * scale;
          nodes[n.id] = v;
        }
        const w = load.window();
        const ops = load.http.ops + load.tcp.ops + load.udp.ops;
        samples.push({ t: at / 1000, nodes, p99: { http: percentile(w.http, 99), tcp: percentile(w.tcp, 99), udp: percentile(w.udp, 99) }, ops: ops - lastOps });
        lastOps = ops;
        const s = samples[samples.length - 1];
        log(`${IDS.map((id) => `${id} rss ${s.nodes[id]?.rssMiB?.toFixed(0) ?? '-'} MiB flows ${s.nodes[id]?.flows ?? '-'}`).join(', ')}; p99 http ${s.p99.http.toFixed(1)} tcp ${s.p99.tcp.toFixed(1)} udp ${s.p99.udp.toFixed(1)} ms; ${s.ops} ops`);
        await sleep(Math.max(0, SAMPLE_MS - (Date.now() - t0 - at)));
      }
    })();
    while (Date.now() - t0 < endAt - DOWN_MS - 5000) {
      const wait = Math.min(nextRestart, endAt - DOWN_MS - 5000) - (Date.now() - t0);
      if (wait > 0) await sleep(Math.min(wait, 1000));
      if (Date.now() - t0 < nextRestart) continue;
      const id = IDS[victim++ % IDS.length];
      const host = c.node(id).host;
      down.add(host);
      epochs.set(host, (epochs.get(host) ?? 0) + 1);
      restarts.push([(Date.now() - t0) / 1000, `${id} kill -9`]);
      log(`kill -9 ${id}`);
      await c.kill(id);
      await sleep(DOWN_MS);
      await c.start(id);
      down.delete(host);
      log(`${id} restarted and ready`);
      nextRestart += args.restartEvery * 60_000;
    }
    await sampler;
    await load.stop();

    // Tables at the end: identical on every node (every field but lastActive)?
    let identical = false;
    let entries = 0;
    for (const until = Date.now() + 30_000; !identical && Date.now() < until; ) {
      const tables = await Promise.all(
        c.nodes.map(async (n) => {
          const rows: string[] = [];
          for (const s of ['web', 'raw', 'dgram']) {
            const r = (await c.get(n.id, `/api/flows?service=${s}&limit=1000000`)).body as { flows: FlowView[] };
            // The capacity probe's sessions (cap-*) are idle from then on: each node drops them
            // flowIdleTimeoutMs after it last heard of them, which a restart's snapshot renews,
            // so near the end some nodes hold them and some do not. Correct, and not compared.
            for (const f of r.flows) if (!f.key.startsWith('cap-')) rows.push(`${s} ${f.key} ${f.primary} ${f.backup} ${f.backend} ${f.version} ${f.writer}`);
          }
          return rows.sort().join('\n');
        }),
      );
      identical = tables.every((x) => x === tables[0]);
      entries = tables[0].split('\n').length;
      if (!identical) await sleep(500);
    }
    writeReport(args, { samples, restarts, load, capHttp, capTcp, pauseMs, tcpPauseMs: pauses.tcp, identical, entries });
    log(`report: ${join(args.out, 'report.md')}`);
  } finally {
    await shutdown();
  }
}

interface Outcome {
  readonly samples: readonly Sample[];
  readonly restarts: ReadonlyArray<readonly [number, string]>;
  readonly load: MixedLoad;
  readonly capHttp: number;
  readonly capTcp: number;
  readonly pauseMs: number;
  readonly tcpPauseMs: number;
  readonly identical: boolean;
  readonly entries: number;
}

/** RSS trend per node in MiB/min over its samples after warm-up, segment by segment (a restart starts a new one). */
function trends(o: Outcome): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of IDS) {
    const starts = [0, ...o.restarts.filter(([, l]) => l.startsWith(`${id} `)).map(([t]) => t)];
    let weighted = 0;
    let weight = 0;
    starts.forEach((s, i) => {
      const end = starts[i + 1] ?? Infinity;
      const pts = o.samples.filter((x) => x.t >= s + WARMUP_S && x.t < end).map((x) => [x.t, x.nodes[id]?.rssMiB ?? NaN] as const);
      if (pts.length >= 3) {
        weighted += slope(pts) * 60 * pts.length;
        weight += pts.length;
      }
    });
    out[id] = weight === 0 ? NaN : weighted / weight;
  }
  return out;
}

function writeReport(args: Args, o: Outcome): void {
  const charts: Array<[string, string, Metric | 'p99']> = [
    ['rss.svg', 'Resident memory (MiB)', 'rssMiB'],
    ['heap.svg', 'V8 heap used (MiB)', 'heapMiB'],
    ['eventloop.svg', 'Event-loop delay p99 per 10 s (ms)', 'loopP99Ms'],
    ['fds.svg', 'Open file descriptors (sockets)', 'fds'],
    ['flows.svg', 'Flow-table entries (all services)', 'flows'],
    ['p99.svg', 'Client p99 latency per 10 s (ms)', 'p99'],
  ];
  const markers = o.restarts;
  for (const [file, title, m] of charts) {
    const series: Series[] =
      m === 'p99'
        ? (['http', 'tcp', 'udp'] as const).map((p) => ({ name: p.toUpperCase(), points: o.samples.map((s) => [s.t, s.p99[p]] as const) }))
        : IDS.map((id) => ({ name: id, points: o.samples.map((s) => [s.t, s.nodes[id]?.[m] ?? NaN] as const) }));
    writeFileSync(join(args.out, file), lineChart({ title, unit: title.replace(/^.*\((.*)\)$/, '$1'), series, markers }));
  }
  writeFileSync(join(args.out, 'samples.json'), JSON.stringify({ restarts: o.restarts, samples: o.samples }, null, 1));
  const l = o.load;
  const trend = trends(o);
  // Flat: no node's RSS grew by more than 0.5 MiB a minute once warm (a fall is GC, not a leak).
  const flat = Object.values(trend).every((x) => Number.isNaN(x) || x < 0.5);
  const lossPct = (100 * (l.udpCounts.sent - l.udpCounts.replies)) / Math.max(1, l.udpCounts.sent);
  const last = o.samples[o.samples.length - 1];
  const md = `# Soak, ${args.minutes} min

${new Date().toISOString()} · 3 nodes on 127.0.0.1-3 · a node killed -9 and restarted every ${args.restartEvery} min (${o.restarts.map(([t, what]) => `${what} at ${(t / 60).toFixed(1)} min`).join(', ') || 'none'}).

Load: 12 HTTP clients over 200 sessions, 4 TCP clients (a connection each time), 24 UDP flows at 10 datagrams/s. Capacity measured first, each protocol alone with no pause: ${o.capHttp.toFixed(0)} GET/s and ${o.capTcp.toFixed(0)} connections/s; the soak waits ${o.pauseMs} ms (HTTP) and ${o.tcpPauseMs} ms (TCP) between operations of a client (about half of each).

| | operations | ok | failed | cut by a kill (retried ok) | changed backend | p50 / p99 (ms) |
|---|---|---|---|---|---|---|
| HTTP | ${l.http.ops} | ${l.http.ok} | ${l.http.failed} | ${l.http.cut} (${l.http.retriedOk}) | ${movedFlows(l.http).length} / ${l.http.backends.size} | ${percentile(l.http.all, 50).toFixed(1)} / ${percentile(l.http.all, 99).toFixed(1)} |
| TCP | ${l.tcp.ops} | ${l.tcp.ok} | ${l.tcp.failed} | ${l.tcp.cut} | — | ${percentile(l.tcp.all, 50).toFixed(1)} / ${percentile(l.tcp.all, 99).toFixed(1)} |
| UDP | ${l.udpCounts.sent} datagrams | ${l.udpCounts.replies} replies | ${lossPct.toFixed(2)} % lost | ${l.udpCounts.ingressMoves} ingress moves | ${movedFlows(l.udp).length} / ${l.udp.backends.size} | ${percentile(l.udp.all, 50).toFixed(1)} / ${percentile(l.udp.all, 99).toFixed(1)} |

Memory: RSS trend after ${WARMUP_S} s of warm-up (per process lifetime, least squares): ${IDS.map((id) => `${id} ${Number.isNaN(trend[id]) ? 'n/a' : `${trend[id].toFixed(3)} MiB/min`}`).join(', ')} — ${flat ? '**flat**' : '**growing: look at rss.svg and heap.svg**'}. Last sample: ${IDS.map((id) => `${id} RSS ${last?.nodes[id]?.rssMiB?.toFixed(0) ?? '-'} MiB, heap ${last?.nodes[id]?.heapMiB?.toFixed(0) ?? '-'} MiB, ${last?.nodes[id]?.fds ?? '-'} fds, ${last?.nodes[id]?.flows ?? '-'} flows`).join('; ')}.

Tables at the end: ${o.identical ? `identical on all three nodes (${o.entries} entries)` : 'NOT identical within 30 s'}.
${[...l.http.errors, ...l.tcp.errors].length ? `\nErrors (first ones): ${[...l.http.errors, ...l.tcp.errors].join(' · ')}\n` : ''}
![RSS](rss.svg)
![heap](heap.svg)
![event loop](eventloop.svg)
![descriptors](fds.svg)
![flows](flows.svg)
![p99](p99.svg)
`;
  writeFileSync(join(args.out, 'report.md'), md);
  console.log(md);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
