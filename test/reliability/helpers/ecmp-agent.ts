/**
 * Runs inside a namespace of the ECMP harness (started through `ip netns exec`, driven over IPC):
 * in the backend namespace it serves the HTTP and UDP backends; in the client namespace it runs
 * the client load against the VIP and answers admin queries.
 *
 * The HTTP load: one session per key, each on its own keep-alive connection from one of the
 * client addresses, one request at a time with a pause between. A request is retried the way
 * HTTP clients do and RFC 9112 section 9.3.1 allows for idempotent requests: after a refused
 * connect (nothing was sent; after a short pause) and after a connection that closed or went
 * silent before the response was complete. Every failed attempt is recorded, with the node that
 * had answered on that connection before, so that the test can tell the killed node's own
 * connections from the rest; a request that fails all its attempts is a failed request.
 *
 * The UDP load: one connected socket per flow, a datagram every interval; every reply recorded
 * with the backend that sent it.
 *
 * Messages: { id, cmd, args } → { id, ok, result } | { id, ok: false, error }.
 */
import { Agent, request, type ClientRequest } from 'node:http';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { Socket } from 'node:net';
import { httpBackend, udpBackend, type Backend } from '../../helpers/backends.js';
import { getText, type TextReply } from './http-get.js';
import { serveCalls } from './agent-server.js';

const backends: Backend[] = [];
const adminAgent = new Agent({ keepAlive: false });

function get(url: string, timeoutMs: number): Promise<TextReply> {
  return getText(url, { agent: adminAgent, timeoutMs });
}

interface LoadArgs {
  readonly vip: string;
  readonly httpPort: number;
  readonly udpPort: number;
  readonly clientAddrs: readonly string[];
  readonly sessions: number;
  readonly flows: number;
  readonly httpPauseMs: number;
  readonly udpIntervalMs: number;
  readonly attemptTimeoutMs: number;
  /** Hard stop, whatever the test does. */
  readonly maxDurationMs: number;
}

/** Names → small integers, so records stay compact over IPC. */
class Names {
  readonly list: string[] = [];
  readonly #index = new Map<string, number>();
  of(name: string): number {
    let i = this.#index.get(name);
    if (i === undefined) {
      i = this.list.length;
      this.list.push(name);
      this.#index.set(name, i);
    }
    return i;
  }
}

// Records: [time, session, backend, ingress, attempts]; [time, session, category, ingress, reused, final];
// [time, flow, backend]. A failed attempt also carries its connection's local port (-1 when none).
type HttpOk = [number, number, number, number, number];
type HttpFail = [number, number, number, number, 0 | 1, 0 | 1, number];
type UdpReply = [number, number, number];

const names = new Names();
const categories = new Names();
let ok: HttpOk[] = [];
let fails: HttpFail[] = [];
let replies: UdpReply[] = [];
let udpErrors = 0;
let running = false;
let stopAt = 0;
const flowTuples: Array<{ src: string; sport: number }> = [];
const sessionTuples: Array<{ src: string; sport: number } | null> = [];
const udpSockets: UdpSocket[] = [];
const httpAgents: Agent[] = [];
let loops: Promise<void>[] = [];

const ingressOf = new WeakMap<Socket, number>();

interface Attempt {
  status: 'ok' | 'fail';
  category?: string;
  backend?: string;
  ingress?: string;
  socket: Socket | null;
  reused: boolean;
  /** The connection's local port, -1 when it never got one. */
  sport: number;
}

function attempt(a: LoadArgs, agent: Agent, key: string, localAddress: string): Promise<Attempt> {
  return new Promise((resolve) => {
    let socket: Socket | null = null;
    let settled = false;
    let sport = -1;
    const done = (r: Omit<Attempt, 'socket' | 'reused' | 'sport'>): void => {
      if (settled) return;
      settled = true;
      resolve({ ...r, socket, reused: req.reusedSocket, sport });
    };
    const req: ClientRequest = request(
      { host: a.vip, port: a.httpPort, path: `/s?k=${key}`, headers: { 'x-session': key }, agent, localAddress, timeout: a.attemptTimeoutMs },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          if (res.statusCode !== 200) return done({ status: 'fail', category: `status-${res.statusCode}` });
          try {
            const j = JSON.parse(body) as { id: string; via: string | null };
            // Every hop appends "1.1 <node>": the first is the node the router sent this connection to.
            const ingress = /1\.1 ([^,\s]+)/.exec(j.via ?? '')?.[1] ?? '?';
            done({ status: 'ok', backend: j.id, ingress });
          } catch {
            done({ status: 'fail', category: 'bad-body' });
          }
        });
        res.on('error', () => done({ status: 'fail', category: 'reset' }));
        res.on('aborted', () => done({ status: 'fail', category: 'reset' }));
      },
    );
    req.on('socket', (s: Socket) => {
      socket = s;
      if (s.localPort !== undefined) sport = s.localPort;
      else s.once('connect', () => (sport = s.localPort ?? -1));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? err.message;
      const category = code === 'ECONNREFUSED' ? 'refused' : code === 'TIMEOUT' ? 'timeout' : code === 'ECONNRESET' || code === 'EPIPE' || code === 'ECONNABORTED' ? 'reset' : `error-${code}`;
      done({ status: 'fail', category });
    });
    req.end();
  });
}

async function session(a: LoadArgs, i: number): Promise<void> {
  const key = `s-${i}`;
  const localAddress = a.clientAddrs[i % a.clientAddrs.length];
  const agent = new Agent({ keepAlive: true, maxSockets: 1, keepAliveMsecs: 1000 });
  httpAgents.push(agent);
  // Spread the sessions' first requests over one pause.
  await new Promise((r) => setTimeout(r, Math.floor((a.httpPauseMs * i) / a.sessions)));
  while (running && Date.now() < stopAt) {
    let attempts = 0;
    const started = Date.now();
    for (;;) {
      attempts++;
      const r = await attempt(a, agent, key, localAddress);
      const known = r.socket ? ingressOf.get(r.socket) : undefined;
      if (r.status === 'ok') {
        const ing = names.of(r.ingress ?? '?');
        if (r.socket) {
          ingressOf.set(r.socket, ing);
          if (r.socket.localPort !== undefined) sessionTuples[i] = { src: localAddress, sport: r.socket.localPort };
        }
        ok.push([Date.now(), i, names.of(r.backend ?? '?'), ing, attempts]);
        break;
      }
      // Bounded, but generous: on a starved machine one forward may take seconds.
      const final = attempts >= 4 || Date.now() - started > 20_000 || r.category?.startsWith('status-') === true;
      fails.push([Date.now(), i, categories.of(r.category ?? '?'), known ?? -1, r.reused ? 1 : 0, final ? 1 : 0, r.sport]);
      r.socket?.destroy();
      if (final || !running) break;
      // A refused or unroutable connect sent nothing: retry after a pause (a reset or a timeout
      // on a connection the router moved is retried at once, on a new connection).
      if (r.category === 'refused' || r.category?.startsWith('error-') === true) await new Promise((res) => setTimeout(res, 200));
    }
    await new Promise((r) => setTimeout(r, a.httpPauseMs));
  }
}

async function flow(a: LoadArgs, j: number): Promise<void> {
  const s = createSocket('udp4');
  udpSockets.push(s);
  const src = a.clientAddrs[j % a.clientAddrs.length];
  await new Promise<void>((resolve) => s.bind({ address: src, port: 0 }, () => resolve()));
  await new Promise<void>((resolve) => s.connect(a.udpPort, a.vip, () => resolve()));
  flowTuples[j] = { src, sport: s.address().port };
  s.on('message', (msg) => {
    const text = msg.toString('utf8');
    replies.push([Date.now(), j, names.of(text.slice(0, text.indexOf(':')))]);
  });
  s.on('error', () => udpErrors++);
  // Ramp up over the same window as the HTTP sessions: new flows arrive spread, not in one burst.
  await new Promise((r) => setTimeout(r, Math.floor((Math.max(a.udpIntervalMs, a.httpPauseMs) * j) / a.flows)));
  let seq = 0;
  while (running && Date.now() < stopAt) {
    s.send(`f${j}:${seq++}`, () => undefined);
    await new Promise((r) => setTimeout(r, a.udpIntervalMs));
  }
}

async function startLoad(a: LoadArgs): Promise<{ flows: typeof flowTuples }> {
  running = true;
  stopAt = Date.now() + a.maxDurationMs;
  const udp = Array.from({ length: a.flows }, (_, j) => flow(a, j));
  const http = Array.from({ length: a.sessions }, (_, i) => session(a, i));
  loops = [...udp, ...http];
  // Wait until every flow socket is bound (their tuples are what the test asks the router about).
  while (flowTuples.filter(Boolean).length < a.flows) await new Promise((r) => setTimeout(r, 10));
  return { flows: flowTuples };
}

/** Everything recorded since the last call. */
function take(): unknown {
  const out = { names: names.list, categories: categories.list, ok, fails, replies, udpErrors, sessions: sessionTuples };
  ok = [];
  fails = [];
  replies = [];
  return out;
}

async function handle(cmd: string, args: Record<string, unknown>): Promise<unknown> {
  switch (cmd) {
    case 'backends': {
      const host = args.host as string;
      for (const [i, port] of (args.httpPorts as number[]).entries()) backends.push(await httpBackend(`h${i + 1}`, host, port));
      for (const [i, port] of (args.udpPorts as number[]).entries()) backends.push(await udpBackend(`u${i + 1}`, host, port));
      return backends.map((b) => b.address);
    }
    case 'get': {
      const r = await get(args.url as string, (args.timeoutMs as number | undefined) ?? 3000);
      return { status: r.status, body: r.body };
    }
    case 'load':
      return startLoad(args as unknown as LoadArgs);
    case 'take':
      return take();
    case 'stop': {
      running = false;
      await Promise.race([Promise.all(loops), new Promise((r) => setTimeout(r, 8000))]);
      for (const s of udpSockets) s.close();
      for (const a of httpAgents) a.destroy();
      return take();
    }
    case 'exit':
      running = false;
      await Promise.all(backends.map((b) => b.close()));
      setImmediate(() => process.exit(0));
      return null;
    default:
      throw new Error(`unknown command ${cmd}`);
  }
}

serveCalls(handle);
