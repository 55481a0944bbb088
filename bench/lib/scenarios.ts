// The network scenarios: what each contender is sent and how each figure is measured.
import { join } from 'node:path';
import type { ContenderId } from './types.js';
import type { ToolSet } from './tools.js';
import type { Started } from './contenders.js';
import { startIperfServer } from './contenders.js';
import type { RouteKey, TandemHandle } from './tandem.js';
import { ROOT } from './tandem.js';
import { runCommand, stopProc } from './procs.js';
import { parseWrk, wrkArgs } from './wrk.js';
import { parseH2load } from './h2load.js';
import type { MetricDef } from './collect.js';
import { BACKEND, BACKEND_HOST, DEFAULT_CLIENT, HAPROXY, NAIVE, NGINX, PEER_HOST, TANDEM, TANDEM_INGRESS } from './ports.js';

export interface Target { host: string; port: number; local: string; header: string }
/** pids: the roots of the contender's process trees, whose CPU time the runner meters. */
export type Plan = { kind: 'run'; target: Target; pids: number[] } | { kind: 'unavailable' | 'n/a'; reason: string };
export type MetricSpec = MetricDef;
/** The window of a measurement: begin() right before the load generator starts, end() right after. */
export interface Window { begin(): void; end(): void }
export interface RunOpts { durationSec: number; dir: string; tools: ToolSet; tag: string; window: Window }
/** work: units completed in the window (requests, MB, connections, replies), for CPU per unit. */
export interface Measurement { figures: Record<string, number>; raw: unknown; warning?: string; work?: number }
export interface PlanCtx { haproxy: Started; nginx: Started; naive: Started; tandem: TandemHandle }

export interface Scenario {
  id: string;
  title: string;
  short: string;
  needs: Array<'wrk' | 'h2load' | 'iperf3' | 'haproxy' | 'nginx' | 'stream'>;
  metrics: MetricSpec[];
  notes: string[];
  plan(ctx: PlanCtx): Record<ContenderId, Plan>;
  measure(t: Target, o: RunOpts): Promise<Measurement>;
}

/** A port per contender; a string instead of a port: why that contender does not apply (n/a). */
interface Ports { route: RouteKey; tandem: number; naive: number | string; haproxy: number | string; haproxy2: number | string; nginx: number; direct: number | string }

const NAIVE_HTTP_ONLY = 'the naive Node proxy is an HTTP proxy';
const NAIVE_CLEARTEXT = 'the naive Node proxy speaks cleartext HTTP only';
const CHAIN_HTTP = 'HAProxy chained is measured in cleartext HTTP';
const CHAIN_SCENARIOS = 'HAProxy chained is measured in the HTTP scenarios and TCP bulk';

function plans(ctx: PlanCtx, p: Ports): Record<ContenderId, Plan> {
  const run = (host: string, port: number, pids: number[], local = DEFAULT_CLIENT, header = 'bench'): Plan => ({
    kind: 'run', target: { host, port, local, header }, pids,
  });
  const peer = (s: Started, port: number | string): Plan => {
    if (typeof port === 'string') return { kind: 'n/a', reason: port };
    return s.ok ? run(PEER_HOST, port, s.procs.map((x) => x.pid)) : { kind: 'unavailable', reason: s.reason };
  };
  const tandemPids = ctx.tandem.procs.map((x) => x.pid);
  const tandem = (hops: 'one' | 'two'): Plan => {
    if (ctx.tandem.status !== 'ok') return { kind: 'unavailable', reason: ctx.tandem.reason ?? 'tandem did not start' };
    const route = ctx.tandem.routes[p.route];
    const v = route?.[hops];
    if (!v) return { kind: 'unavailable', reason: route?.note ?? 'no flow found for this hop count' };
    // Both nodes are metered for both hop counts: the cluster is the contender.
    return p.route === 'http' ? run(TANDEM_INGRESS.host, p.tandem, tandemPids, DEFAULT_CLIENT, v) : run(TANDEM_INGRESS.host, p.tandem, tandemPids, v);
  };
  return {
    tandem1: tandem('one'),
    tandem2: tandem('two'),
    naive: peer(ctx.naive, p.naive),
    haproxy: peer(ctx.haproxy, p.haproxy),
    haproxy2: peer(ctx.haproxy, p.haproxy2),
    nginx: peer(ctx.nginx, p.nginx),
    direct: typeof p.direct === 'string' ? { kind: 'n/a', reason: p.direct } : run(BACKEND_HOST, p.direct, []),
  };
}

const NO_PROXY = 'no proxy: the load generator talks to the backend';

/** CPU of the contender's processes per unit of work, and how busy that made its core. */
function cpuRows(unit: string, per: string): MetricSpec[] {
  return [
    { key: 'cpuPerUnit', metric: `CPU per ${per}`, unit, better: 'lower', na: { direct: NO_PROXY } },
    { key: 'cpuPct', metric: 'CPU used', unit: '% of a core', better: 'none', na: { direct: NO_PROXY } },
  ];
}

/** Requests (or handshakes) per second, p50, p99 and CPU: what a wrk scenario reports. */
function wrkMetrics(rps: string, per: string): MetricSpec[] {
  return [
    { key: 'rps', metric: rps, unit: 'req/s', better: 'higher', headline: true },
    { key: 'p50', metric: 'p50 latency', unit: 'ms', better: 'lower' },
    { key: 'p99', metric: 'p99 latency', unit: 'ms', better: 'lower' },
    ...cpuRows('µs/req', per),
  ];
}

/** Every contender's HTTPS listener (one certificate on all, bench/lib/tls-cert.ts). */
const HTTPS_PORTS: Ports = {
  route: 'http', tandem: TANDEM.https, naive: NAIVE_CLEARTEXT, haproxy: HAPROXY.https, haproxy2: CHAIN_HTTP, nginx: NGINX.https, direct: 'the backend speaks cleartext',
};

/** HTTP/2: connections and concurrent streams per connection (the issue's h2load figure). */
const H2_CONNECTIONS = 20;
const H2_STREAMS = 10;

/** HTTP keep-alive connections: the figure the acceptance of p99 latency is stated at. */
export const KEEPALIVE_CONNECTIONS = 50;

function wrkScenario(close: boolean, scheme: 'http' | 'https' = 'http'): Scenario['measure'] {
  return async (t, o) => {
    const headers = [`x-bench: ${t.header}`];
    if (close) headers.push('Connection: close');
    const args = wrkArgs({ url: `${scheme}://${t.host}:${t.port}/`, connections: close ? 32 : KEEPALIVE_CONNECTIONS, durationSec: o.durationSec, headers });
    o.window.begin();
    const r = await runCommand(o.tools.wrk ?? 'wrk', args, { cpu: 'load', timeoutMs: (o.durationSec + 15) * 1000 });
    o.window.end();
    if (r.code !== 0) throw new Error(`wrk exited ${r.code ?? r.signal}: ${(r.stderr || r.stdout).trim().slice(0, 200)}`);
    const w = parseWrk(r.stdout);
    if (w.requests === 0) throw new Error('wrk completed no request');
    const errs = w.errors.connect + w.errors.read + w.errors.write + w.errors.timeout + w.errors.non2xx3xx;
    // Mostly errors: the rate is not a rate of served requests, so the round counts as failed.
    if (errs > w.requests / 2) throw new Error(`${errs} errors in ${w.requests} requests (${JSON.stringify(w.errors)})`);
    const warning = errs > w.requests * 0.01 ? `${errs} errors in ${w.requests} requests (${JSON.stringify(w.errors)})` : undefined;
    return {
      figures: { rps: w.requestsPerSec, p50: w.latencyMs.p50 ?? NaN, p99: w.latencyMs.p99 ?? NaN },
      raw: w,
      warning,
      work: w.requests,
    };
  };
}

const LOADGEN = join(ROOT, 'bench/loadgen');

async function nodeLoadgen(script: string, t: Target, o: RunOpts, extra: string[]): Promise<Record<string, unknown>> {
  const args = ['--import', 'tsx', join(LOADGEN, script), '--host', t.host, '--port', String(t.port), '--local', t.local,
    '--duration', String(o.durationSec), ...extra];
  o.window.begin();
  const r = await runCommand(process.execPath, args, { cpu: 'load', cwd: ROOT, timeoutMs: (o.durationSec + 20) * 1000 });
  o.window.end();
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (r.code !== 0 || !line) throw new Error(`${script} exited ${r.code ?? r.signal}: ${r.stderr.trim().split('\n').slice(-2).join(' ').slice(0, 200)}`);
  return JSON.parse(line) as Record<string, unknown>;
}

const NO_UDP = 'HAProxy 2.6 (Debian 12) does not proxy UDP';

const ms = (x: unknown, k: string) => Number((x as Record<string, unknown> | undefined)?.[k] ?? NaN);

export const SCENARIOS: Scenario[] = [
  {
    id: 'http-keepalive',
    title: 'HTTP keep-alive, small requests',
    short: 'HTTP keep-alive',
    needs: ['wrk', 'haproxy', 'nginx'],
    metrics: wrkMetrics('requests/s', 'request'),
    notes: [`wrk -t1 -c${KEEPALIVE_CONNECTIONS} --latency, GET / answered by the backend nginx \`return 200\`.`],
    plan: (ctx) => plans(ctx, {
      route: 'http', tandem: TANDEM.http, naive: NAIVE.http, haproxy: HAPROXY.http, haproxy2: HAPROXY.httpChain, nginx: NGINX.http, direct: BACKEND.http,
    }),
    measure: wrkScenario(false),
  },
  {
    id: 'http-close',
    title: 'HTTP, new connection per request',
    short: 'HTTP conn/request',
    needs: ['wrk', 'haproxy', 'nginx'],
    metrics: wrkMetrics('requests/s', 'request'),
    notes: ["wrk -t1 -c32 -H 'Connection: close': every request on a new client connection (backend connections stay pooled)."],
    plan: (ctx) => plans(ctx, {
      route: 'http', tandem: TANDEM.http, naive: NAIVE.http, haproxy: HAPROXY.http, haproxy2: HAPROXY.httpChain, nginx: NGINX.http, direct: BACKEND.http,
    }),
    measure: wrkScenario(true),
  },
  {
    id: 'https-keepalive',
    title: 'HTTPS keep-alive, small requests (TLS 1.3, ECDSA P-256)',
    short: 'HTTPS keep-alive',
    needs: ['wrk', 'haproxy', 'nginx'],
    metrics: wrkMetrics('requests/s', 'request'),
    notes: [`wrk -t1 -c${KEEPALIVE_CONNECTIONS} over TLS (no ALPN: HTTP/1.1), the same certificate on every contender; the backend stays cleartext.`],
    plan: (ctx) => plans(ctx, HTTPS_PORTS),
    measure: wrkScenario(false, 'https'),
  },
  {
    id: 'https-handshake',
    title: 'HTTPS, a full TLS handshake per request (ECDSA P-256)',
    short: 'TLS handshakes',
    needs: ['wrk', 'haproxy', 'nginx'],
    metrics: wrkMetrics('full handshakes/s', 'handshake'),
    notes: ["wrk -t1 -c32 -H 'Connection: close' over TLS: wrk resumes no session, so every request is a new connection with a full handshake (TLS 1.3, X25519, ECDSA P-256)."],
    plan: (ctx) => plans(ctx, HTTPS_PORTS),
    measure: wrkScenario(true, 'https'),
  },
  {
    id: 'http2-keepalive',
    title: 'HTTP/2 over TLS, 20 connections × 10 streams',
    short: 'HTTP/2',
    needs: ['h2load', 'haproxy', 'nginx'],
    metrics: [
      { key: 'rps', metric: 'requests/s', unit: 'req/s', better: 'higher', headline: true },
      { key: 'mean', metric: 'mean time per request', unit: 'ms', better: 'lower' },
      ...cpuRows('µs/req', 'request'),
    ],
    notes: [`h2load -c${H2_CONNECTIONS} -m${H2_STREAMS} over TLS with ALPN h2 (the same certificate everywhere); every contender speaks HTTP/1.1 to the backend.`],
    plan: (ctx) => plans(ctx, HTTPS_PORTS),
    measure: async (t, o) => {
      const args = ['-c', String(H2_CONNECTIONS), '-m', String(H2_STREAMS), '-D', String(o.durationSec), '-H', `x-bench: ${t.header}`, `https://${t.host}:${t.port}/`];
      o.window.begin();
      const r = await runCommand(o.tools.h2load ?? 'h2load', args, { cpu: 'load', timeoutMs: (o.durationSec + 15) * 1000 });
      o.window.end();
      if (r.code !== 0) throw new Error(`h2load exited ${r.code ?? r.signal}: ${(r.stderr || r.stdout).trim().slice(-200)}`);
      const h = parseH2load(r.stdout);
      // h2load takes http/1.1 when ALPN offers nothing better: that would be another scenario.
      if (h.protocol !== 'h2') throw new Error(`ALPN negotiated ${h.protocol ?? 'nothing'}, not h2`);
      if (h.succeeded === 0) throw new Error(`h2load completed no request: ${r.stdout.trim().split('\n').slice(-6).join(' ').slice(0, 300)}`);
      const bad = h.failed + h.errored;
      if (bad > h.succeeded / 2) throw new Error(`${bad} failed of ${h.done} requests`);
      return {
        figures: { rps: h.requestsPerSec, mean: h.meanMs },
        raw: h,
        warning: bad > h.done * 0.01 ? `${bad} failed of ${h.done} requests` : undefined,
        work: h.succeeded,
      };
    },
  },
  {
    id: 'tcp-bulk',
    title: 'TCP bulk throughput',
    short: 'TCP bulk',
    needs: ['iperf3', 'haproxy', 'nginx', 'stream'],
    metrics: [{ key: 'mbps', metric: 'throughput', unit: 'MB/s', better: 'higher', headline: true }, ...cpuRows('µs/MB', 'MB')],
    notes: ['iperf3 client → proxy → iperf3 server (one stream, client sending); MB/s = 10^6 bytes/s received.'],
    plan: (ctx) => plans(ctx, {
      route: 'tcpBulk', tandem: TANDEM.tcpBulk, naive: NAIVE_HTTP_ONLY, haproxy: HAPROXY.tcpBulk, haproxy2: HAPROXY.tcpBulkChain, nginx: NGINX.tcpBulk, direct: BACKEND.iperf,
    }),
    async measure(t, o) {
      const server = await startIperfServer(o.dir, o.tools, o.tag);
      try {
        const args = ['-c', t.host, '-p', String(t.port), '-B', t.local, '-t', String(Math.max(1, Math.round(o.durationSec))), '-J', '--connect-timeout', '3000'];
        o.window.begin();
        const r = await runCommand(o.tools.iperf3 ?? 'iperf3', args, { cpu: 'load', timeoutMs: (o.durationSec + 15) * 1000 });
        o.window.end();
        let j: { error?: string; end?: { sum_received?: { bits_per_second?: number; bytes?: number } } };
        try {
          j = JSON.parse(r.stdout) as typeof j;
        } catch {
          throw new Error(`iperf3 exited ${r.code ?? r.signal}: ${(r.stderr || r.stdout).trim().slice(0, 200)}`);
        }
        if (j.error) throw new Error(`iperf3: ${j.error}`);
        const bps = j.end?.sum_received?.bits_per_second;
        if (!bps) throw new Error('iperf3 reported no throughput');
        const bytes = j.end?.sum_received?.bytes;
        return { figures: { mbps: bps / 8e6 }, raw: { bitsPerSecond: bps, bytes }, work: bytes ? bytes / 1e6 : undefined };
      } finally {
        await stopProc(server, 1000);
      }
    },
  },
  {
    id: 'tcp-connrate',
    title: 'TCP connection rate',
    short: 'TCP conn. rate',
    needs: ['haproxy', 'nginx', 'stream'],
    metrics: [
      { key: 'cps', metric: 'connections/s', unit: 'conn/s', better: 'higher', headline: true },
      { key: 'p50', metric: 'p50 connection time', unit: 'ms', better: 'lower' },
      { key: 'p99', metric: 'p99 connection time', unit: 'ms', better: 'lower' },
      ...cpuRows('µs/conn', 'connection'),
    ],
    notes: ['bench/loadgen/tcp-connrate.ts, 32 concurrent loops of connect → HTTP/1.0 request → reply → close (backend: nginx).'],
    plan: (ctx) => plans(ctx, {
      route: 'tcpConn', tandem: TANDEM.tcpConn, naive: NAIVE_HTTP_ONLY, haproxy: HAPROXY.tcpConn, haproxy2: CHAIN_SCENARIOS, nginx: NGINX.tcpConn, direct: BACKEND.http,
    }),
    async measure(t, o) {
      const j = await nodeLoadgen('tcp-connrate.ts', t, o, ['--concurrency', '32']);
      const n = Number(j.connections);
      if (!n) throw new Error(`no connection completed (${JSON.stringify(j.errorSamples)})`);
      const errs = Number(j.errors);
      if (errs > n) throw new Error(`${errs} failed connections, ${n} completed (${JSON.stringify(j.errorSamples)})`);
      return {
        figures: { cps: Number(j.connectionsPerSec), p50: ms(j.latencyMs, 'p50'), p99: ms(j.latencyMs, 'p99') },
        raw: j,
        warning: errs > n * 0.01 ? `${errs} failed connections of ${n + errs} (${JSON.stringify(j.errorSamples)})` : undefined,
        work: n,
      };
    },
  },
  {
    id: 'udp-rr',
    title: 'UDP request/response',
    short: 'UDP req/resp',
    needs: ['nginx', 'stream'],
    metrics: [
      { key: 'dps', metric: 'datagrams/s', unit: 'dgram/s', better: 'higher', headline: true },
      { key: 'p50', metric: 'p50 round trip', unit: 'ms', better: 'lower' },
      { key: 'p99', metric: 'p99 round trip', unit: 'ms', better: 'lower' },
      { key: 'loss', metric: 'lost', unit: '%', better: 'lower' },
      ...cpuRows('µs/dgram', 'datagram'),
    ],
    notes: ['bench/loadgen/udp-rr.ts, 32 sockets from one client address, one numbered datagram outstanding each (lost after 200 ms), each reply checked; backend: bench/backends/udp-echo.pl (Perl).'],
    plan: (ctx) => plans(ctx, {
      route: 'udp', tandem: TANDEM.udp, naive: NAIVE_HTTP_ONLY, haproxy: NO_UDP, haproxy2: NO_UDP, nginx: NGINX.udp, direct: BACKEND.udp,
    }),
    async measure(t, o) {
      const j = await nodeLoadgen('udp-rr.ts', t, o, ['--concurrency', '32', '--timeout-ms', '200']);
      const n = Number(j.responses);
      if (!n) throw new Error(`no reply received (${Number(j.lost)} datagrams lost)`);
      const lossPct = (100 * Number(j.lost)) / Math.max(1, Number(j.sent));
      const wrong = Number(j.wrong);
      if (lossPct > 50) throw new Error(`${lossPct.toFixed(0)}% of datagrams lost${wrong ? `, ${wrong} replies to the wrong client socket` : ''}`);
      const warn = [lossPct > 1 ? `${lossPct.toFixed(1)}% datagrams lost` : '', wrong ? `${wrong} replies delivered to the wrong client socket` : '']
        .filter(Boolean).join(', ');
      return {
        figures: { dps: Number(j.datagramsPerSec), p50: ms(j.latencyMs, 'p50'), p99: ms(j.latencyMs, 'p99'), loss: lossPct },
        raw: j,
        warning: warn || undefined,
        work: n,
      };
    },
  },
];
