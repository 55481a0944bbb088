// Starts the shared backend and the peers (HAProxy, NGINX, the naive Node proxy) from the templates
// in bench/configs and bench/peers.
import { join } from 'node:path';
import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { renderConfig } from './templates.js';
import { startService, waitForTcp, waitForHttp, runCommand, type Proc } from './procs.js';
import { BACKEND, BACKEND_HOST, HAPROXY, NAIVE, NGINX, PEER_HOST } from './ports.js';
import type { ToolSet } from './tools.js';
import { benchCert } from './cert.js';

export type Started = { ok: true; procs: Proc[] } | { ok: false; reason: string; procs: Proc[] };

const READY_MS = 10_000;

function nginxArgs(conf: string, dir: string): string[] {
  return ['-e', 'stderr', '-p', dir, '-c', conf, '-g', 'daemon off;'];
}

/**
 * The shared backends: nginx with one worker (HTTP `return 200`) and the Perl UDP echo server.
 */
export async function startBackend(dir: string, tools: ToolSet): Promise<Proc[]> {
  const nginx = tools.nginx;
  if (!nginx) throw new Error('nginx not found');
  const sub = join(dir, 'backend');
  mkdirSync(sub, { recursive: true });
  const conf = renderConfig('backend-nginx.conf', sub, { DIR: sub, HOST: BACKEND_HOST, HTTP_PORT: BACKEND.http });
  const p = startService('backend nginx', nginx, nginxArgs(conf, sub), { cpu: 'load', logFile: join(sub, 'backend-nginx.log') });
  await waitForHttp(`http://${BACKEND_HOST}:${BACKEND.http}/`, READY_MS, p);
  const echoLog = join(sub, 'udp-echo.log');
  const echo = startService('udp echo', tools.perl ?? 'perl', [UDP_ECHO, BACKEND_HOST, String(BACKEND.udp)], { cpu: 'load', logFile: echoLog });
  await waitForLine(echo, echoLog, 'listening', READY_MS);
  return [p, echo];
}

const UDP_ECHO = new URL('../backends/udp-echo.pl', import.meta.url).pathname;

/** Waits until a service's log shows `text` (for servers that must not be probed). */
async function waitForLine(p: Proc, log: string, text: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const out = existsSync(log) ? readFileSync(log, 'utf8') : '';
    if (p.hasExited()) throw new Error(`${p.name} exited: ${out.trim().slice(-300)}`);
    if (out.includes(text)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

const peerVars = (dir: string) => ({
  DIR: dir, HOST: PEER_HOST, BACKEND_HOST, BACKEND_HTTP_PORT: BACKEND.http, BACKEND_UDP_PORT: BACKEND.udp, BACKEND_IPERF_PORT: BACKEND.iperf,
});

export async function startHaproxy(dir: string, tools: ToolSet): Promise<Started> {
  if (!tools.haproxy) return { ok: false, reason: 'haproxy not found', procs: [] };
  const sub = join(dir, 'haproxy');
  mkdirSync(sub, { recursive: true });
  const conf = renderConfig('haproxy.cfg', sub, {
    ...peerVars(sub), HTTP_PORT: HAPROXY.http, TCP_CONN_PORT: HAPROXY.tcpConn, TCP_BULK_PORT: HAPROXY.tcpBulk,
    HTTP_CHAIN_PORT: HAPROXY.httpChain, HTTP_HOP2_PORT: HAPROXY.httpHop2,
    TCP_BULK_CHAIN_PORT: HAPROXY.tcpBulkChain, TCP_BULK_HOP2_PORT: HAPROXY.tcpBulkHop2,
    H2_PORT: HAPROXY.h2, TLS_PEM: benchCert(dir).pem,
  });
  const check = await runCommand(tools.haproxy, ['-c', '-q', '-f', conf], { cpu: 'none', timeoutMs: 10_000 });
  if (check.code !== 0) return { ok: false, reason: `haproxy -c: ${(check.stderr || check.stdout).trim().slice(0, 300)}`, procs: [] };
  const p = startService('haproxy', tools.haproxy, ['-db', '-f', conf], { cpu: 'proxy', logFile: join(sub, 'haproxy.log') });
  try {
    await waitForHttp(`http://${PEER_HOST}:${HAPROXY.http}/`, READY_MS, p);
    await waitForHttp(`http://${PEER_HOST}:${HAPROXY.httpChain}/`, READY_MS, p);
    return { ok: true, procs: [p] };
  } catch (e) {
    return { ok: false, reason: `haproxy did not start: ${(e as Error).message}`, procs: [p] };
  }
}

export async function startNginxPeer(dir: string, tools: ToolSet): Promise<Started> {
  if (!tools.nginx) return { ok: false, reason: 'nginx not found', procs: [] };
  const sub = join(dir, 'nginx');
  mkdirSync(sub, { recursive: true });
  const conf = renderConfig('nginx.conf', sub, {
    ...peerVars(sub), LOAD_STREAM: tools.nginxStreamLoad ?? '',
    HTTP_PORT: NGINX.http, TCP_CONN_PORT: NGINX.tcpConn, TCP_BULK_PORT: NGINX.tcpBulk, UDP_PORT: NGINX.udp,
    H2_PORT: NGINX.h2, TLS_CERT: benchCert(dir).cert, TLS_KEY: benchCert(dir).key,
  });
  const p = startService('nginx', tools.nginx, nginxArgs(conf, sub), { cpu: 'proxy', logFile: join(sub, 'nginx.log') });
  try {
    await waitForHttp(`http://${PEER_HOST}:${NGINX.http}/`, READY_MS, p);
    await waitForTcp(PEER_HOST, NGINX.tcpConn, READY_MS, p);
    return { ok: true, procs: [p] };
  } catch (e) {
    return { ok: false, reason: `nginx did not start: ${(e as Error).message}`, procs: [p] };
  }
}

const NAIVE_PROXY = new URL('../peers/naive-proxy.ts', import.meta.url).pathname;

/** The naive Node proxy (bench/peers/naive-proxy.ts), run by the same Node as tandem, on the proxy CPU. */
export async function startNaive(dir: string, node: string): Promise<Started> {
  const sub = join(dir, 'naive');
  mkdirSync(sub, { recursive: true });
  const args = ['--import', 'tsx', NAIVE_PROXY, PEER_HOST, String(NAIVE.http), `${BACKEND_HOST}:${BACKEND.http}`];
  const p = startService('naive node', node, args, {
    cpu: 'proxy', cwd: new URL('../../', import.meta.url).pathname, env: { ...process.env, NODE_ENV: 'production' }, logFile: join(sub, 'naive.log'),
  });
  try {
    await waitForHttp(`http://${PEER_HOST}:${NAIVE.http}/`, READY_MS, p);
    return { ok: true, procs: [p] };
  } catch (e) {
    return { ok: false, reason: `the naive Node proxy did not start: ${(e as Error).message}`, procs: [p] };
  }
}

/** A one-test iperf3 server on the backend port (a fresh one per measurement: none gets stuck). */
export async function startIperfServer(dir: string, tools: ToolSet, tag: string): Promise<Proc> {
  if (!tools.iperf3) throw new Error('iperf3 not found');
  const log = join(dir, `iperf3-server-${tag}.log`);
  const p = startService('iperf3 server', tools.iperf3, ['-s', '-1', '-B', BACKEND_HOST, '-p', String(BACKEND.iperf), '--forceflush'], {
    cpu: 'load', logFile: log,
  });
  // A TCP probe would count as a test, so wait for the "Server listening" line instead.
  await waitForLine(p, log, 'listening', 5000);
  return p;
}
