/**
 * `tandem demo`: a complete cluster on this machine in one command — three nodes on 127.0.0.1-3
 * (each its own process, as in production), three demo backends speaking HTTP, TCP and UDP, and
 * an http (8080), a tcp echo (8081) and a udp echo (8082) service. Ctrl-C stops it all.
 * `tandem demo --config FILE` only writes the demo's config for reuse.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createHttp } from 'node:http';
import { createServer as createTcp, type Server } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { mkdtempSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { Io } from './validate.js';

const HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
const IDS = ['lb1', 'lb2', 'lb3'];
const BACKENDS = ['alpha', 'beta', 'gamma'];
export const DEMO_ADMIN_TOKEN = 'demo-admin-token-change-me';

export function demoConfig(): Record<string, unknown> {
  return {
    cluster: {
      name: 'demo',
      secret: 'demo-cluster-secret-change-me',
      adminToken: DEMO_ADMIN_TOKEN,
      heartbeatMs: 100,
      failureTimeoutMs: 500,
      nodes: IDS.map((id, i) => ({ id, host: HOSTS[i], peerPort: 7000, adminPort: 9000 })),
    },
    services: [
      {
        name: 'web',
        protocol: 'http',
        port: 8080,
        flowKey: 'header:x-session',
        policy: 'round-robin',
        backends: BACKENDS.map((_, i) => ({ address: `127.0.0.1:${9101 + i}` })),
        healthCheck: { type: 'http', path: '/healthz', intervalMs: 1000 },
      },
      {
        name: 'echo',
        protocol: 'tcp',
        port: 8081,
        flowKey: 'client-ip',
        policy: 'least-connections',
        backends: BACKENDS.map((_, i) => ({ address: `127.0.0.1:${9201 + i}` })),
        healthCheck: { type: 'tcp', intervalMs: 1000 },
      },
      {
        name: 'udp-echo',
        protocol: 'udp',
        port: 8082,
        flowKey: 'connection',
        policy: 'p2c',
        backends: BACKENDS.map((_, i) => ({ address: `127.0.0.1:${9301 + i}` })),
      },
    ],
  };
}

export interface DemoBackends {
  close(): Promise<void>;
}

/** The demo's backends: each answers with its name, so a person sees where a flow went. */
export async function startDemoBackends(): Promise<DemoBackends> {
  const closers: Array<() => Promise<void>> = [];
  for (const [i, name] of BACKENDS.entries()) {
    const http = createHttp((req, res) => {
      req.resume();
      req.on('end', () => {
        const body = `${name}: ${req.method} ${req.url} via ${req.headers.via ?? '-'} for ${req.headers['x-forwarded-for'] ?? '-'}\n`;
        res.writeHead(200, { 'content-type': 'text/plain', 'x-backend': name });
        res.end(body);
      });
    });
    http.on('upgrade', (_req, socket) => {
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`);
      socket.pipe(socket);
    });
    await listen(http, 9101 + i);
    const tcp = createTcp({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      s.write(`${name}> `);
      s.pipe(s);
    });
    await listen(tcp, 9201 + i);
    const udp: UdpSocket = createSocket('udp4');
    udp.on('message', (msg, r) => udp.send(Buffer.concat([Buffer.from(`${name}: `), msg]), r.port, r.address));
    await new Promise<void>((resolve) => udp.bind(9301 + i, '127.0.0.1', () => resolve()));
    closers.push(
      () => new Promise((r) => http.close(() => r())),
      () => new Promise((r) => tcp.close(() => r())),
      () => new Promise((r) => udp.close(() => r())),
    );
    http.closeIdleConnections?.();
  }
  return { close: async () => void (await Promise.allSettled(closers.map((c) => c()))) };
}

function listen(server: Server | ReturnType<typeof createHttp>, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
}

export async function demoCommand(args: { config?: string }, io: Io): Promise<number> {
  const config = demoConfig();
  if (args.config) {
    writeFileSync(args.config, stringify(config));
    io.out(`wrote the demo config to ${args.config}; run a node with: tandem start --config ${args.config} --node lb1`);
    return 0;
  }
  const dir = mkdtempSync(join(tmpdir(), 'tandem-demo-'));
  const file = join(dir, 'tandem.yaml');
  writeFileSync(file, stringify(config));
  let backends: DemoBackends;
  try {
    backends = await startDemoBackends();
  } catch (err) {
    io.err(`tandem demo: cannot start the demo backends on 127.0.0.1:9101-9303: ${(err as Error).message}`);
    return 1;
  }
  const bin = fileURLToPath(new URL('../../bin/tandem.js', import.meta.url));
  const children = new Map<string, ChildProcess>();
  let stopping = false;
  for (const id of IDS) {
    const log = createWriteStream(join(dir, `${id}.log`));
    const child = spawn(process.execPath, [bin, 'start', '--config', file, '--node', id], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    children.set(id, child);
    child.once('exit', (code, signal) => {
      children.delete(id);
      if (!stopping) io.out(`[demo] ${id} (pid ${child.pid}) exited (${signal ?? code}); the other nodes carry its flows. Log: ${join(dir, `${id}.log`)}`);
    });
  }
  const ready = await Promise.all(IDS.map((id, i) => waitReady(HOSTS[i], 9000, 20_000)));
  if (ready.some((r) => !r)) io.err(`[demo] some nodes did not become ready; logs in ${dir}`);
  io.out(guide(dir, children));
  return new Promise<number>((resolve) => {
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      io.out('\n[demo] stopping…');
      const exits = [...children.values()].map((c) => new Promise<void>((r) => (c.exitCode !== null ? r() : c.once('exit', () => r()))));
      for (const c of children.values()) c.kill('SIGTERM');
      const hard = setTimeout(() => {
        for (const c of children.values()) c.kill('SIGKILL');
      }, 8000);
      await Promise.all(exits);
      clearTimeout(hard);
      await backends.close();
      io.out('[demo] stopped');
      resolve(0);
    };
    process.on('SIGINT', () => void stop());
    process.on('SIGTERM', () => void stop());
  });
}

async function waitReady(host: string, port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`http://${host}:${port}/readyz`, { signal: AbortSignal.timeout(1000) });
      if (r.status === 200) return true;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

function guide(dir: string, children: Map<string, ChildProcess>): string {
  const pids = IDS.map((id) => `${id}=${children.get(id)?.pid ?? '-'}`).join(' ');
  return `
tandem demo: 3 nodes (${pids}), backends alpha, beta, gamma.

Send traffic to any node — the flow keeps its owners and its backend:
  curl -H 'x-session: alice' http://127.0.0.2:8080/         http, keyed by the x-session header
  nc 127.0.0.3 8081                                           tcp echo, keyed by client ip
  echo hello | nc -u -w1 127.0.0.1 8082                       udp echo, keyed by ip:port

Look:
  http://127.0.0.1:9000/                                      the live dashboard (any node's admin port)
  curl http://127.0.0.1:9000/api/cluster                      nodes and their states
  curl 'http://127.0.0.1:9000/api/flows?service=web&key=alice'   where alice's flow lives
  curl http://127.0.0.1:9000/api/backends                     backends and their health
  curl http://127.0.0.1:9000/metrics                          Prometheus metrics
  (admin on 127.0.0.1:9000, 127.0.0.2:9000, 127.0.0.3:9000; admin token: ${DEMO_ADMIN_TOKEN})

Watch a failover: find alice's primary above, then kill -9 its pid (${pids}),
and curl again: same backend, served by the backup.

Config: ${join(dir, 'tandem.yaml')}   Logs: ${dir}/lb*.log
Ctrl-C stops everything.
`;
}
