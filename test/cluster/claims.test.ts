import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlowClaims, decodeClaim, decodeReply, encodeClaim, encodeReply, type ClaimOutcome } from '../../src/cluster/claims.js';
import type { FlowRouter } from '../../src/cluster/router.js';
import type { FlowTable } from '../../src/cluster/flow-table.js';
import { Rendezvous } from '../../src/cluster/rendezvous.js';
import { FRAME_HEADER_BYTES, FrameType } from '../../src/cluster/frame.js';
import { ErrorCodes, TandemError } from '../../src/errors.js';
import { testRouter } from '../helpers/router.js';

const NODES = ['lb1', 'lb2', 'lb3'];
const ALL = NODES.map((id) => ({ id, weight: 1 }));
const rv = new Rendezvous('claims-test-secret-0123456789abc');

/** A key whose rendezvous order is exactly `order` (found by search; deterministic). */
function keyRanked(order: readonly string[]): string {
  for (let i = 0; ; i++) {
    const k = `session-${i}`;
    if (rv.rank(k, ALL).join(',') === order.join(',')) return k;
  }
}

/**
 * Three nodes, each a router over its own table and a FlowClaims, joined by a network of directed
 * links (`up` holds "from>to"); frames are delivered on a later tick, as sockets would.
 */
function tier(opts: { up: Set<string>; dead?: Set<string>; timeoutMs?: number; silent?: Set<string> }) {
  const nodes = new Map<string, { router: FlowRouter; table: FlowTable; claims: FlowClaims; counts: ClaimOutcome[] }>();
  const linked = (a: string, b: string): boolean => opts.up.has(`${a}>${b}`) && opts.up.has(`${b}>${a}`);
  for (const self of NODES) {
    const state = (id: string) => (id === self ? 'alive' : opts.dead?.has(id) ? 'dead' : 'suspect');
    const { router, table } = testRouter({ selfId: self, nodes: NODES, rv, state });
    const counts: ClaimOutcome[] = [];
    const claims = new FlowClaims({
      selfId: self,
      send: (peer, frame) => {
        if (!opts.up.has(`${self}>${peer}`)) return true; // sent into a one-way cut: lost
        const type = frame[5];
        const payload = Buffer.from(frame.subarray(FRAME_HEADER_BYTES));
        setImmediate(() => {
          const n = nodes.get(peer)!;
          if (opts.silent?.has(peer)) return;
          if (type === FrameType.CLAIM) n.claims.onClaim(self, payload);
          else n.claims.onReply(self, payload);
        });
        return true;
      },
      via: (target) => (linked(self, target) ? target : NODES.find((w) => w !== self && w !== target && linked(self, w)) ?? null),
      direct: (peer) => linked(self, peer),
      state,
      get: (s, k) => table.get(s, k),
      answer: (s, k) => router.decide(s, k, () => true, () => `${self}-backend:80`),
      accept: (e) => {
        table.merge(e);
      },
      timeoutMs: opts.timeoutMs ?? 5000,
      count: (o) => counts.push(o),
    });
    nodes.set(self, { router, table, claims, counts });
  }
  return nodes;
}

const FULL = new Set(['lb1>lb2', 'lb2>lb1', 'lb1>lb3', 'lb3>lb1', 'lb2>lb3', 'lb3>lb2']);

test('a node that cannot reach a new flow\'s primary gets the primary\'s backend through a witness', async () => {
  // lb1 → lb2 cut: lb2 hears nothing from lb1; lb3 hears both.
  const up = new Set([...FULL].filter((l) => l !== 'lb1>lb2'));
  const nodes = tier({ up });
  const key = keyRanked(['lb1', 'lb2', 'lb3']);
  const lb2 = nodes.get('lb2')!;
  const entry = lb2.router.lookup('web', key);
  assert.equal(entry.primary, 'lb1');
  const wait = lb2.claims.before(entry);
  assert.ok(wait !== null, 'lb2, the backup, must ask before it chooses');
  assert.equal(lb2.claims.before(entry), wait, 'one claim per flow in flight');
  await wait;
  assert.equal(lb2.table.get('web', key)?.backend, 'lb1-backend:80', 'the primary chose, lb2 stored it');
  assert.equal(nodes.get('lb1')!.table.get('web', key)?.backend, 'lb1-backend:80');
  assert.equal(lb2.claims.before(entry), null, 'the flow has a backend now: served at once');
  assert.deepEqual(lb2.counts, ['asked', 'answered']);
  assert.deepEqual(nodes.get('lb3')!.counts, ['relayed']);
  assert.deepEqual(nodes.get('lb1')!.counts, ['served']);
  // What lb2 serves with is the primary's choice, whatever its own pool would pick.
  const { backend } = lb2.router.assign(lb2.table.get('web', key)!, () => true, () => 'lb2-backend:80');
  assert.equal(backend, 'lb1-backend:80');
});

test('a primary that already has a backend answers with it; one that is not the primary in its own table does not decide', async () => {
  const nodes = tier({ up: FULL });
  const key = keyRanked(['lb1', 'lb3', 'lb2']);
  const lb1 = nodes.get('lb1')!;
  lb1.router.assign(lb1.router.lookup('web', key), () => true, () => 'chosen-before:80');
  const lb3 = nodes.get('lb3')!;
  await lb3.claims.before(lb3.router.lookup('web', key));
  assert.equal(lb3.table.get('web', key)?.backend, 'chosen-before:80');

  const other = keyRanked(['lb2', 'lb1', 'lb3']);
  // lb3's entry names lb1 primary (a view that differs), lb1's own names lb2: lb1 does not decide.
  const stale = { ...lb1.router.lookup('web', other), primary: 'lb1', backup: 'lb3' };
  lb3.table.merge(stale);
  await lb3.claims.before(stale);
  assert.equal(lb3.table.get('web', other)?.backend ?? null, null, 'no answer: lb3 decides as before');
  assert.ok(lb3.counts.includes('unanswered'));
});

test('no claim when the flow has a backend, this node is its primary, the primary is dead or there is no way to it', () => {
  const key = keyRanked(['lb1', 'lb2', 'lb3']);
  const nodes = tier({ up: FULL, dead: new Set(['lb1']) });
  const lb2 = nodes.get('lb2')!;
  // lb1 dead: lb2's lookup already names itself primary; with a stale entry naming lb1 there is still no claim.
  assert.equal(lb2.claims.before({ ...lb2.router.lookup('web', key), primary: 'lb1' }), null);
  const alive = tier({ up: FULL });
  const lb1 = alive.get('lb1')!;
  assert.equal(lb1.claims.before(lb1.router.lookup('web', key)), null, 'the primary itself');
  const a2 = alive.get('lb2')!;
  const e = a2.router.lookup('web', key);
  a2.table.merge({ ...e, backend: 'x:1', version: e.version + 10 });
  assert.equal(a2.claims.before(e), null, 'a backend is known');
  const isolated = tier({ up: new Set(['lb1>lb3', 'lb3>lb1']) });
  const i2 = isolated.get('lb2')!;
  assert.equal(i2.claims.before(i2.router.lookup('web', key)), null, 'no link and no witness');
});

test('a relay that cannot reach the primary says so at once; a relayed claim is not relayed again', async () => {
  // lb2 reaches only lb3, and lb3 cannot reach lb1.
  const up = new Set(['lb2>lb3', 'lb3>lb2']);
  // A timeout far past the test's own: only the relay's refusal can settle the claim.
  const nodes = tier({ up, timeoutMs: 3_600_000 });
  const key = keyRanked(['lb1', 'lb2', 'lb3']);
  const lb2 = nodes.get('lb2')!;
  await lb2.claims.before(lb2.router.lookup('web', key));
  assert.deepEqual(lb2.counts, ['asked', 'unanswered'], 'settled by the relay\'s refusal, not by a timeout');
  assert.equal(lb2.table.get('web', key)?.backend, null);
  // A claim that lb3 receives from lb2 for lb1 with origin lb1 (not its sender) is answered "no".
  const replies: Buffer[] = [];
  const relay = new FlowClaims({
    selfId: 'lb3', send: (_p, f) => (replies.push(f), true), via: () => null, direct: () => true, state: () => 'alive',
    get: () => undefined, answer: () => null, accept: () => undefined, timeoutMs: 100,
  });
  relay.onClaim('lb2', encodeClaim(7, 'lb1', 'lb2', 'web', 'k').subarray(FRAME_HEADER_BYTES));
  assert.equal(replies.length, 1);
  assert.equal(replies[0][5], FrameType.CLAIM_REPLY);
  assert.deepEqual(decodeReply(replies[0].subarray(FRAME_HEADER_BYTES)), { id: 7, origin: 'lb1', entry: null });
});

test('a claim nobody answers settles at the timeout, or when its primary is declared dead', async () => {
  const key = keyRanked(['lb1', 'lb2', 'lb3']);
  const nodes = tier({ up: FULL, silent: new Set(['lb1']), timeoutMs: 50 });
  const lb2 = nodes.get('lb2')!;
  await lb2.claims.before(lb2.router.lookup('web', key));
  assert.deepEqual(lb2.counts, ['asked', 'timeout']);
  const slow = tier({ up: FULL, silent: new Set(['lb1']), timeoutMs: 60_000 });
  const s2 = slow.get('lb2')!;
  const wait = s2.claims.before(s2.router.lookup('web', key))!;
  assert.equal(s2.claims.inflight, 1);
  s2.claims.peerDead('lb1');
  await wait;
  assert.equal(s2.claims.inflight, 0);
  slow.forEach((n) => n.claims.close());
});

test('a claim whose relay dies is settled; one whose link goes silent is asked again through a witness', async () => {
  const key = keyRanked(['lb1', 'lb2', 'lb3']);
  // lb2 reaches lb1 only through lb3, and lb3 goes quiet: its death settles the claim at once.
  const viaRelay = tier({ up: new Set(['lb2>lb3', 'lb3>lb2', 'lb3>lb1', 'lb1>lb3']), silent: new Set(['lb3']), timeoutMs: 3_600_000 });
  const r2 = viaRelay.get('lb2')!;
  const relayed = r2.claims.before(r2.router.lookup('web', key))!;
  assert.equal(r2.claims.inflight, 1);
  r2.claims.peerDead('lb3');
  await relayed;
  assert.deepEqual(r2.counts, ['asked', 'unanswered'], 'settled by the relay\'s death, not by a timeout');
  // lb2 asks lb1 directly, and the link goes silent (lb1's frames stop) before the answer: asked
  // again through lb3, lb1's choice arrives.
  const up = new Set(FULL);
  const silent = new Set(['lb1']);
  const cut = tier({ up, silent, timeoutMs: 3_600_000 });
  const c2 = cut.get('lb2')!;
  const direct = c2.claims.before(c2.router.lookup('web', key))!;
  up.delete('lb2>lb1');
  up.delete('lb1>lb2');
  silent.delete('lb1');
  c2.claims.peerUnreachable('lb1');
  await direct;
  assert.deepEqual(c2.counts, ['asked', 'answered']);
  assert.equal(c2.table.get('web', key)?.backend, 'lb1-backend:80');
  assert.deepEqual(cut.get('lb3')!.counts, ['relayed']);
});

test('claim frames round-trip; bad bytes are FRAME_MALFORMED', () => {
  const c = encodeClaim(0xfffffffe, 'lb2', 'lb1', 'web', 'ключ');
  assert.equal(c[5], FrameType.CLAIM);
  assert.deepEqual(decodeClaim(c.subarray(FRAME_HEADER_BYTES)), { id: 0xfffffffe, origin: 'lb2', target: 'lb1', service: 'web', key: 'ключ' });
  const entry = { service: 'web', key: 'k', primary: 'lb1', backup: 'lb2', backend: '10.0.0.1:80', version: 123, writer: 'lb1', lastActive: 5, ended: false };
  assert.deepEqual(decodeReply(encodeReply(1, 'lb2', entry).subarray(FRAME_HEADER_BYTES)), { id: 1, origin: 'lb2', entry });
  const malformed = (f: () => unknown) => assert.throws(f, (e: unknown) => e instanceof TandemError && e.code === ErrorCodes.FRAME_MALFORMED);
  malformed(() => decodeClaim(c.subarray(FRAME_HEADER_BYTES, c.length - 1)));
  malformed(() => decodeClaim(Buffer.concat([c.subarray(FRAME_HEADER_BYTES), Buffer.from([0])])));
  const r = Buffer.from(encodeReply(1, 'lb2', null).subarray(FRAME_HEADER_BYTES));
  r[r.length - 1] = 2;
  malformed(() => decodeReply(r));
});
