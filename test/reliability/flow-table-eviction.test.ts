/**
 * Found by the peer flood (issue 10): evicting from a full flow table took ~20 µs per new key at
 * 100k entries and ~45 µs at the default 1M, because each eviction started a fresh Map iterator
 * that walked every slot freed since V8 last rehashed the Map. flow-table.ts now keeps eviction
 * cursors. This file pins both halves: the eviction order is still exactly least-recently-used
 * (a seeded differential test against a plain list model, under every operation that reorders,
 * ends or expires entries), and a new key costs no more in a full table of 100k than in one of 10k.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlowTable } from '../../src/cluster/flow-table.js';
import { compareVersion, type FlowEntry } from '../../src/cluster/flow-entry.js';
import { hlcFromWallMs, hlcWallMs } from '../../src/cluster/hlc.js';
import { prng } from '../helpers/prng.js';

const T0 = Date.UTC(2025, 0, 1);
const TOMB_MS = 1000;

/** The table's documented behaviour with arrays: obviously right, O(n) per step. */
class ListModel {
  live: FlowEntry[] = [];
  dead: FlowEntry[] = [];
  evicted: string[] = [];
  constructor(readonly max: number, readonly idleMs: number) {}
  #find(key: string): FlowEntry | undefined {
    return this.live.find((e) => e.key === key) ?? this.dead.find((e) => e.key === key);
  }
  merge(e: FlowEntry): boolean {
    const old = this.#find(e.key);
    if (old) {
      if (compareVersion(e, old) <= 0) return false;
      this.live = this.live.filter((x) => x.key !== e.key);
      this.dead = this.dead.filter((x) => x.key !== e.key);
    } else {
      while (this.live.length + this.dead.length >= this.max) {
        if (this.dead.length > 0) this.dead.shift();
        else this.evicted.push(this.live.shift()!.key);
      }
    }
    (e.ended ? this.dead : this.live).push(e);
    return true;
  }
  touch(key: string): void {
    const i = this.live.findIndex((x) => x.key === key);
    if (i >= 0) this.live.push(...this.live.splice(i, 1));
  }
  expire(now: number): void {
    while (this.live.length > 0 && now - this.live[0].lastActive >= this.idleMs) this.evicted.push(this.live.shift()!.key);
    while (this.dead.length > 0 && hlcWallMs(this.dead[0].version) <= now - TOMB_MS) this.dead.shift();
  }
}

test('eviction order stays least-recently-used under merges, moves, tombstones, touches and expiry (seeded, vs a list model)', () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const rand = prng(seed);
    const max = 20 + Math.floor(rand() * 40);
    const idleMs = 5000;
    let now = T0;
    let version = hlcFromWallMs(T0);
    const evicted: string[] = [];
    const t = new FlowTable({ limits: () => ({ maxEntries: max, idleTimeoutMs: idleMs }), tombstoneMs: TOMB_MS, now: () => now, onEvict: (e) => evicted.push(e.key) });
    const m = new ListModel(max, idleMs);
    const keys = Array.from({ length: max * 3 }, (_, i) => `k${i}`);
    for (let step = 0; step < 4000; step++) {
      const r = rand();
      const key = keys[Math.floor(rand() * keys.length)];
      if (r < 0.6) {
        // New write, sometimes an end, sometimes stale (an older version than stored).
        version = rand() < 0.1 ? version - 5 : Math.max(version + 1, hlcFromWallMs(now));
        const e: FlowEntry = { service: 'web', key, primary: 'lb1', backup: 'lb2', backend: null, version, writer: rand() < 0.5 ? 'lb1' : 'lb2', lastActive: now - Math.floor(rand() * 3000), ended: rand() < 0.15 };
        assert.equal(t.merge({ ...e }), m.merge({ ...e }), `seed ${seed} step ${step}: merge result`);
      } else if (r < 0.8) {
        t.touch('web', key);
        m.touch(key);
      } else if (r < 0.9) {
        now += Math.floor(rand() * 800);
        t.expire(now);
        m.expire(now);
      } else {
        now += 10;
      }
      const liveT = [...t.entries('web')].map((e) => e.key);
      assert.deepEqual(liveT, m.live.map((e) => e.key), `seed ${seed} step ${step}: live order`);
      const allT = [...t.allEntries()].filter((e) => e.ended).map((e) => e.key);
      assert.deepEqual(allT, m.dead.map((e) => e.key), `seed ${seed} step ${step}: tombstone order`);
    }
    assert.deepEqual(evicted, m.evicted, `seed ${seed}: the same victims in the same order`);
  }
});

/**
 * The cost of a new key in a full table must not grow with the table (the bug cost O(evictions
 * since V8's last rehash)). Compared, not timed: a full table of 10k and one of 100k take new
 * keys in interleaved rounds on the same machine at the same moment, and the ratio of their
 * median costs must stay near 1 (measured 1.1; the code before the eviction cursor gave 4.8). A
 * busy machine slows both alike; absolute figures are printed only (performance is
 * `npm run bench`'s job).
 */
test('a full table of 100k takes new keys at the cost of one of 10k (eviction is O(1))', (t) => {
  const v = hlcFromWallMs(Date.now());
  const full = (max: number) => {
    const table = new FlowTable({ limits: () => ({ maxEntries: max, idleTimeoutMs: 600_000 }), onEvict: () => undefined });
    let i = 0;
    const add = (): void => {
      table.merge({ service: 'web', key: `k${i}`, primary: 'lb1', backup: 'lb2', backend: null, version: v + i, writer: 'lb2', lastActive: 0, ended: false });
      i++;
    };
    for (let j = 0; j < max; j++) add();
    return { table, max, add, rounds: [] as number[] };
  };
  const small = full(10_000);
  const big = full(100_000);
  const PER_ROUND = 30_000;
  for (let round = 0; round < 10; round++) {
    for (const x of round % 2 === 0 ? [small, big] : [big, small]) {
      const t0 = performance.now();
      for (let j = 0; j < PER_ROUND; j++) x.add();
      x.rounds.push(((performance.now() - t0) * 1000) / PER_ROUND);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const ratio = median(big.rounds) / median(small.rounds);
  t.diagnostic(`new key into a full table: ${median(small.rounds).toFixed(2)} µs at 10k, ${median(big.rounds).toFixed(2)} µs at 100k (median of 10 rounds of ${PER_ROUND}); ratio ${ratio.toFixed(2)} (4.8 with the code before the eviction cursor)`);
  assert.equal(small.table.size('web'), small.max);
  assert.equal(big.table.size('web'), big.max);
  assert.ok(ratio < 3, `a new key costs ${ratio.toFixed(2)}× more in a table 10× larger: eviction grows with the table`);
});
