/**
 * The shared forwarding loop (src/proxy/hops.ts) driven through every outcome with the HTTP
 * attempt type: a real HttpServiceProxy on lb1 (router, Forwarder, peer multiplexer, the real
 * PeerForward), and the other nodes' owner sides replaced by scripted multiplexer acceptors that
 * serve, refuse, bounce as draining, freeze, or are not there at all. Membership states are set by
 * the test. Outcomes are asserted on what each node saw and what the client got, never on time.
 */
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { EventEmitter } from 'node:events';
import pino from 'pino';
import { Registry } from 'prom-client';
import { Agent, request } from 'undici';
import type { FlowRouter } from '../../../src/cluster/router.js';
import { Rendezvous } from '../../../src/cluster/rendezvous.js';
import type { DataPlane, PeerState, ProxyContext } from '../../../src/proxy/context.js';
import { Forwarder } from '../../../src/proxy/hops.js';
import { PeerMux } from '../../../src/proxy/mux/peer-mux.js';
import { muxMetrics } from '../../../src/proxy/mux/metrics.js';
import { ResetCode } from '../../../src/proxy/mux/frame.js';
import type { MuxHandler, MuxStream } from '../../../src/proxy/mux/stream.js';
import { HttpServiceProxy } from '../../../src/proxy/http/service.js';
import { HttpOwnerSide } from '../../../src/proxy/http/owner.js';
import { decodePeerHead, encodePeerHead, encodePrefix, PREFIX_BYTES } from '../../../src/proxy/http/peer-head.js';
import { UpstreamPool } from '../../../src/upstream/pool.js';
import { createSelector } from '../../../src/balancer/index.js';
import { rawService } from './harness.js';
import { validService } from '../../helpers/in-process-cluster.js';
import { httpBackend, type Backend } from '../../helpers/backends.js';
import { testRouter } from '../../helpers/router.js';

const BASE = 20010;
const NODES = ['lb1', 'lb2', 'lb3', 'lb4'];
const all = NODES.map((id) => ({ id, weight: 1 }));

type Behaviour = 'serve' | 'refuse' | 'drain' | 'drain-late' | 'freeze' | 'absent' | 'lose';

class Membership extends EventEmitter {
  readonly states = new Map<string, PeerState>();
  readonly suspected: string[] = [];
  state(id: string): PeerState {
    return id === 'lb1' ? 'alive' : (this.states.get(id) ?? 'alive');
  }
  set(id: string, s: PeerState): void {
    const prev = this.state(id);
    this.states.set(id, s);
    this.emit('peer-state', id, s, prev);
  }
}

/** A scripted owner: its own multiplexer on its own port, answering as told. */
class Owner {
  readonly id: string;
  readonly port: number;
  behaviour: Behaviour = 'serve';
  /** Streams opened to it, and the request heads and body bytes it got. */
  readonly seen: Array<{ head: string; bytes: number }> = [];
  readonly #mux = new PeerMux({ dial: () => Promise.reject(new Error('owners do not dial')) });
  readonly #server: net.Server;
  readonly #frozen = new Set<MuxStream>();

  constructor(id: string, port: number) {
    this.id = id;
    this.port = port;
    this.#mux.onOpen((stream, payload) => this.#open(stream, payload));
    this.#server = net.createServer({ noDelay: true }, (s) => {
      if (this.behaviour === 'absent') return void s.destroy();
      this.#mux.accept(s, 'lb1');
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.#server.listen(this.port, '127.0.0.1', resolve));
  }

  close(): void {
    this.#mux.close();
    this.#server.close();
  }

  /** Drops every connection (a kill -9 seen from the ingress). */
  lose(): void {
    this.#mux.close();
  }

  #open(stream: MuxStream, payload: Buffer): MuxHandler | null {
    const h = decodePeerHead(payload);
    assert.ok(h, 'a well-formed OPEN');
    const entry = { head: payload.toString('latin1', h.headAt), bytes: 0 };
    this.seen.push(entry);
    switch (this.behaviour) {
      case 'refuse':
        return null;
      case 'drain':
        stream.reset(ResetCode.DRAINING, 'draining');
        return null;
      case 'lose':
        setImmediate(() => this.#mux.close());
        break;
      case 'freeze':
        this.#frozen.add(stream);
        break;
    }
    const behaviour = this.behaviour;
    return {
      onData: (d) => {
        entry.bytes += d.length;
        stream.consumed(d.length);
        // Bounced only after a good part of a large body arrived (past what the ingress holds).
        if (behaviour === 'drain-late' && entry.bytes > 200_000 && !stream.closed) stream.reset(ResetCode.DRAINING, 'draining');
      },
      onEnd: () => {
        if (behaviour !== 'serve') return;
        const body = JSON.stringify({ servedBy: this.id, bytes: entry.bytes });
        const text = `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nvia: 1.1 ${this.id}\r\n\r\n${body}`;
        const b = Buffer.alloc(PREFIX_BYTES + text.length);
        encodePrefix(b, 0, 200, false);
        b.write(text, PREFIX_BYTES, 'latin1');
        stream.end(b);
      },
      onReset: () => undefined,
      onDrain: () => undefined,
    };
  }
}

let backend: Backend;
let m: Membership;
let router: FlowRouter;
let forwarder: Forwarder;
let mux: PeerMux;
let proxy: HttpServiceProxy;
let registry: Registry;
let agent: Agent;
const owners = new Map<string, Owner>();
const rv = new Rendezvous('hops-http-test-secret-0123456789');

before(async () => {
  backend = await httpBackend('local-backend');
  for (const [i, id] of NODES.slice(1).entries()) {
    const o = new Owner(id, BASE + 1 + i);
    await o.listen();
    owners.set(id, o);
  }
});

after(async () => {
  await agent?.close();
  await proxy?.stop();
  mux?.close();
  forwarder?.close();
  for (const o of owners.values()) o.close();
  await backend?.close();
});

/** A fresh lb1 for each test: its table, membership and metrics start empty. */
beforeEach(async () => {
  await agent?.close();
  agent = new Agent({ connections: 8 });
  await proxy?.stop();
  mux?.close();
  forwarder?.close();
  for (const o of owners.values()) {
    o.behaviour = 'serve';
    o.seen.length = 0;
  }
  m = new Membership();
  router = testRouter({ selfId: 'lb1', nodes: NODES, rv, state: (id) => m.state(id) }).router;
  const dp: DataPlane = {
    selfId: 'lb1',
    stateOf: (id) => m.state(id),
    markSuspect: (id) => {
      m.suspected.push(id);
      if (m.state(id) === 'alive') m.set(id, 'suspect');
    },
    dial: (peer) =>
      new Promise((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port: owners.get(peer)!.port, noDelay: true });
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      }),
    on: (ev, l) => m.on(ev, l),
    off: (ev, l) => m.off(ev, l),
    onChannel: () => undefined,
  };
  forwarder = new Forwarder(router, dp);
  registry = new Registry();
  mux = new PeerMux({ dial: (peer) => dp.dial(peer, 'http'), metrics: muxMetrics(registry) });
  const cfg = validService(rawService('web', BASE, [backend.address], 'header:x-session'));
  const pool = new UpstreamPool(cfg.backends, createSelector('round-robin'));
  const ctx: ProxyContext = {
    self: { id: 'lb1', host: '127.0.0.1', peerPort: BASE + 9, adminPort: BASE + 8, weight: 1 },
    nodes: () => all.map((n) => ({ id: n.id, host: '127.0.0.1', peerPort: 0, adminPort: 0, weight: 1 })),
    router,
    dataPlane: dp,
    forwarder,
    httpMux: mux,
    secret: 'hops-http-test-secret-0123456789',
    logger: pino({ level: 'silent' }),
    registry,
    pool: () => pool,
    service: () => cfg,
  };
  proxy = new HttpServiceProxy(ctx, cfg);
  await proxy.start();
  new HttpOwnerSide(mux, () => proxy).start();
});

/** A key whose primary and backup are both peers (the ingress is neither). */
function remoteKey(prefix: string): { key: string; primary: string; backup: string } {
  for (let i = 0; ; i++) {
    const key = `${prefix}${i}`;
    const o = rv.owners(key, all);
    if (o.primary !== 'lb1' && o.backup !== null && o.backup !== 'lb1') return { key, primary: o.primary, backup: o.backup };
  }
}

async function send(key: string, method = 'GET', body?: Buffer): Promise<{ status: number; servedBy: string; bytes: number; error: string | undefined }> {
  const r = await request(`http://127.0.0.1:${BASE}/x`, { method, headers: { 'x-session': key }, body, dispatcher: agent, headersTimeout: 30_000 });
  const text = await r.body.text();
  const json = text.startsWith('{') ? (JSON.parse(text) as { servedBy?: string; id?: string; bytes: number }) : { bytes: -1 };
  return { status: r.statusCode, servedBy: json.servedBy ?? (json.id === 'local-backend' ? 'lb1' : '?'), bytes: json.bytes, error: r.headers['tandem-error'] as string | undefined };
}

async function metric(name: string, labels: string): Promise<number> {
  const text = await registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

test('primary answers: one stream, to the primary, no failover', async () => {
  const { key, primary, backup } = remoteKey('ok');
  const r = await send(key);
  assert.deepEqual([r.status, r.servedBy], [200, primary]);
  assert.equal(owners.get(primary)!.seen.length, 1);
  assert.equal(owners.get(backup)!.seen.length, 0);
  assert.match(owners.get(primary)!.seen[0].head, /\r\nvia: 1\.1 lb1\r\n/);
  assert.equal(await metric('tandem_http_forwards_total', 'kind="to-primary"'), 1);
  assert.equal(await metric('tandem_http_failovers_total', 'service="web"'), 0);
});

test('primary refuses (REFUSED) or bounces as draining before any byte: the backup serves, even a POST, body intact', async () => {
  for (const behaviour of ['refuse', 'drain'] as const) {
    const { key, primary, backup } = remoteKey(`ref-${behaviour}-`);
    owners.get(primary)!.behaviour = behaviour;
    const tried = owners.get(primary)!.seen.length;
    const r = await send(key, 'POST', Buffer.alloc(1000, 7));
    assert.deepEqual([r.status, r.servedBy, r.bytes], [200, backup, 1000], behaviour);
    assert.equal(owners.get(primary)!.seen.length, tried + 1);
    assert.deepEqual(m.suspected, [], 'a refusal is an answer: the peer is not suspect');
    owners.get(primary)!.behaviour = 'serve';
  }
});

test('a large streamed body bounced after it was partly sent is not sent again (no partial body elsewhere): 502', async () => {
  const { key, primary, backup } = remoteKey('late');
  owners.get(primary)!.behaviour = 'drain-late';
  const r = await send(key, 'POST', Buffer.alloc(2_000_000, 3));
  assert.deepEqual([r.status, r.error], [502, 'peer-unavailable']);
  assert.equal(owners.get(backup)!.seen.length, 0, 'the backup never got a body cut in the middle');
});

test('primary unreachable: a GET goes to the backup and the primary is marked suspect', async () => {
  const { key, primary, backup } = remoteKey('gone');
  owners.get(primary)!.behaviour = 'absent';
  const r = await send(key);
  assert.deepEqual([r.status, r.servedBy], [200, backup]);
  assert.ok(m.suspected.includes(primary));
  assert.equal(await metric('tandem_http_failovers_total', 'service="web"'), 1);
});

test('primary declared dead mid-attempt: the frozen forward is cut and the GET goes on to the backup', async () => {
  const { key, primary, backup } = remoteKey('frozen');
  owners.get(primary)!.behaviour = 'freeze';
  const pending = send(key);
  // The stream reached the frozen owner; nothing will come back from it.
  while (owners.get(primary)!.seen.length === 0) await new Promise((r) => setTimeout(r, 10));
  m.set(primary, 'dead');
  const r = await pending;
  assert.deepEqual([r.status, r.servedBy], [200, backup]);
  assert.equal(forwarder.inflight, 0, 'no attempt left registered');
});

test('a POST lost with its connection after it was sent is not sent again: 502 peer-unavailable', async () => {
  const { key, primary, backup } = remoteKey('lost');
  owners.get(primary)!.behaviour = 'lose';
  const r = await send(key, 'POST', Buffer.from('once only'));
  assert.deepEqual([r.status, r.error], [502, 'peer-unavailable']);
  assert.equal(owners.get(backup)!.seen.length, 0, 'the backup never saw it');
  // The same with a GET: safe to repeat, so the backup serves it.
  const g = await send(key);
  assert.deepEqual([g.status, g.servedBy], [200, backup]);
});

test('a suspect primary is tried first for a new session, after the alive backup once the backend is known', async () => {
  const { key, primary, backup } = remoteKey('susp');
  m.set(primary, 'suspect');
  // New: the primary may be choosing the backend right now; the backup would choose another.
  const r = await send(key);
  assert.deepEqual([r.status, r.servedBy], [200, primary]);
  // The backend known here (as replication from the primary brings it): the backup serves it.
  router.assign(router.lookup('web', key), () => true, () => '127.0.0.1:9');
  const tried = owners.get(primary)!.seen.length;
  const r2 = await send(key);
  assert.deepEqual([r2.status, r2.servedBy], [200, backup]);
  assert.equal(owners.get(primary)!.seen.length, tried, 'the suspect primary was not tried first');
  m.set(primary, 'alive');
});

test('both owners gone: the flow is re-owned once, to a node not tried, keeping its backend', async () => {
  const { key, primary, backup } = remoteKey('reown');
  owners.get(primary)!.behaviour = 'refuse';
  owners.get(backup)!.behaviour = 'refuse';
  const r = await send(key);
  assert.equal(r.status, 200);
  assert.ok(![primary, backup].includes(r.servedBy), `re-owned to ${r.servedBy}`);
  assert.equal(router.stats.reowned, 1);
  const e = router.lookup('web', key);
  assert.ok(![primary, backup].includes(e.primary), `the entry names new owners: ${e.primary}/${e.backup}`);
  // Everyone refuses: one re-own only, then the client gets the failure.
  for (const o of owners.values()) o.behaviour = 'refuse';
  const { key: k2 } = remoteKey('nobody');
  const before = router.stats.reowned;
  const f = await send(k2);
  assert.ok(f.status === 200 || f.error === 'peer-unavailable', `${f.status} ${f.error}`);
  assert.equal(router.stats.reowned - before, 1, 'exactly one re-own');
});

test('a request forwarded in by a peer is served here and never forwarded again', async () => {
  // lb1 is neither primary nor backup of this key, yet a peer sent it here: lb1 serves it itself.
  const { key } = remoteKey('in');
  const lb1Peer = net.createServer();
  const peerMux = new PeerMux({
    dial: () =>
      new Promise((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port: BASE + 7 });
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      }),
  });
  // lb1's peer port stand-in: hand its connections to lb1's multiplexer.
  lb1Peer.on('connection', (s) => mux.accept(s, 'lb2'));
  await new Promise<void>((resolve) => lb1Peer.listen(BASE + 7, '127.0.0.1', resolve));
  try {
    const answer = await new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      const head = `GET /in HTTP/1.1\r\nHost: t\r\nvia: 1.1 lb2\r\n\r\n`;
      const s = peerMux.open('lb1', encodePeerHead(0, 'web', key, '10.0.0.5:5555', head), {
        onData: (d) => {
          chunks.push(d);
          s.consumed(d.length);
        },
        onEnd: () => resolve(Buffer.concat(chunks).toString('latin1', PREFIX_BYTES)),
        onReset: (code) => resolve(`reset ${code}`),
        onDrain: () => undefined,
      }, true);
    });
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.match(answer, /"id":"local-backend"/, 'served from lb1\'s own backend');
    assert.match(answer, /"via":"1\.1 lb2, 1\.1 lb1"/);
    assert.match(answer, /"xff":"10\.0\.0\.5"|"xff":null/);
    for (const o of owners.values()) assert.equal(o.seen.length, 0, `${o.id} got nothing`);
    assert.equal(router.stats.reowned, 0);
  } finally {
    peerMux.close();
    lb1Peer.close();
  }
});
