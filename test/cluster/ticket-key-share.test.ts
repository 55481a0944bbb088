/**
 * The cluster share of TLS ticket keys on fake control planes joined by an in-memory bus: who
 * makes the keys, how they travel (sealed), how conflicts settle, failover, joining. The same
 * class runs over real control links in test/tls/cluster-tickets.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { FrameDecoder, CONTROL_FRAME_TYPES, FrameType } from '../../src/cluster/frame.js';
import { Rendezvous } from '../../src/cluster/rendezvous.js';
import { KEY_HOLDER_KEY, TicketKeyShare, type TicketKeyPlane } from '../../src/cluster/ticket-key-share.js';
import { isTandemError, ErrorCodes } from '../../src/errors.js';

const SECRET = 'ticket-share-test-secret-0123456789';
const IDS = ['lb1', 'lb2', 'lb3'];
const ROTATION = 60_000;

class Bus {
  readonly planes = new Map<string, FakePlane>();
  /** Links that are up, as "a|b" with a < b. */
  readonly links = new Set<string>();
  sent: Array<{ from: string; to: string; frame: Buffer }> = [];
  link(a: string, b: string): void {
    this.links.add([a, b].sort().join('|'));
    this.planes.get(a)?.linkUp(b);
    this.planes.get(b)?.linkUp(a);
  }
  cut(a: string, b: string): void {
    this.links.delete([a, b].sort().join('|'));
  }
  connected(a: string, b: string): boolean {
    return this.links.has([a, b].sort().join('|'));
  }
}

class FakePlane implements TicketKeyPlane {
  readonly nodeIds = IDS;
  ready = true;
  aliveSet: Set<string>;
  #frames = new Map<number, (peer: string, payload: Buffer) => void>();
  #linkUp: Array<(peer: string) => void> = [];
  constructor(readonly selfId: string, readonly bus: Bus) {
    this.aliveSet = new Set([selfId]);
    bus.planes.set(selfId, this);
  }
  alive(): ReadonlySet<string> {
    return this.aliveSet;
  }
  onControlFrame(type: number, handler: (peer: string, payload: Buffer) => void): void {
    this.#frames.set(type, handler);
  }
  onControlLinkUp(handler: (peer: string) => void): void {
    this.#linkUp.push(handler);
  }
  linkUp(peer: string): void {
    this.aliveSet.add(peer);
    for (const h of this.#linkUp) h(peer);
  }
  sendControl(peer: string, frame: Buffer): boolean {
    if (!this.bus.connected(this.selfId, peer)) return false;
    this.bus.sent.push({ from: this.selfId, to: peer, frame: Buffer.from(frame) });
    // Decode as the control link would, then deliver.
    const d = new FrameDecoder({ types: CONTROL_FRAME_TYPES });
    d.push(Buffer.from(frame));
    const f = d.next();
    assert.ok(f);
    this.bus.planes.get(peer)?.deliver(this.selfId, f.type, Buffer.from(f.payload));
    return true;
  }
  deliver(from: string, type: number, payload: Buffer): void {
    this.#frames.get(type)?.(from, payload);
  }
}

function cluster(now: { t: number }): { bus: Bus; planes: Record<string, FakePlane>; shares: Record<string, TicketKeyShare> } {
  const bus = new Bus();
  const planes: Record<string, FakePlane> = {};
  const shares: Record<string, TicketKeyShare> = {};
  for (const id of IDS) {
    planes[id] = new FakePlane(id, bus);
    shares[id] = new TicketKeyShare({ plane: planes[id], clusterName: 'c', secret: SECRET, logger: pino({ level: 'silent' }), registry: new Registry(), rotationMs: ROTATION, now: () => now.t });
  }
  return { bus, planes, shares };
}

const holderOf = (ids: string[]): string => new Rendezvous(SECRET).owners(KEY_HOLDER_KEY, ids.map((id) => ({ id, weight: 1 }))).primary;
const view = (s: TicketKeyShare) => s.window().map((x) => `${x.epoch}:${x.writer}:${x.secret.toString('hex').slice(0, 8)}`);

test('the holder makes the current and next epoch; every node gets the same keys on link-up, sealed', () => {
  const now = { t: 1000 * ROTATION + 5 };
  const { bus, planes, shares } = cluster(now);
  for (const id of IDS) planes[id].ready = false;
  for (const id of IDS) shares[id].enable();
  // Not ready (no snapshot from a peer yet), each node has only a local stand-in for the current epoch.
  for (const id of IDS) assert.deepEqual(shares[id].window().map((x) => [x.epoch, x.writer]), [[1000, '']]);
  bus.link('lb1', 'lb2');
  bus.link('lb1', 'lb3');
  bus.link('lb2', 'lb3');
  for (const id of IDS) planes[id].ready = true;
  const holder = holderOf(IDS);
  for (const id of IDS) shares[id].tick();
  const want = view(shares[holder]);
  assert.deepEqual(want.map((v) => v.split(':').slice(0, 2).join(':')), [`1000:${holder}`, `1001:${holder}`]);
  for (const id of IDS) assert.deepEqual(view(shares[id]), want, id);
  // Nothing of a secret is on the wire in clear.
  assert.ok(bus.sent.length > 0);
  for (const { frame } of bus.sent) for (const x of shares[holder].window()) assert.equal(frame.includes(x.secret.subarray(0, 8)), false);
});

test('a node that joins (or restarts) gets the keys on link-up, before it is ready, and keeps them', () => {
  const now = { t: 2000 * ROTATION };
  const { bus, planes, shares } = cluster(now);
  planes.lb1.aliveSet = new Set(['lb1', 'lb2']);
  planes.lb2.aliveSet = new Set(['lb1', 'lb2']);
  planes.lb3.ready = false;
  for (const id of IDS) shares[id].enable();
  bus.link('lb1', 'lb2');
  shares.lb1.tick();
  shares.lb2.tick();
  assert.deepEqual(view(shares.lb1), view(shares.lb2));
  assert.deepEqual(shares.lb3.window().map((x) => x.writer), ['']);
  bus.link('lb1', 'lb3');
  bus.link('lb2', 'lb3');
  assert.deepEqual(view(shares.lb3), view(shares.lb1), 'sent on link-up');
  planes.lb3.ready = true;
  for (const id of IDS) shares[id].tick();
  for (const id of IDS) assert.deepEqual(view(shares[id]), view(shares.lb1), `${id}: the joiner made nothing of its own`);
});

test('rotation: at an epoch boundary the holder adds the next epoch and the oldest is dropped', () => {
  const now = { t: 500 * ROTATION };
  const { bus, shares } = cluster(now);
  for (const id of IDS) shares[id].enable();
  bus.link('lb1', 'lb2');
  bus.link('lb1', 'lb3');
  bus.link('lb2', 'lb3');
  for (const id of IDS) shares[id].tick();
  const holder = holderOf(IDS);
  const e500 = shares[holder].window().find((x) => x.epoch === 500)?.secret;
  now.t = 501 * ROTATION + 10;
  for (const id of IDS) shares[id].tick();
  now.t = 502 * ROTATION + 10;
  for (const id of IDS) shares[id].tick();
  for (const id of IDS) assert.deepEqual(shares[id].window().map((x) => x.epoch), [501, 502, 503], id);
  for (const id of IDS) assert.deepEqual(view(shares[id]), view(shares[holder]));
  assert.equal(shares[holder].window().some((x) => x.secret.equals(e500!)), false);
});

test('the holder fails over: the next-ranked alive node makes the epochs that are missing', () => {
  const now = { t: 700 * ROTATION };
  const { bus, planes, shares } = cluster(now);
  for (const id of IDS) shares[id].enable();
  bus.link('lb1', 'lb2');
  bus.link('lb1', 'lb3');
  bus.link('lb2', 'lb3');
  for (const id of IDS) shares[id].tick();
  const first = holderOf(IDS);
  const rest = IDS.filter((id) => id !== first);
  // The holder dies: the others stop seeing it.
  for (const id of rest) planes[id].aliveSet.delete(first);
  for (const id of rest) for (const other of IDS) if (other !== id) bus.cut(id, first);
  shares[first].stop();
  const second = holderOf(rest);
  assert.equal(shares[second].holder(), second);
  const before = view(shares[second]);
  // Nothing is missing yet: nobody makes anything.
  for (const id of rest) shares[id].tick();
  assert.deepEqual(view(shares[second]), before);
  // At the next boundary the new holder makes epoch 702 (701 came a whole epoch ahead).
  now.t = 701 * ROTATION + 1;
  for (const id of rest) shares[id].tick();
  for (const id of rest) assert.deepEqual(shares[id].window().map((x) => `${x.epoch}:${x.writer}`), [`700:${first}`, `701:${first}`, `702:${second}`]);
});

test('conflicting keys for an epoch (a partition healed) converge to the higher-ranked writer on every node', () => {
  const now = { t: 900 * ROTATION };
  const { bus, planes, shares } = cluster(now);
  for (const id of IDS) shares[id].enable();
  // Partitioned: every node believes it is the holder and makes its own keys.
  for (const id of IDS) {
    planes[id].aliveSet = new Set([id]);
    shares[id].tick();
    assert.deepEqual(shares[id].window().map((x) => x.writer), [id, id]);
  }
  bus.link('lb1', 'lb2');
  bus.link('lb1', 'lb3');
  bus.link('lb2', 'lb3');
  for (const id of IDS) shares[id].tick();
  const winner = holderOf(IDS);
  for (const id of IDS) assert.deepEqual(view(shares[id]), view(shares[winner]), id);
  for (const id of IDS) assert.deepEqual(shares[id].window().map((x) => x.writer), [winner, winner]);
});

test('a node that is not ready makes no cluster keys (it adopts its peers\' instead)', () => {
  const now = { t: 300 * ROTATION };
  const { bus, planes, shares } = cluster(now);
  planes.lb1.ready = planes.lb2.ready = planes.lb3.ready = false;
  for (const id of IDS) shares[id].enable();
  bus.link('lb1', 'lb2');
  bus.link('lb1', 'lb3');
  bus.link('lb2', 'lb3');
  for (const id of IDS) shares[id].tick();
  for (const id of IDS) assert.deepEqual(shares[id].window().map((x) => x.writer), ['']);
  planes.lb1.ready = planes.lb2.ready = planes.lb3.ready = true;
  for (const id of IDS) shares[id].tick();
  const holder = holderOf(IDS);
  for (const id of IDS) assert.deepEqual(shares[id].window().map((x) => x.writer), [holder, holder]);
});

test('a frame that does not open, or opens to garbage, is refused (the link drops the peer), nothing applied', () => {
  const now = { t: 100 * ROTATION };
  const { bus, planes, shares } = cluster(now);
  for (const id of IDS) shares[id].enable();
  bus.link('lb1', 'lb2');
  shares.lb1.tick();
  shares.lb2.tick();
  const frame = bus.sent.find((s) => s.frame[5] === FrameType.TLS_TICKET_KEYS)?.frame;
  assert.ok(frame);
  const payload = frame.subarray(6);
  const before = view(shares.lb3);
  const tampered = Buffer.from(payload);
  tampered[20] ^= 1;
  for (const bad of [tampered, payload.subarray(0, 10), Buffer.alloc(0)]) {
    assert.throws(() => planes.lb3.deliver('lb1', FrameType.TLS_TICKET_KEYS, bad), (e: unknown) => isTandemError(e, ErrorCodes.FRAME_MALFORMED));
  }
  // Sealed for lb1 as the sender: replayed as if from lb2, the AAD differs and it does not open.
  const from = bus.sent.find((s) => s.frame[5] === FrameType.TLS_TICKET_KEYS)?.from;
  const other = from === 'lb1' ? 'lb2' : 'lb1';
  assert.throws(() => planes.lb3.deliver(other, FrameType.TLS_TICKET_KEYS, Buffer.from(payload)), (e: unknown) => isTandemError(e, ErrorCodes.FRAME_MALFORMED));
  assert.deepEqual(view(shares.lb3), before);
});
