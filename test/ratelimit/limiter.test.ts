/**
 * The cluster-wide limiter in a simulated tier: N limiters, requests at seeded times, counts
 * exchanged every syncMs with a delivery delay. Pure: the clock is the simulation's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClusterRateLimiter, type KeyCounts } from '../../src/ratelimit/limiter.js';
import { prng } from '../helpers/prng.js';

interface SimOptions {
  nodes: number;
  rate: number;
  burst: number;
  syncMs: number;
  delayMs: number;
  /** Request arrivals: [time ms, node index, key]. */
  arrivals: Array<[number, number, string]>;
  /** Sync phase offset per node (their timers are not aligned). */
  phase?: (i: number) => number;
}

function simulate(o: SimOptions): { admitted: number[]; byKey: Map<string, number>; limiters: ClusterRateLimiter[] } {
  const lims = Array.from({ length: o.nodes }, () => new ClusterRateLimiter({ spec: { requestsPerSecond: o.rate, burst: o.burst }, syncMs: o.syncMs, maxKeys: 10_000 }));
  for (const l of lims) l.nodes = o.nodes;
  type Ev = { t: number; seq: number; run: () => void };
  const evs: Ev[] = [];
  let seq = 0;
  const at = (t: number, run: () => void) => evs.push({ t, seq: seq++, run });
  const admitted = new Array<number>(o.nodes).fill(0);
  const byKey = new Map<string, number>();
  const end = Math.max(...o.arrivals.map((a) => a[0])) + 1;
  for (const [t, i, key] of o.arrivals) {
    at(t, () => {
      if (lims[i].take(key, t).ok) {
        admitted[i]++;
        byKey.set(key, (byKey.get(key) ?? 0) + 1);
      }
    });
  }
  for (let i = 0; i < o.nodes; i++) {
    const phase = o.phase ? o.phase(i) : (i * o.syncMs) / o.nodes;
    for (let t = phase; t <= end; t += o.syncMs) {
      at(t, () => {
        const counts: KeyCounts[] = lims[i].sync(t);
        for (let j = 0; j < o.nodes; j++) if (j !== i) at(t + o.delayMs, () => lims[j].receive(`n${i}`, counts, t + o.delayMs));
      });
    }
  }
  // A heap would be faster; the simulation is small.
  while (evs.length > 0) {
    let k = 0;
    for (let m = 1; m < evs.length; m++) if (evs[m].t < evs[k].t || (evs[m].t === evs[k].t && evs[m].seq < evs[k].seq)) k = m;
    const [ev] = evs.splice(k, 1);
    ev.run();
  }
  return { admitted, byKey, limiters: lims };
}

/** `count` requests of `key` spread evenly over `ms`, round-robin over the nodes. */
function even(count: number, ms: number, nodes: number, key: string, jitter = prng(1)): Array<[number, number, string]> {
  return Array.from({ length: count }, (_, k) => [(k * ms) / count + jitter() * 0.5, k % nodes, key] as [number, number, string]);
}

test('the acceptance case: 100/s burst 20, 600 requests in 2 s over 3 nodes → the tier admits 200-280, about 220', () => {
  const { admitted } = simulate({ nodes: 3, rate: 100, burst: 20, syncMs: 50, delayMs: 1, arrivals: even(600, 2000, 3, 'k') });
  const total = admitted.reduce((a, b) => a + b, 0);
  assert.ok(total >= 200 && total <= 280, `admitted ${total} (${admitted.join('/')})`);
  assert.ok(Math.abs(total - 220) <= 0.1 * 220, `within 10% of the ideal 220: ${total}`);
  // Shared evenly, since the demand is even.
  for (const a of admitted) assert.ok(Math.abs(a - total / 3) <= 0.2 * (total / 3), `per node ${admitted.join('/')}`);
});

test('per-node limiting would admit 3×; sharing counts without allowances would too — the allowance is what holds', () => {
  // A single node seeing the whole stream is the reference: what one limiter admits alone.
  const one = simulate({ nodes: 1, rate: 100, burst: 20, syncMs: 50, delayMs: 1, arrivals: even(600, 2000, 1, 'k') });
  const three = simulate({ nodes: 3, rate: 100, burst: 20, syncMs: 50, delayMs: 1, arrivals: even(600, 2000, 3, 'k') });
  const t1 = one.admitted[0];
  const t3 = three.admitted.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(t3 - t1) <= 0.1 * t1, `3 nodes admit what one node does: ${t3} vs ${t1}`);
});

test('uneven demand: all of a key at one node gets the whole limit there after one sync period', () => {
  const arrivals = even(600, 2000, 1, 'k').map(([t, , k]) => [t, 2, k] as [number, number, string]);
  const { admitted } = simulate({ nodes: 3, rate: 100, burst: 20, syncMs: 50, delayMs: 1, arrivals });
  const total = admitted.reduce((a, b) => a + b, 0);
  assert.ok(total >= 200 && total <= 240, `admitted ${total}`);
  assert.deepEqual(admitted.slice(0, 2), [0, 0]);
});

test('demand moving between nodes over time stays within the bound', () => {
  const rnd = prng(9);
  // 4 nodes; the hot node changes every 300 ms; 2000 requests in 3 s.
  const arrivals: Array<[number, number, string]> = [];
  for (let k = 0; k < 2000; k++) {
    const t = (k * 3000) / 2000;
    const hot = Math.floor(t / 300) % 4;
    arrivals.push([t + rnd() * 0.5, rnd() < 0.7 ? hot : Math.floor(rnd() * 4), 'k']);
  }
  const { admitted } = simulate({ nodes: 4, rate: 200, burst: 50, syncMs: 50, delayMs: 2, arrivals });
  const total = admitted.reduce((a, b) => a + b, 0);
  const ideal = 50 + 200 * 3;
  assert.ok(total <= ideal * 1.1, `no over-admission beyond 10%: ${total} vs ${ideal}`);
  assert.ok(total >= ideal * 0.85, `under-admission bounded: ${total} vs ${ideal}`);
});

test('a client that moves to a node that saw none of its demand, far below its limit, is not refused there', () => {
  // 100/s burst 20: 3 requests at node 0, then 3 at node 1, then 3 at node 2, 10 ms apart: 9 in
  // 90 ms, well inside the burst, wherever they arrive and whatever the sync phase.
  const arrivals = Array.from({ length: 9 }, (_, k) => [k * 10, Math.floor(k / 3), 'k'] as [number, number, string]);
  const { admitted } = simulate({ nodes: 3, rate: 100, burst: 20, syncMs: 50, delayMs: 1, arrivals });
  assert.deepEqual(admitted, [3, 3, 3]);
});

test('two keys are limited independently', () => {
  const arrivals = [...even(300, 2000, 3, 'alice'), ...even(300, 2000, 3, 'bob', prng(2))];
  const { byKey } = simulate({ nodes: 3, rate: 50, burst: 10, syncMs: 50, delayMs: 1, arrivals });
  for (const key of ['alice', 'bob']) {
    const n = byKey.get(key)!;
    assert.ok(n >= 100 && n <= 125, `${key}: ${n}`);
  }
});

test('a flood of distinct keys keeps memory bounded (LRU, evictions counted) and idle keys are forgotten', () => {
  const lim = new ClusterRateLimiter({ spec: { requestsPerSecond: 10, burst: 5 }, syncMs: 50, maxKeys: 1000 });
  lim.nodes = 3;
  for (let i = 0; i < 50_000; i++) lim.take(`k${i}`, i / 10);
  assert.equal(lim.size, 1000);
  assert.equal(lim.evicted, 49_000);
  // Long after, the buckets are full again and an idle sync forgets them.
  lim.sync(1_000_000);
  lim.sync(1_000_050);
  assert.equal(lim.size, 0);
});

test('refusals carry Retry-After in whole seconds, at least 1', () => {
  const lim = new ClusterRateLimiter({ spec: { requestsPerSecond: 0.5, burst: 1 }, syncMs: 50, maxKeys: 10 });
  assert.equal(lim.take('k', 0).ok, true);
  const d = lim.take('k', 1);
  assert.equal(d.ok, false);
  assert.ok(d.retryAfterS >= 1 && d.retryAfterS <= 2, String(d.retryAfterS));
});

test('counts round-trip through the wire codec; malformed batches are refused with a typed error', async () => {
  const { encodeCounts, decodeCounts } = await import('../../src/ratelimit/codec.js');
  const { isTandemError, ErrorCodes } = await import('../../src/errors.js');
  const batch = new Map([
    ['web', [{ key: '10.0.0.1', admitted: 3, seen: 9 }, { key: 'ключ', admitted: 0, seen: 1 }]],
    ['web/api', [{ key: 'k', admitted: 4_000_000_000, seen: 4_000_000_001 }]],
  ]);
  const buf = encodeCounts(batch);
  assert.deepEqual(decodeCounts(buf), batch);
  assert.equal(encodeCounts(new Map()).length, 2);
  for (const broken of [buf.subarray(0, buf.length - 1), Buffer.concat([buf, Buffer.from([0])]), Buffer.from([0xff, 0xff]), Buffer.from([0, 1, 0, 0])]) {
    assert.throws(() => decodeCounts(broken), (e: unknown) => isTandemError(e, ErrorCodes.FRAME_MALFORMED));
  }
});
