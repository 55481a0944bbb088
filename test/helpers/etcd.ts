/**
 * A real etcd for tests (Debian's etcd-server: the `etcd` binary): one member or a cluster of
 * members on 127.0.0.1, each with its own temporary data directory, optionally with TLS (client
 * certificates required) — and helpers to start tandem node processes that the config file does
 * not list (`tandem start --host …`), on the addresses and ports of a TestCluster. Always call
 * stop() (in `after`): no process is left behind.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TestCluster } from './cluster.js';

export const ETCD_BIN = 'etcd';

export function haveEtcd(): boolean {
  return spawnSync(ETCD_BIN, ['--version'], { encoding: 'utf8' }).status === 0;
}

export interface EtcdTls {
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

interface Member {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  readonly logFile: string;
  process: ChildProcess | null;
}

export interface EtcdOptions {
  /** Client port of member i = basePort + 2i, peer port basePort + 2i + 1 (keep them in 22900-22999). */
  readonly basePort: number;
  readonly members?: number;
  readonly host?: string;
  readonly tls?: EtcdTls;
}

export class EtcdCluster {
  readonly dir: string;
  readonly host: string;
  readonly tls: EtcdTls | null;
  readonly #members: Member[];

  constructor(opts: EtcdOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'tandem-etcd-'));
    this.host = opts.host ?? '127.0.0.1';
    this.tls = opts.tls ?? null;
    this.#members = Array.from({ length: opts.members ?? 1 }, (_, i) => ({
      name: `e${i}`,
      clientPort: opts.basePort + 2 * i,
      peerPort: opts.basePort + 2 * i + 1,
      dataDir: join(this.dir, `e${i}`),
      logFile: join(this.dir, `e${i}.log`),
      process: null,
    }));
  }

  get size(): number {
    return this.#members.length;
  }

  endpoint(i: number): string {
    return `${this.tls ? 'https' : 'http'}://${this.host}:${this.#members[i].clientPort}`;
  }

  get endpoints(): string[] {
    return this.#members.map((_, i) => this.endpoint(i));
  }

  /** Start every member (a fresh cluster) and wait until each answers /health. */
  async start(): Promise<void> {
    await Promise.all(this.#members.map((_, i) => this.startMember(i, false)));
    await Promise.all(this.#members.map((_, i) => this.waitHealthy(i)));
  }

  /** Start (or restart, on its existing data directory) member i. */
  async startMember(i: number, wait = true): Promise<void> {
    const m = this.#members[i];
    const scheme = this.tls ? 'https' : 'http';
    const initialCluster = this.#members.map((x) => `${x.name}=http://${this.host}:${x.peerPort}`).join(',');
    const args = [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', `${scheme}://${this.host}:${m.clientPort}`,
      '--advertise-client-urls', `${scheme}://${this.host}:${m.clientPort}`,
      '--listen-peer-urls', `http://${this.host}:${m.peerPort}`,
      '--initial-advertise-peer-urls', `http://${this.host}:${m.peerPort}`,
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', `tandem-test-${this.#members[0].clientPort}`,
      '--heartbeat-interval', '50',
      '--election-timeout', '500',
      '--log-level', 'warn',
    ];
    if (this.tls) {
      args.push('--cert-file', this.tls.serverCert, '--key-file', this.tls.serverKey, '--client-cert-auth', '--trusted-ca-file', this.tls.ca);
    }
    const log = createWriteStream(m.logFile, { flags: 'a' });
    const child = spawn(ETCD_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    m.process = child;
    child.once('exit', () => {
      if (m.process === child) m.process = null;
    });
    if (wait) await this.waitHealthy(i);
  }

  async waitHealthy(i: number, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.#members[i].process) throw new Error(`etcd ${this.#members[i].name} exited:\n${this.log(i)}`);
      if (await this.#healthy(i)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`etcd ${this.#members[i].name} not healthy within ${timeoutMs} ms:\n${this.log(i)}`);
  }

  async #healthy(i: number): Promise<boolean> {
    const url = `${this.endpoint(i)}/health`;
    try {
      if (!this.tls) {
        const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
        return r.ok && ((await r.json()) as { health?: string }).health === 'true';
      }
      const tls = this.tls;
      return await new Promise<boolean>((resolve) => {
        const req = httpsRequest(url, { ca: readFileSync(tls.ca), cert: readFileSync(tls.clientCert), key: readFileSync(tls.clientKey), timeout: 1000 }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve(res.statusCode === 200 && body.includes('"true"')));
        });
        req.on('error', () => resolve(false));
        req.on('timeout', () => req.destroy());
        req.end();
      });
    } catch {
      return false;
    }
  }

  log(i: number): string {
    try {
      return readFileSync(this.#members[i].logFile, 'utf8').split('\n').slice(-20).join('\n');
    } catch {
      return '';
    }
  }

  kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#members[i].process;
    if (!child || child.exitCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.#members.map((_, i) => this.kill(i)));
  }
}

/** A CA, an etcd server certificate for 127.0.0.1 and a client certificate, made with openssl. */
export function makeEtcdTls(dir: string): EtcdTls {
  const run = (args: string[]) => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  };
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=tandem-test-ca']);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, cn] of [['server', 'etcd'], ['client', 'tandem']] as const) {
    run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    run(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
  }
  return {
    ca: join(dir, 'ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.crt'),
    clientKey: join(dir, 'client.key'),
  };
}

const BIN = new URL('../../bin/tandem.js', import.meta.url).pathname;
const FLOW_HOOK = pathToFileURL(new URL('./flow-hook.mjs', import.meta.url).pathname).href;

/**
 * Start node `id` of the TestCluster as a node its config file does not list: `--host`,
 * `--peer-port` and `--admin-port` from the TestCluster's scheme. Resolves when /readyz is 200.
 */
export async function startUnlisted(c: TestCluster, id: string, opts: { logLevel?: string; timeoutMs?: number; extraArgs?: string[] } = {}): Promise<void> {
  const n = c.node(id);
  const log = createWriteStream(n.logFile, { flags: 'a' });
  const args = ['--import', FLOW_HOOK, BIN, 'start', '--config', c.configPath, '--node', id, '--host', n.host, '--peer-port', String(n.peerPort), '--admin-port', String(n.adminPort), '--log-level', opts.logLevel ?? 'info', ...(opts.extraArgs ?? [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  n.process = child;
  child.once('exit', () => {
    if (n.process === child) n.process = null;
  });
  await c.waitReady(id, opts.timeoutMs ?? 20_000);
}

/** Run `tandem …` to completion. */
export function tandem(args: string[], timeoutMs = 30_000): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Run `tandem …` without blocking the event loop (other work of the test goes on meanwhile). */
export function tandemAsync(args: string[], timeoutMs = 30_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

export interface Reply {
  readonly status: number;
  /** The backend's id on 200, else the error. */
  readonly backend: string;
  /** The node that served the request (last Via hop). */
  readonly servedBy: string | null;
}

/** One GET with the session header through the node at `host`. */
export async function get(host: string, port: number, session: string): Promise<Reply> {
  const { request } = await import('undici');
  try {
    const r = await request(`http://${host}:${port}/`, { headers: { 'x-session': session }, headersTimeout: 5000, bodyTimeout: 5000 });
    const text = await r.body.text();
    if (r.statusCode !== 200) return { status: r.statusCode, backend: `${String(r.headers['tandem-error'])} ${text}`, servedBy: null };
    const body = JSON.parse(text) as { id: string; via: string | null };
    const hops = (body.via ?? '').split(',').map((h) => h.trim().split(/\s+/)[1]).filter(Boolean);
    return { status: 200, backend: body.id, servedBy: hops.at(-1) ?? null };
  } catch (err) {
    return { status: 0, backend: (err as Error).message, servedBy: null };
  }
}

export interface LoadResult {
  ok: number;
  failed: number;
  moved: number;
  failures: string[];
}

/**
 * Bounded load: `workers` loops of GETs for the given sessions through the given hosts, until
 * stop() or `maxMs` (and at most `maxPerWorker` each). Counts failures and backend changes
 * against `backendOf`.
 */
export function load(opts: { hosts: () => readonly string[]; port: number; sessions: readonly string[]; backendOf: ReadonlyMap<string, string>; workers?: number; maxMs?: number; maxPerWorker?: number }): { stop(): Promise<LoadResult>; result: LoadResult } {
  const result: LoadResult = { ok: 0, failed: 0, moved: 0, failures: [] };
  const t0 = Date.now();
  const until = t0 + (opts.maxMs ?? 15_000);
  let stopped = false;
  const loops = Array.from({ length: opts.workers ?? 6 }, async (_, w) => {
    for (let i = 0; !stopped && Date.now() < until && i < (opts.maxPerWorker ?? 5000); i++) {
      const hosts = opts.hosts();
      const s = opts.sessions[(w * 7 + i) % opts.sessions.length];
      const host = hosts[(w + i) % hosts.length];
      const r = await get(host, opts.port, s);
      if (r.status === 200) {
        result.ok++;
        if (opts.backendOf.has(s) && r.backend !== opts.backendOf.get(s)) result.moved++;
      } else {
        result.failed++;
        if (result.failures.length < 20) result.failures.push(`${Date.now() - t0} ms ${s} via ${host}: ${r.status} ${r.backend}`);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  });
  return {
    result,
    async stop() {
      stopped = true;
      await Promise.all(loops);
      return result;
    },
  };
}

export interface MemberView {
  readonly id: string;
  readonly state: string;
  readonly phase?: string | null;
  readonly source?: string;
  readonly configRevision?: number | null;
}

export interface ClusterView {
  readonly self: string;
  readonly discovery: { readonly state: string; readonly error: string | null } | null;
  readonly configRevision: number | null;
  readonly nodes: readonly MemberView[];
}

export async function view(c: TestCluster, id: string): Promise<ClusterView | null> {
  const r = await c.get(id, '/api/cluster').catch(() => null);
  return r && r.status === 200 ? (r.body as ClusterView) : null;
}

/** True when node `id` lists exactly `ids`, all alive (and serving, when they have a phase). */
export async function sees(c: TestCluster, id: string, ids: readonly string[]): Promise<boolean> {
  const v = await view(c, id);
  if (!v) return false;
  const listed = v.nodes.map((n) => n.id).sort();
  return JSON.stringify(listed) === JSON.stringify([...ids].sort()) && v.nodes.every((n) => n.state === 'alive' && (n.phase === undefined || n.phase === null || n.phase === 'serving'));
}

/** Every flow of a service in node `id`'s table: key → {primary, backup, backend}. */
export async function table(c: TestCluster, id: string, service: string): Promise<Map<string, { primary: string; backup: string | null; backend: string | null }>> {
  const r = await c.get(id, `/api/flows?service=${encodeURIComponent(service)}&limit=100000`);
  const flows = (r.body as { flows: Array<{ key: string; primary: string; backup: string | null; backend: string | null }> }).flows;
  return new Map(flows.map((f) => [f.key, { primary: f.primary, backup: f.backup, backend: f.backend }]));
}
