/**
 * A bounded mixed client load for the fault tests and the soak (scripts/soak.ts): HTTP GETs with
 * session keys, short TCP connections, and UDP flows, each sent through the nodes the caller says
 * are up, as clients behind a VIP would. Every operation records its outcome, its latency and the
 * backend that answered, so a test can assert what the tier did (nothing failed, no flow changed
 * backend) and print how fast it was (never assert it).
 *
 * Backends must name themselves: HTTP answers JSON {id} (helpers/backends.ts httpBackend), TCP
 * and UDP answer "<id>:<what was sent>" (idTcpBackend below, udpBackend).
 *
 * Classification, as in chaos.test.ts: an operation whose ingress node was taken down while it
 * ran (the caller bumps `epochOf(node)`) is counted as `cut`, not as a failure; a failed HTTP GET
 * of that kind is retried once on another node (any HTTP client retries an idempotent request
 * after a reset).
 */
import { Agent } from 'node:http';
import net from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { Backend } from '../../helpers/backends.js';
import { keyedGet } from './http-get.js';

export interface MixedTargets {
  /** Session keys `${prefix}-0` … `${prefix}-${sessions - 1}`, or exactly `keys` when given. */
  readonly http?: { readonly port: number; readonly sessions: number; readonly workers: number; readonly prefix?: string; readonly keys?: readonly string[] };
  /** Short connections; `clients`: local addresses to connect from (client-ip flows), optional. */
  readonly tcp?: { readonly port: number; readonly workers: number; readonly clients?: readonly string[] };
  /** Long-lived flows, one socket each, bound on `bindHost`, `perSecond` datagrams per flow. */
  readonly udp?: { readonly port: number; readonly flows: number; readonly perSecond: number; readonly bindHost: string };
}

export interface LoadControl {
  /** Every node's host. */
  readonly hosts: readonly string[];
  /** Node hosts clients may send to now (a node being restarted is left out by the caller). */
  up(): readonly string[];
  /** Bumped by the caller when it takes a node down: operations through it are `cut`. */
  epochOf(host: string): number;
  /** Pause between operations of one worker (pacing), ms. Default 10. */
  readonly pauseMs?: number;
  /** Per-protocol pauses, overriding pauseMs. */
  readonly pauses?: { readonly http?: number; readonly tcp?: number };
  /** Per-request patience, ms (a busy machine answers late; this is not a bound). Default 10 000. */
  readonly timeoutMs?: number;
}

export interface ProtoFigures {
  ops: number;
  ok: number;
  failed: number;
  cut: number;
  retriedOk: number;
  errors: string[];
  /** flow key → backend ids that answered it. */
  readonly backends: Map<string, Set<string>>;
  /** Latencies (ms) of successful operations since the last window() call. */
  latencies: number[];
  /** All latencies of the run (bounded reservoir of 20 000). */
  readonly all: number[];
}

function figures(): ProtoFigures {
  return { ops: 0, ok: 0, failed: 0, cut: 0, retriedOk: 0, errors: [], backends: new Map(), latencies: [], all: [] };
}

function record(f: ProtoFigures, key: string, backend: string, ms: number): void {
  f.ok++;
  let s = f.backends.get(key);
  if (s === undefined) f.backends.set(key, (s = new Set()));
  s.add(backend);
  if (f.latencies.length < 100_000) f.latencies.push(ms);
  if (f.all.length < 20_000) f.all.push(ms);
  else f.all[Math.floor(Math.random() * f.all.length)] = ms;
}

function fail(f: ProtoFigures, what: string): void {
  f.failed++;
  if (f.errors.length < 10) f.errors.push(what);
}

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/** Flow keys whose answers came from more than one backend, as "key: a→b". */
export function movedFlows(f: ProtoFigures): string[] {
  return [...f.backends].filter(([, s]) => s.size > 1).map(([k, s]) => `${k}: ${[...s].join('→')}`);
}

/**
 * A TCP backend that answers "<id>:<bytes>" to whatever it gets and ends its side after the
 * client's FIN (a backend that stayed half-open would keep every connection flow alive).
 */
export async function idTcpBackend(id: string, host = '127.0.0.1'): Promise<Backend> {
  let count = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    count++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => s.write(Buffer.concat([Buffer.from(`${id}:`), d])));
    s.on('end', () => s.end());
  });
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    id,
    host,
    port,
    address: `${host}:${port}`,
    count: () => count,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function httpGet(host: string, port: number, agent: Agent, key: string, timeoutMs: number): Promise<{ status: number; id: string | null }> {
  return keyedGet(host, port, `/m?k=${key}`, agent, key, timeoutMs);
}

function tcpOnce(host: string, port: number, localAddress: string | undefined, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, ...(localAddress !== undefined ? { localAddress } : {}) });
    let got = '';
    const timer = setTimeout(() => done(new Error('client timeout')), timeoutMs);
    const done = (err: Error | null): void => {
      clearTimeout(timer);
      s.destroy();
      if (err) reject(err);
      else resolve(got.slice(0, got.indexOf(':')));
    };
    s.on('connect', () => s.write('ping'));
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.endsWith(':ping')) {
        // A clean close (FIN both ways) ends the connection flow, as a client normally does.
        clearTimeout(timer);
        s.removeAllListeners('close');
        s.end();
        resolve(got.slice(0, got.indexOf(':')));
      }
    });
    s.on('error', (err) => done(err));
    s.on('close', () => done(new Error(`closed after ${JSON.stringify(got)}`)));
  });
}

export class MixedLoad {
  readonly http = figures();
  readonly tcp = figures();
  readonly udp = figures();
  /** UDP datagrams sent and replies received (UDP may lose some: counted, not failed). */
  readonly udpCounts = { sent: 0, replies: 0, ingressMoves: 0 };
  readonly #t: MixedTargets;
  readonly #c: LoadControl;
  #stopped = false;
  #running: Promise<unknown> | null = null;
  #rr = 0;

  constructor(targets: MixedTargets, control: LoadControl) {
    this.#t = targets;
    this.#c = control;
  }

  start(): void {
    this.#running = Promise.all([this.#httpLoad(), this.#tcpLoad(), this.#udpLoad()]);
  }

  /** Stops and waits for the operations in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#running;
  }

  /** Latencies since the last call, per protocol (for periodic samples). */
  window(): { http: number[]; tcp: number[]; udp: number[] } {
    const out = { http: this.http.latencies, tcp: this.tcp.latencies, udp: this.udp.latencies };
    this.http.latencies = [];
    this.tcp.latencies = [];
    this.udp.latencies = [];
    return out;
  }

  #pick(not?: string): string | null {
    const up = this.#c.up().filter((h) => h !== not);
    return up.length === 0 ? null : up[this.#rr++ % up.length];
  }

  async #pause(proto: 'http' | 'tcp'): Promise<void> {
    await new Promise((r) => setTimeout(r, this.#c.pauses?.[proto] ?? this.#c.pauseMs ?? 10));
  }

  async #httpLoad(): Promise<void> {
    const t = this.#t.http;
    if (t === undefined) return;
    const agents = new Map<string, Agent>();
    const agent = (h: string): Agent => {
      let a = agents.get(h);
      if (a === undefined) agents.set(h, (a = new Agent({ keepAlive: true, maxSockets: 8 })));
      return a;
    };
    const timeout = this.#c.timeoutMs ?? 10_000;
    let n = 0;
    await Promise.all(
      Array.from({ length: t.workers }, async () => {
        while (!this.#stopped) {
          const host = this.#pick();
          if (host === null) {
            await this.#pause('http');
            continue;
          }
          const key = t.keys !== undefined ? t.keys[n++ % t.keys.length] : `${t.prefix ?? 'mix'}-${n++ % t.sessions}`;
          const epoch = this.#c.epochOf(host);
          const f = this.http;
          f.ops++;
          const t0 = performance.now();
          try {
            const r = await httpGet(host, t.port, agent(host), key, timeout);
            if (r.status === 200 && r.id !== null) record(f, key, r.id, performance.now() - t0);
            else fail(f, `${host} ${key}: status ${r.status}`);
          } catch (err) {
            if (this.#c.epochOf(host) !== epoch) {
              f.cut++;
              const other = this.#pick(host);
              const r = other === null ? null : await httpGet(other, t.port, agent(other), key, timeout).catch(() => null);
              if (r?.status === 200 && r.id !== null) {
                f.retriedOk++;
                record(f, key, r.id, performance.now() - t0);
              } else fail(f, `${host} ${key}: cut by a kill, retry failed`);
            } else fail(f, `${host} ${key}: ${(err as Error).message}`);
          }
          await this.#pause('http');
        }
      }),
    );
    for (const a of agents.values()) a.destroy();
  }

  async #tcpLoad(): Promise<void> {
    const t = this.#t.tcp;
    if (t === undefined) return;
    const timeout = this.#c.timeoutMs ?? 10_000;
    let n = 0;
    await Promise.all(
      Array.from({ length: t.workers }, async () => {
        while (!this.#stopped) {
          const host = this.#pick();
          if (host === null) {
            await this.#pause('tcp');
            continue;
          }
          const local = t.clients?.[n++ % t.clients.length];
          const key = local ?? `conn-${n}`;
          const epochs = this.#c.hosts.map((h) => this.#c.epochOf(h));
          const f = this.tcp;
          f.ops++;
          const t0 = performance.now();
          try {
            const id = await tcpOnce(host, t.port, local, timeout);
            record(f, key, id, performance.now() - t0);
          } catch (err) {
            // A connection through a node that dies, or to an owner that dies, is cut: that is TCP.
            const changed = this.#c.hosts.some((h, i) => this.#c.epochOf(h) !== epochs[i]);
            if (changed) f.cut++;
            else fail(f, `${host} ${key}: ${(err as Error).message}`);
          }
          await this.#pause('tcp');
        }
      }),
    );
  }

  async #udpLoad(): Promise<void> {
    const t = this.#t.udp;
    if (t === undefined) return;
    const f = this.udp;
    const socks: UdpSocket[] = [];
    const sentAt = new Map<string, number>();
    for (let i = 0; i < t.flows; i++) {
      const s = createSocket('udp4');
      await new Promise<void>((resolve) => s.bind(0, t.bindHost, () => resolve()));
      const key = `${t.bindHost}:${s.address().port}`;
      s.on('message', (m: Buffer) => {
        const text = m.toString('latin1');
        const colon = text.indexOf(':');
        const at = sentAt.get(`${i}/${text.slice(colon + 1)}`);
        this.udpCounts.replies++;
        if (at !== undefined) {
          sentAt.delete(`${i}/${text.slice(colon + 1)}`);
          record(f, key, text.slice(0, colon), performance.now() - at);
        }
      });
      socks.push(s);
    }
    // Each flow sticks to its ingress until that node goes down.
    const ingress: Array<string | null> = socks.map(() => this.#pick());
    let seq = 0;
    const period = 1000 / Math.max(0.1, t.perSecond);
    while (!this.#stopped) {
      const up = this.#c.up();
      for (let i = 0; i < socks.length; i++) {
        if (ingress[i] === null || !up.includes(ingress[i]!)) {
          ingress[i] = this.#pick();
          this.udpCounts.ingressMoves++;
        }
        if (ingress[i] === null) continue;
        const payload = `d${seq++}`;
        if (sentAt.size < 100_000) sentAt.set(`${i}/${payload}`, performance.now());
        f.ops++;
        this.udpCounts.sent++;
        socks[i].send(payload, t.port, ingress[i]!);
      }
      await new Promise((r) => setTimeout(r, period));
    }
    await new Promise((r) => setTimeout(r, 500));
    for (const s of socks) s.close();
  }
}
