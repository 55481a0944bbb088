/**
 * In-process UDP "nodes" for the proxy tests: a real FlowRouter per node over one shared table
 * (instant replication), a fake membership view, real pools and real UDP sockets on
 * 127.0.0.1-3. The acceptance tests against real node processes are in cluster.test.ts.
 */
import { createHash } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { FlowRouter } from '../../../src/cluster/router.js';
import { compareVersion, type FlowEntry } from '../../../src/cluster/flow-entry.js';
import { UpstreamPool } from '../../../src/upstream/pool.js';
import { createSelector } from '../../../src/balancer/index.js';
import type { NodeConfig, ServiceConfig } from '../../../src/config/schema.js';
import type { DataPlane, PeerState, ProxyContext } from '../../../src/proxy/context.js';
import { UdpDataPlane } from '../../../src/proxy/udp/data-plane.js';
import { UdpServiceProxy } from '../../../src/proxy/udp/service.js';
import { Forwarder } from '../../../src/proxy/hops.js';
import { PeerMux } from '../../../src/proxy/mux/peer-mux.js';

export const SECRET = 'udp-harness-secret-0123456789';

/** A node's incarnation in the fake cluster (8 bytes, fixed per id; real ones are random per start). */
export function incarnationOf(id: string): Buffer {
  return createHash('sha256').update(id).digest().subarray(0, 8);
}

export function udpService(name: string, port: number, backends: readonly string[], extra: Partial<ServiceConfig> = {}): ServiceConfig {
  return {
    name,
    protocol: 'udp',
    port,
    flowKey: 'connection',
    policy: 'round-robin',
    flowIdleTimeoutMs: 30_000,
    maxFlows: 10_000,
    maxConnections: 10_000,
    quicCidLength: 8,
    slowStartMs: 0,
    accessLog: false,
    timeouts: { connectMs: 3000, headerMs: 10_000, idleMs: 60_000, requestMs: 60_000 },
    backends: backends.map((a) => {
      const [host, port] = a.split(':');
      return { address: a, host: host, port: Number(port), weight: 1 };
    }),
    healthCheck: { type: 'none', path: '/healthz', method: 'GET', expectStatus: '200-399', intervalMs: 1000, timeoutMs: 1000, rise: 2, fall: 3 },
    routes: [],
    rateLimit: null,
    requestHeaders: null,
    responseHeaders: null,
    tls: null,
    ...extra,
  };
}

/** Owners by a string hash of key and node id (a stand-in for rendezvous, deterministic). */
export function score(key: string, id: string): number {
  let h = 0x811c9dc5;
  for (const ch of key + '\0' + id) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
  return h >>> 0;
}

export interface FakeNode {
  readonly id: string;
  readonly ctx: ProxyContext;
  readonly plane: UdpDataPlane;
  readonly proxy: UdpServiceProxy;
  readonly registry: Registry;
  readonly router: FlowRouter;
}

export interface FakeCluster {
  readonly nodes: FakeNode[];
  readonly table: Map<string, FlowEntry>;
  /** Membership as every node sees it. */
  readonly states: Map<string, PeerState>;
  node(id: string): FakeNode;
  /** Stops a node's sockets (a crash, as far as UDP can tell). */
  crash(id: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * `unresolved`: nodes whose host every *other* node sees as a name that does not resolve (a peer
 * the UDP data plane cannot send to).
 */
export async function fakeCluster(opts: { ids: readonly string[]; peerBase: number; service: ServiceConfig; unresolved?: readonly string[] }): Promise<FakeCluster> {
  const table = new Map<string, FlowEntry>();
  const states = new Map<string, PeerState>(opts.ids.map((id) => [id, 'alive']));
  const configs: NodeConfig[] = opts.ids.map((id, i) => ({ id, host: `127.0.0.${i + 1}`, peerPort: opts.peerBase + i, adminPort: 9000, weight: 1 }));
  // Real versions are HLC values, far above the weak version 1 that router.lookup() creates with.
  let clock = 1_000_000;
  const nodes: FakeNode[] = [];
  for (const self of configs) {
    const rankAll = (key: string): string[] => [...opts.ids].sort((a, b) => score(key, b) - score(key, a) || (a < b ? -1 : 1));
    const router = new FlowRouter({
      selfId: self.id,
      owners: (key, candidates) => {
        const r = rankAll(key).filter((id) => candidates.includes(id));
        return { primary: r[0], backup: r[1] ?? null };
      },
      rank: (_s, key) => rankAll(key),
      candidates: () => opts.ids.filter((id) => id === self.id || states.get(id) !== 'dead'),
      state: (id) => (id === self.id ? 'alive' : states.get(id) ?? 'dead'),
      publish: () => undefined,
      merge: (e) => {
        const k = `${e.service}\0${e.key}`;
        const old = table.get(k);
        if (old && compareVersion(e, old) <= 0) return false;
        table.set(k, e);
        return true;
      },
      get: (s, k) => {
        const e = table.get(`${s}\0${k}`);
        return e && !e.ended ? e : undefined;
      },
      getAny: (s, k) => table.get(`${s}\0${k}`),
      version: () => clock++,
      now: Date.now,
    });
    const pool = new UpstreamPool(opts.service.backends, createSelector(opts.service.policy));
    const registry = new Registry();
    const dataPlane: DataPlane = {
      selfId: self.id,
      stateOf: (id) => states.get(id) ?? 'dead',
      markSuspect: () => undefined,
      dial: () => Promise.reject(new Error('not used by udp')),
      onChannel: () => undefined,
      // What the control links would have agreed: every node's incarnation, known to all.
      incarnation: incarnationOf(self.id),
      peerIncarnation: (id) => (opts.ids.includes(id) ? incarnationOf(id) : null),
    };
    const made: { proxy?: UdpServiceProxy } = {};
    const view = configs.map((n) => (n.id !== self.id && opts.unresolved?.includes(n.id) ? { ...n, host: `${n.id}.invalid` } : n));
    const ctx: ProxyContext = {
      self,
      nodes: () => view,
      router,
      dataPlane,
      forwarder: new Forwarder(router, dataPlane),
      // The HTTP channel is not used by this protocol's tests: a mux that never dials.
      httpMux: new PeerMux({ dial: () => Promise.reject(new Error('no http channel in this harness')) }),
      secret: SECRET,
      logger: pino({ level: 'silent' }),
      registry,
      pool: (name) => (name === opts.service.name ? pool : undefined),
      service: (name) => (name === opts.service.name ? opts.service : undefined),
    };
    const plane = new UdpDataPlane(ctx, (name) => (name === opts.service.name ? made.proxy : undefined));
    const proxy = (made.proxy = new UdpServiceProxy(ctx, opts.service, plane));
    await plane.start();
    await proxy.start();
    nodes.push({ id: self.id, ctx, plane, proxy, registry, router });
  }
  const stopped = new Set<string>();
  const node = (id: string): FakeNode => {
    const n = nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  };
  const crash = async (id: string) => {
    if (stopped.has(id)) return;
    stopped.add(id);
    const n = node(id);
    await n.proxy.stop();
    await n.plane.stop();
  };
  return {
    nodes,
    table,
    states,
    node,
    crash,
    close: async () => {
      for (const n of nodes) await crash(n.id);
    },
  };
}

/** A UDP echo backend answering "<id>:<payload>". */
export async function echoBackend(id: string, host = '127.0.0.1'): Promise<{ address: string; socket: Socket; count: () => number; close(): Promise<void> }> {
  let count = 0;
  const socket = createSocket('udp4');
  socket.on('message', (msg, r) => {
    count++;
    socket.send(Buffer.concat([Buffer.from(`${id}:`), msg]), r.port, r.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  return { address: `${host}:${socket.address().port}`, socket, count: () => count, close: () => new Promise((r) => socket.close(() => r())) };
}

/** A client socket that collects replies with their source. */
export async function client(host = '127.0.0.1'): Promise<{ socket: Socket; port: number; replies: Array<{ text: string; from: string }>; send(to: { host: string; port: number }, data: string | Buffer): void; close(): Promise<void> }> {
  const socket = createSocket('udp4');
  const replies: Array<{ text: string; from: string }> = [];
  socket.on('message', (msg, r) => replies.push({ text: msg.toString('latin1'), from: `${r.address}:${r.port}` }));
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  return {
    socket,
    port: socket.address().port,
    replies,
    send: (to, data) => socket.send(data, to.port, to.host),
    close: () => new Promise((r) => socket.close(() => r())),
  };
}

export async function waitFor(cond: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timeout waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const data = await m.get();
  let sum = 0;
  for (const v of data.values) {
    const metricName = (v as { metricName?: string }).metricName;
    if (metricName && metricName !== name) continue;
    if (Object.entries(labels).every(([k, x]) => String((v.labels as Record<string, unknown>)[k]) === x)) sum += v.value;
  }
  return sum;
}
