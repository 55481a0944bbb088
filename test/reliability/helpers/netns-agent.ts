/**
 * Runs inside the clients' network namespace for the partition test (started through
 * `ip netns exec`, driven over the IPC channel): the HTTP backends, admin API queries and the
 * client load all live here, because only this namespace can reach the nodes' addresses.
 *
 * Messages: { id, cmd, args } → { id, ok, result } | { id, ok: false, error }.
 */
import { Agent } from 'node:http';
import { httpBackend, udpBackend, type Backend } from '../../helpers/backends.js';
import { getText } from './http-get.js';
import { serveCalls } from './agent-server.js';
import { MixedLoad, idTcpBackend, percentile, type MixedTargets, type ProtoFigures } from './mixed-load.js';

const backends: Backend[] = [];
const agent = new Agent({ keepAlive: true, maxSockets: 32 });

interface Reply {
  status: number;
  body: string;
}

function get(url: string, headers: Record<string, string>, timeoutMs: number): Promise<Reply> {
  return getText(url, { agent, headers, timeoutMs });
}

interface LoadArgs {
  /** Base URLs of the service on the nodes to send to. */
  readonly targets: readonly string[];
  readonly keys: readonly string[];
  readonly durationMs: number;
  readonly concurrency: number;
  readonly timeoutMs: number;
  /** Upper bound on requests, whatever the duration. */
  readonly maxRequests: number;
}

interface LoadResult {
  requests: number;
  failures: number;
  failureSamples: string[];
  /** key → backend ids that answered it, in order of first appearance. */
  backends: Record<string, string[]>;
}

async function load(a: LoadArgs): Promise<LoadResult> {
  const out: LoadResult = { requests: 0, failures: 0, failureSamples: [], backends: {} };
  const deadline = Date.now() + a.durationMs;
  let n = 0;
  await Promise.all(
    Array.from({ length: a.concurrency }, async () => {
      while (Date.now() < deadline && n < a.maxRequests) {
        const i = n++;
        const key = a.keys[i % a.keys.length];
        const target = a.targets[Math.floor(i / a.keys.length + i) % a.targets.length];
        out.requests++;
        try {
          const r = await get(`${target}/p?i=${i}`, { 'x-session': key }, a.timeoutMs);
          if (r.status !== 200) throw new Error(`status ${r.status}: ${r.body.slice(0, 80)}`);
          const id = (JSON.parse(r.body) as { id: string }).id;
          const seen = (out.backends[key] ??= []);
          if (!seen.includes(id)) seen.push(id);
        } catch (err) {
          out.failures++;
          if (out.failureSamples.length < 5) out.failureSamples.push(`${target} ${key}: ${(err as Error).message}`);
        }
      }
    }),
  );
  return out;
}

/** What a mixed load's figures look like over IPC (Maps and Sets flattened). */
export interface MixedResult {
  readonly [proto: string]: { ops: number; ok: number; failed: number; cut: number; errors: string[]; backends: Record<string, string[]>; p50: number; p99: number; max: number };
}

function flat(f: ProtoFigures): MixedResult[string] {
  return {
    ops: f.ops,
    ok: f.ok,
    failed: f.failed,
    cut: f.cut,
    errors: f.errors,
    backends: Object.fromEntries([...f.backends].map(([k, s]) => [k, [...s]])),
    p50: percentile(f.all, 50),
    p99: percentile(f.all, 99),
    max: f.all.length ? Math.max(...f.all) : 0,
  };
}

const mixed = new Map<string, MixedLoad>();

async function handle(cmd: string, args: Record<string, unknown>): Promise<unknown> {
  switch (cmd) {
    case 'backends': {
      for (const [i, port] of (args.ports as number[]).entries()) backends.push(await httpBackend(`b${i + 1}`, args.host as string, port));
      return backends.map((b) => b.address);
    }
    case 'mixed-backends': {
      // HTTP, TCP and UDP backends named h1…, t1…, u1… on the given ports of this namespace.
      const host = args.host as string;
      const out: Record<string, string[]> = { http: [], tcp: [], udp: [] };
      for (const [i, port] of (args.http as number[]).entries()) {
        const b = await httpBackend(`h${i + 1}`, host, port);
        backends.push(b);
        out.http.push(b.address);
      }
      for (let i = 0; i < (args.tcp as number); i++) {
        const b = await idTcpBackend(`t${i + 1}`, host);
        backends.push(b);
        out.tcp.push(b.address);
      }
      for (let i = 0; i < (args.udp as number); i++) {
        const b = await udpBackend(`u${i + 1}`, host);
        backends.push(b);
        out.udp.push(b.address);
      }
      return out;
    }
    case 'mixed-start': {
      const hosts = args.hosts as string[];
      const m = new MixedLoad(args.targets as MixedTargets, {
        hosts,
        up: () => hosts,
        epochOf: () => 0,
        pauseMs: (args.pauseMs as number | undefined) ?? 10,
        timeoutMs: (args.timeoutMs as number | undefined) ?? 10_000,
      });
      mixed.set((args.name as string | undefined) ?? 'load', m);
      m.start();
      return null;
    }
    case 'mixed-window': {
      const w = mixed.get((args.name as string | undefined) ?? 'load')!.window();
      return { http: percentile(w.http, 99), tcp: percentile(w.tcp, 99), udp: percentile(w.udp, 99), n: w.http.length + w.tcp.length + w.udp.length };
    }
    case 'mixed-stop': {
      const name = (args.name as string | undefined) ?? 'load';
      const m = mixed.get(name)!;
      await m.stop();
      mixed.delete(name);
      return { http: flat(m.http), tcp: flat(m.tcp), udp: flat(m.udp), udpCounts: m.udpCounts };
    }
    case 'get': {
      const r = await get(args.url as string, {}, (args.timeoutMs as number | undefined) ?? 3000);
      return { status: r.status, body: r.body };
    }
    case 'load':
      return load(args as unknown as LoadArgs);
    case 'exit':
      for (const m of mixed.values()) await m.stop();
      agent.destroy();
      await Promise.all(backends.map((b) => b.close()));
      setImmediate(() => process.exit(0));
      return null;
    default:
      throw new Error(`unknown command ${cmd}`);
  }
}

serveCalls(handle);
