/**
 * A real tandem cluster for integration tests: N node processes (`bin/tandem.js start`) on
 * 127.0.0.1, 127.0.0.2, … from one generated config, with helpers to query their admin APIs,
 * kill -9 and restart them. Always call stop() (in `after`): no process is left behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, createWriteStream, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import { sleep } from './wait.js';

const BIN = new URL('../../bin/tandem.js', import.meta.url).pathname;
/** Preloaded into every node process: adds the test-only `POST /api/test/flows` (see the file). */
const FLOW_HOOK = pathToFileURL(new URL('./flow-hook.mjs', import.meta.url).pathname).href;

export interface TestNode {
  readonly id: string;
  readonly host: string;
  readonly peerPort: number;
  readonly adminPort: number;
  readonly logFile: string;
  process: ChildProcess | null;
  /** How the node is launched (kept across restarts): a command in front of node, extra env. */
  launch?: Launch;
}

export interface Launch {
  /** e.g. ['faketime', '-f', '+10m']: the node runs as `prefix… node bin/tandem.js start …`. */
  readonly prefix?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}

export interface ClusterOptions {
  /** Ports basePort.. are used: peer = base + i, admin = base + 50 + i. */
  readonly basePort: number;
  readonly nodes?: number;
  /** Service entries as in the YAML (name, protocol, port, flowKey, backends, …). */
  readonly services?: readonly Record<string, unknown>[];
  /** Extra keys for the `cluster` section. */
  readonly cluster?: Record<string, unknown>;
  readonly weights?: readonly number[];
  /** Start every node before resolving (default true). */
  readonly start?: boolean;
  readonly logLevel?: string;
}

export const TEST_SECRET = 'integration-test-secret-0123456789';
export const TEST_TOKEN = 'integration-test-admin-token';

export class TestCluster {
  readonly dir: string;
  readonly configPath: string;
  readonly nodes: TestNode[];
  readonly #logLevel: string;
  config: Record<string, unknown>;

  constructor(opts: ClusterOptions) {
    const n = opts.nodes ?? 3;
    this.dir = mkdtempSync(join(tmpdir(), 'tandem-it-'));
    this.configPath = join(this.dir, 'tandem.yaml');
    this.#logLevel = opts.logLevel ?? 'warn';
    this.nodes = Array.from({ length: n }, (_, i) => ({
      id: `lb${i + 1}`,
      host: `127.0.0.${i + 1}`,
      peerPort: opts.basePort + i,
      adminPort: opts.basePort + 50 + i,
      logFile: join(this.dir, `lb${i + 1}.log`),
      process: null,
    }));
    this.config = {
      cluster: {
        name: 'test',
        secret: TEST_SECRET,
        adminToken: TEST_TOKEN,
        heartbeatMs: 100,
        failureTimeoutMs: 500,
        snapshotTimeoutMs: 1000,
        drainTimeoutMs: 3000,
        ...(opts.cluster ?? {}),
        nodes: this.nodes.map((node, i) => ({
          id: node.id,
          host: node.host,
          peerPort: node.peerPort,
          adminPort: node.adminPort,
          ...(opts.weights ? { weight: opts.weights[i] } : {}),
        })),
      },
      services: opts.services ?? [],
    };
    this.writeConfig();
  }

  writeConfig(config: Record<string, unknown> = this.config): void {
    this.config = config;
    writeFileSync(this.configPath, stringify(config));
  }

  node(id: string): TestNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Spawn a node process; resolves when its /readyz answers 200. */
  async start(id: string, timeoutMs = 30_000, launch?: Launch): Promise<void> {
    const n = this.node(id);
    if (launch !== undefined) n.launch = launch;
    const log = createWriteStream(n.logFile, { flags: 'a' });
    const argv = [process.execPath, '--import', FLOW_HOOK, BIN, 'start', '--config', this.configPath, '--node', id, '--log-level', this.#logLevel];
    const [cmd, ...args] = [...(n.launch?.prefix ?? []), ...argv];
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...(n.launch?.env ?? {}) },
    });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    n.process = child;
    child.once('exit', () => {
      if (n.process === child) n.process = null;
    });
    await this.waitReady(id, timeoutMs);
  }

  async startAll(): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.start(n.id)));
  }

  async waitReady(id: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const n = this.node(id);
    while (Date.now() < deadline) {
      if (!n.process) throw new Error(`${id} exited before ready:\n${this.log(id)}`);
      const r = await this.get(id, '/readyz').catch(() => null);
      if (r && r.status === 200) return;
      await sleep(25);
    }
    throw new Error(`${id} not ready within ${timeoutMs} ms:\n${this.log(id)}`);
  }

  log(id: string): string {
    try {
      return readFileSync(this.node(id).logFile, 'utf8').split('\n').slice(-40).join('\n');
    } catch {
      return '';
    }
  }

  /** kill -9: no goodbye, no drain. */
  kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const n = this.node(id);
    const child = n.process;
    if (!child || child.exitCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }

  async restart(id: string): Promise<void> {
    await this.kill(id);
    await this.start(id);
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.kill(n.id)));
  }

  async get(id: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown; text: string }> {
    const n = this.node(id);
    const res = await fetch(`http://${n.host}:${n.adminPort}${path}`, { headers, signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body, text };
  }

  async post(id: string, path: string, body: unknown, token: string | null = TEST_TOKEN): Promise<{ status: number; body: unknown }> {
    const n = this.node(id);
    const res = await fetch(`http://${n.host}:${n.adminPort}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  /** The flow entry as node `id` holds it, or null. */
  async flow(id: string, service: string, key: string): Promise<FlowView | null> {
    const r = await this.get(id, `/api/flows?service=${encodeURIComponent(service)}&key=${encodeURIComponent(key)}`);
    return r.status === 200 ? (r.body as FlowView) : null;
  }

  async cluster(id: string): Promise<{ self: string; nodes: Array<{ id: string; state: string; weight: number }> }> {
    return (await this.get(id, '/api/cluster')).body as { self: string; nodes: Array<{ id: string; state: string; weight: number }> };
  }

  /** One metric's value (summed over label sets matching `labels`). */
  async metric(id: string, name: string, labels: Record<string, string> = {}): Promise<number> {
    const text = (await this.get(id, '/metrics')).text;
    let sum = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith(name)) continue;
      const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
      if (!m || m[1] !== name) continue;
      const ls = m[2] ?? '';
      if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) sum += Number(m[3]);
    }
    return sum;
  }
}

export interface FlowView {
  service: string;
  key: string;
  primary: string;
  backup: string | null;
  backend: string | null;
  version: number;
  writer: string;
  /** The node's own clock when it last saw the flow active (not replicated as such). */
  lastActive?: number;
}

export async function startCluster(opts: ClusterOptions): Promise<TestCluster> {
  const c = new TestCluster(opts);
  if (opts.start !== false) {
    try {
      await c.startAll();
    } catch (err) {
      await c.stop();
      throw err;
    }
  }
  return c;
}

export { sleep, WAIT_FLOOR_MS, waitUntil } from './wait.js';
