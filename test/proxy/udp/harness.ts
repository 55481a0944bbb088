/**
 * The UDP proxy's layer over the in-process cluster (test/helpers/in-process-cluster.ts): a real
 * FlowRouter and rendezvous per node over one shared table (instant replication), the one
 * membership view, real pools and real UDP sockets on 127.0.0.1-3. The acceptance tests against
 * real node processes are in cluster.test.ts.
 */
import { createHash } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { Registry } from 'prom-client';
import type { FlowRouter } from '../../../src/cluster/router.js';
import type { FlowEntry } from '../../../src/cluster/flow-entry.js';
import type { ProxyContext } from '../../../src/proxy/context.js';
import { UdpDataPlane } from '../../../src/proxy/udp/data-plane.js';
import { UdpServiceProxy } from '../../../src/proxy/udp/service.js';
import { UdpMetrics } from '../../../src/proxy/udp/metrics.js';
import { InProcessCluster, type Membership } from '../../helpers/in-process-cluster.js';

export { waitFor, metricValue } from '../../helpers/in-process-cluster.js';

export const SECRET = 'udp-harness-secret-0123456789';

/** A node's incarnation in the fake cluster (8 bytes, fixed per id; real ones are random per start). */
export function incarnationOf(id: string): Buffer {
  return createHash('sha256').update(id).digest().subarray(0, 8);
}

/** A udp service as written in a config file (the cluster validates it). */
export function udpService(name: string, port: number, backends: readonly string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, protocol: 'udp', port, flowKey: 'connection', flowIdleTimeoutMs: 30_000, maxFlows: 10_000, backends: backends.map((address) => ({ address })), ...extra };
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
  readonly cluster: InProcessCluster;
  readonly nodes: FakeNode[];
  /** The one flow table (instant replication). */
  readonly table: Map<string, FlowEntry>;
  /** Membership as every node sees it. */
  readonly states: Membership;
  node(id: string): FakeNode;
  /** Stops a node's sockets (a crash, as far as UDP can tell). */
  crash(id: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * `unresolved`: nodes whose host every *other* node sees as a name that does not resolve (a peer
 * the UDP data plane cannot send to).
 */
export async function fakeCluster(opts: { ids: readonly string[]; peerBase: number; service: Record<string, unknown>; unresolved?: readonly string[] }): Promise<FakeCluster> {
  const cluster = new InProcessCluster({ nodes: opts.ids, services: [opts.service], peerPort: (i) => opts.peerBase + i, secret: SECRET, replication: 'instant' });
  const service = cluster.config.services[0];
  const configs = cluster.config.cluster.nodes;
  const nodes: FakeNode[] = [];
  for (const self of configs) {
    const registry = new Registry();
    const dataPlane = cluster.dataPlane(self.id, {
      dial: () => Promise.reject(new Error('not used by udp')),
      onChannel: () => undefined,
      // What the control links would have agreed: every node's incarnation, known to all.
      incarnation: incarnationOf(self.id),
      peerIncarnation: (id) => (opts.ids.includes(id) ? incarnationOf(id) : null),
    });
    const made: { proxy?: UdpServiceProxy } = {};
    const view = configs.map((n) => (n.id !== self.id && opts.unresolved?.includes(n.id) ? { ...n, host: `${n.id}.invalid` } : n));
    const ctx = cluster.context(self.id, { dataPlane, registry, nodes: () => view }, cluster.pools());
    const plane = new UdpDataPlane(ctx, (name) => (name === service.name ? made.proxy : undefined), new UdpMetrics(registry));
    const proxy = (made.proxy = new UdpServiceProxy(ctx, service, plane));
    await plane.start();
    await proxy.start();
    nodes.push({ id: self.id, ctx, plane, proxy, registry, router: ctx.router });
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
    cluster,
    nodes,
    table: cluster.table(opts.ids[0]),
    states: cluster.membership,
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
