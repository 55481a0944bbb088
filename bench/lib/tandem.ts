// Starts the bench's 2-node tandem cluster and finds, per service, a flow whose primary is the
// receiving node (1 hop) and one whose primary is the other node (2 hops).
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { connect, createServer, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { renderConfig } from './templates.js';
import { startService, waitForHttp, tailLog, sleep, type Proc } from './procs.js';
import { BACKEND, BACKEND_HOST, CLIENT_CANDIDATES, TANDEM, TANDEM_INGRESS } from './ports.js';
import { benchCert } from './cert.js';

export const ROOT = new URL('../../', import.meta.url).pathname;

export type RouteKey = 'http' | 'tcpConn' | 'tcpBulk' | 'udp';
/** `one`/`two`: the x-bench header value (http) or client address (tcp, udp) giving 1 or 2 hops. */
export interface Route { one?: string; two?: string; note?: string }

export interface TandemHandle {
  status: 'ok' | 'unavailable';
  reason?: string;
  procs: Proc[];
  configFile?: string;
  routes: Partial<Record<RouteKey, Route>>;
}

const SERVICE: Record<RouteKey, string> = { http: 'web', tcpConn: 'tcpconn', tcpBulk: 'tcpbulk', udp: 'udp' };
const INGRESS = TANDEM_INGRESS.id;
const OTHER = TANDEM.nodes[1].id;
const adminUrl = (path: string) => `http://${TANDEM_INGRESS.host}:${TANDEM.adminPort}${path}`;

export function tandemUnavailable(reason: string, procs: Proc[] = []): TandemHandle {
  return { status: 'unavailable', reason, procs, routes: {} };
}

/** BENCH_TANDEM_NODE_ARGS: node flags for tandem's processes only (e.g. --trace-gc, --max-semi-space-size=32). */
export function tandemNodeArgs(): string[] | undefined {
  const args = (process.env.BENCH_TANDEM_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  return args.length ? args : undefined;
}

export interface TandemStart {
  /** The node binary (the contender Node, see tools.ts contenderNode). */
  node: string;
  /** --cpu-prof: write each node's V8 CPU profile (NODE_ID.cpuprofile) to this directory at exit. */
  profileDir?: string;
}

export async function startTandem(dir: string, readyTimeoutMs: number, o: TandemStart): Promise<TandemHandle> {
  // BENCH_TANDEM_BIN replaces bin/tandem.js (to try the harness against another build or a stand-in).
  const override = process.env.BENCH_TANDEM_BIN;
  const bin = override || join(ROOT, 'bin/tandem.js');
  if (!existsSync(bin)) return tandemUnavailable(`${override ? bin : 'bin/tandem.js'} not found`);
  if (!override && !existsSync(join(ROOT, 'dist/cli/main.js'))) return tandemUnavailable('dist/cli/main.js missing (run `npm run build`)');
  const sub = join(dir, 'tandem');
  mkdirSync(sub, { recursive: true });
  const [n1, n2] = TANDEM.nodes;
  const configFile = renderConfig('tandem.yaml', sub, {
    SECRET: 'tandem-bench-secret-0123456789abcdef', NODE1_ID: n1.id, NODE1_HOST: n1.host, NODE2_ID: n2.id, NODE2_HOST: n2.host,
    PEER_PORT: TANDEM.peerPort, ADMIN_PORT: TANDEM.adminPort, HTTP_PORT: TANDEM.http, TCP_CONN_PORT: TANDEM.tcpConn,
    TCP_BULK_PORT: TANDEM.tcpBulk, UDP_PORT: TANDEM.udp, BACKEND_HOST, BACKEND_HTTP_PORT: BACKEND.http,
    BACKEND_IPERF_PORT: BACKEND.iperf, BACKEND_UDP_PORT: BACKEND.udp,
    H2_PORT: TANDEM.h2, TLS_CERT: benchCert(dir).cert, TLS_KEY: benchCert(dir).key,
  });
  const env = { ...process.env, NODE_ENV: 'production' };
  const prof = (id: string) => (o.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${o.profileDir}`, `--cpu-prof-name=${id}.cpuprofile`] : []);
  const extra = tandemNodeArgs() ?? [];
  const procs = TANDEM.nodes.map((n) =>
    startService(`tandem ${n.id}`, o.node, [...extra, ...prof(n.id), bin, 'start', '--config', configFile, '--node', n.id], {
      cpu: 'proxy', cwd: ROOT, env, logFile: join(sub, `${n.id}.log`),
    }),
  );
  try {
    await Promise.all(
      TANDEM.nodes.map((n, i) => waitForHttp(`http://${n.host}:${TANDEM.adminPort}/readyz`, readyTimeoutMs, procs[i])),
    );
  } catch (e) {
    const logs = procs.map((p) => `${p.name}: ${tailLog(p.logFile, 2)}`).join('; ');
    return tandemUnavailable(`tandem did not get ready: ${(e as Error).message} — ${logs}`.slice(0, 600), procs);
  }
  const handle: TandemHandle = { status: 'ok', procs, configFile, routes: {} };
  await waitForPeerAlive();
  handle.routes.http = await findRoute('http', httpValues());
  handle.routes.tcpConn = await findRoute('tcpConn', CLIENT_CANDIDATES);
  handle.routes.tcpBulk = await withSink(() => findRoute('tcpBulk', CLIENT_CANDIDATES, handle.routes.tcpConn));
  handle.routes.udp = await findRoute('udp', CLIENT_CANDIDATES);
  return handle;
}

/** While looking for tcp-bulk flows no iperf3 server runs: a plain sink stands on its port. */
async function withSink<T>(f: () => Promise<T>): Promise<T> {
  const open = new Set<Socket>();
  const sink = createServer((s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => undefined);
    s.resume();
    s.on('end', () => s.end());
  });
  const listening = await new Promise<boolean>((resolve) => {
    sink.once('error', () => resolve(false));
    sink.listen(BACKEND.iperf, BACKEND_HOST, () => resolve(true));
  });
  try {
    return await f();
  } finally {
    for (const s of open) s.destroy();
    if (listening) await new Promise((r) => sink.close(r));
  }
}

function httpValues(): string[] {
  return Array.from({ length: 32 }, (_, i) => `bench-${i}`);
}

/** Waits (up to 5 s) until the ingress node sees every node alive, so flows can be owned by either. */
async function waitForPeerAlive(): Promise<void> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(adminUrl('/api/cluster'), { signal: AbortSignal.timeout(1000) });
      const body = (await res.json()) as { nodes?: Array<{ id: string; state: string }> };
      if (body.nodes && body.nodes.length >= TANDEM.nodes.length && body.nodes.every((n) => n.state === 'alive')) return;
    } catch {
      /* not yet, or no such API */
    }
    await sleep(200);
  }
}

/** The flow's primary as the ingress node's table tells it; undefined if it cannot say. */
export async function flowPrimary(service: string, keys: string[]): Promise<string | undefined> {
  for (const key of keys) {
    try {
      const res = await fetch(adminUrl(`/api/flows?service=${encodeURIComponent(service)}&key=${encodeURIComponent(key)}`), {
        signal: AbortSignal.timeout(1000),
      });
      if (res.status !== 200) {
        await res.arrayBuffer();
        continue;
      }
      const body = (await res.json()) as { primary?: unknown };
      if (typeof body.primary === 'string') return body.primary;
    } catch {
      /* try the next form of the key */
    }
  }
  return undefined;
}

/** Number of `1.1 <node>` entries in a Via header value. */
export function viaHops(via: string): number {
  return (via.match(/1\.1\s+[^,\s]+/g) ?? []).length;
}

/** Sends one communication of the flow through the ingress node; returns hops seen via Via (http only). */
async function probe(route: RouteKey, value: string): Promise<number | undefined> {
  const host = TANDEM_INGRESS.host;
  if (route === 'http') {
    const res = await fetch(`http://${host}:${TANDEM.http}/via`, { headers: { 'x-bench': value }, signal: AbortSignal.timeout(2000) });
    const text = await res.text();
    return res.status === 200 ? viaHops(text) : undefined;
  }
  if (route === 'udp') {
    await new Promise<void>((resolve) => {
      const s = createSocket('udp4');
      const done = () => (clearTimeout(t), s.close(), resolve());
      const t = setTimeout(done, 500);
      s.once('message', done);
      s.once('error', done);
      s.bind({ address: value, port: 0 }, () => s.send('ping', TANDEM.udp, host));
    });
    return undefined;
  }
  const port = route === 'tcpConn' ? TANDEM.tcpConn : TANDEM.tcpBulk;
  await new Promise<void>((resolve) => {
    const s = connect({ host, port, localAddress: value });
    const done = () => (clearTimeout(t), s.destroy(), resolve());
    const t = setTimeout(done, route === 'tcpConn' ? 2000 : 200);
    s.once('connect', () => s.write('GET / HTTP/1.0\r\n\r\n'));
    s.on('data', () => undefined);
    s.once('end', done);
    s.once('error', done);
  });
  return undefined;
}

async function findRoute(route: RouteKey, candidates: readonly string[], fallback?: Route): Promise<Route> {
  const service = SERVICE[route];
  const found: Route = {};
  let apiAnswered = false;
  let errors = 0;
  const deadline = Date.now() + 15_000; // bounded even when tandem accepts but never answers
  for (const value of candidates) {
    if (Date.now() > deadline) break;
    let hops: number | undefined;
    try {
      hops = await probe(route, value);
    } catch {
      errors++;
    }
    let primary = await flowPrimary(service, route === 'http' ? [value] : [value, `::ffff:${value}`]);
    if (primary !== undefined) apiAnswered = true;
    else if (hops !== undefined && hops > 0) primary = hops >= 2 ? OTHER : INGRESS;
    if (primary === INGRESS) found.one ??= value;
    else if (primary === OTHER) found.two ??= value;
    if (found.one && found.two) return found;
  }
  if (fallback && !apiAnswered && (fallback.one || fallback.two)) {
    return { ...fallback, note: `owners taken from the tcpconn service (same client-ip key, same owners)` };
  }
  const why = apiAnswered
    ? `no ${route === 'http' ? 'x-bench value' : 'client address'} among ${candidates.length} tried has primary ${found.one ? OTHER : INGRESS}`
    : `could not tell flow owners (GET /api/flows?service=${service} gave no primary${errors ? `, ${errors} probes failed` : ''})`;
  if (!found.one) return { one: found.two ? undefined : candidates[0], two: found.two, note: `${why}; hop count unverified` };
  return { ...found, note: why };
}
