import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlowTable, type FlowTableLimits, type FlowTableOptions } from '../../src/cluster/flow-table.js';
import { compareVersion, type FlowEntry } from '../../src/cluster/flow-entry.js';
import { hlcFromWallMs } from '../../src/cluster/hlc.js';
import { isTandemError, ErrorCodes } from '../../src/errors.js';
import { prng, randomKey } from '../helpers/prng.js';

const T0 = Date.UTC(2025, 0, 1);

function entry(p: Partial<FlowEntry> & Pick<FlowEntry, 'key'>): FlowEntry {
  return {
    service: 'web',
    primary: 'lb1',
    backup: 'lb2',
    backend: null,
    version: hlcFromWallMs(T0),
    writer: 'lb1',
    lastActive: T0,
    ended: false,
    ...p,
  };
}

function table(limits: FlowTableLimits | ((s: string) => FlowTableLimits), extra: Partial<FlowTableOptions> = {}): FlowTable {
  return new FlowTable({ limits: typeof limits === 'function' ? limits : () => limits, now: () => T0, ...extra });
}

const BIG: FlowTableLimits = { maxEntries: 1_000_000, idleTimeoutMs: 600_000 };

function snapshot(t: FlowTable): FlowEntry[] {
  return [...t.allEntries()].sort((a, b) => (a.service + '\0' + a.key < b.service + '\0' + b.key ? -1 : 1));
}

test('flow table: merge keeps the newest version, get/getAny, stats, frozen', () => {
  const t = table(BIG);
  const v1 = entry({ key: 'a', version: 10 });
  assert.equal(t.merge(v1), true);
  assert.ok(Object.isFrozen(v1));
  assert.equal(t.get('web', 'a'), v1);
  assert.equal(t.merge(entry({ key: 'a', version: 9 })), false, 'older');
  assert.equal(t.merge(entry({ key: 'a', version: 10 })), false, 'equal (version, writer)');
  const v1b = entry({ key: 'a', version: 10, writer: 'lb2' });
  assert.equal(t.merge(v1b), true, 'equal version, higher writer wins');
  assert.equal(t.merge(entry({ key: 'a', version: 10, writer: 'lb0' })), false);
  assert.equal(t.get('web', 'a'), v1b);
  assert.equal(t.get('web', 'zz'), undefined);
  assert.equal(t.get('other', 'a'), undefined);
  assert.deepEqual(t.stats, { evictedLru: 0, evictedIdle: 0, tombstonesEvicted: 0, tombstonesExpired: 0, merged: 2, stale: 3, invalid: 0 });
  assert.equal(t.size(), 1);
  assert.equal(t.size('web'), 1);
  assert.deepEqual(t.services(), ['web']);
});

test('flow table: versions that are not non-negative safe integers are refused', () => {
  const t = table(BIG);
  for (const version of [NaN, Infinity, -1, 0.5]) assert.equal(t.merge(entry({ key: 'a', version })), false);
  assert.equal(t.stats.invalid, 4);
  assert.equal(t.getAny('web', 'a'), undefined);
});

test('flow table: any delivery order of the same versions converges to the same table', () => {
  const rand = prng(0xf10e);
  const writers = ['lb1', 'lb2', 'lb3'];
  const all: FlowEntry[] = [];
  for (let k = 0; k < 80; k++) {
    const service = k % 3 === 0 ? 'tcp' : 'web';
    const key = randomKey(rand);
    const seen = new Set<string>();
    const versions = 2 + Math.floor(rand() * 6);
    for (let i = 0; i < versions; i++) {
      // A narrow version range makes equal versions from different writers common.
      const version = hlcFromWallMs(T0) + Math.floor(rand() * 4);
      const writer = writers[Math.floor(rand() * writers.length)];
      if (seen.has(`${version}/${writer}`)) continue; // (version, writer) identifies one write
      seen.add(`${version}/${writer}`);
      all.push(entry({ service, key, version, writer, ended: rand() < 0.3, backend: `10.0.0.${i}:80`, primary: writer }));
    }
  }
  assert.ok(all.length >= 300, `${all.length} entries`);
  // Expected: the maximum (version, writer) of each key.
  const expected = new Map<string, FlowEntry>();
  for (const e of all) {
    const id = e.service + '\0' + e.key;
    const cur = expected.get(id);
    if (cur === undefined || compareVersion(e, cur) > 0) expected.set(id, e);
  }
  const want = [...expected.values()].sort((a, b) => (a.service + '\0' + a.key < b.service + '\0' + b.key ? -1 : 1));
  assert.ok(want.some((e) => e.ended) && want.some((e) => !e.ended));

  for (let round = 0; round < 10; round++) {
    const order = [...all];
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    // Duplicate deliveries must not matter either.
    if (round % 2 === 1) order.push(...order.slice(0, 50));
    const t = table(BIG);
    for (const e of order) t.merge(e);
    assert.deepEqual(snapshot(t), want, `permutation ${round}`);
    assert.equal(t.size(), want.filter((e) => !e.ended).length);
  }
});

test('flow table: never exceeds its bound under 1M inserts; evictions = inserts - bound', () => {
  const bound = 1000;
  const t = table({ maxEntries: bound, idleTimeoutMs: 600_000 });
  const inserts = 1_000_000;
  let max = 0;
  for (let i = 0; i < inserts; i++) {
    t.merge(entry({ key: `k${i}`, version: i }));
    const n = t.size('web');
    if (n > max) max = n;
  }
  assert.equal(max, bound);
  assert.equal(t.size(), bound);
  assert.equal(t.stats.evictedLru, inserts - bound);
  // The survivors are the most recent inserts.
  assert.ok(t.get('web', `k${inserts - 1}`));
  assert.equal(t.get('web', `k${inserts - bound - 1}`), undefined);
});

test('flow table: tombstones count toward the bound and are evicted before live entries', () => {
  const evicted: string[] = [];
  const t = table({ maxEntries: 4, idleTimeoutMs: 600_000 }, { onEvict: (e, r) => evicted.push(`${e.key}:${r}`) });
  t.merge(entry({ key: 'a' }));
  t.merge(entry({ key: 'b' }));
  // A flood of ends for unknown keys stays within the bound.
  for (let i = 0; i < 1000; i++) t.merge(entry({ key: `end${i}`, ended: true, version: hlcFromWallMs(T0) + i }));
  assert.equal([...t.allEntries()].length, 4);
  assert.equal(t.size(), 2, 'live entries survive while tombstones can be evicted instead');
  assert.equal(t.stats.tombstonesEvicted, 998);
  assert.equal(t.stats.evictedLru, 0);
  assert.deepEqual(evicted, []);
  // New live keys take the tombstones' places first, then evict live LRU.
  for (const k of ['c', 'd', 'e']) t.merge(entry({ key: k }));
  assert.equal([...t.allEntries()].length, 4);
  assert.deepEqual([...t.entries()].map((e) => e.key), ['b', 'c', 'd', 'e']);
  assert.deepEqual(evicted, ['a:lru']);
});

test('flow table: touch and refresh change the LRU order', () => {
  const evicted: string[] = [];
  const t = table({ maxEntries: 3, idleTimeoutMs: 600_000 }, { onEvict: (e, r) => evicted.push(`${e.key}:${r}`) });
  for (const k of ['a', 'b', 'c']) t.merge(entry({ key: k }));
  t.touch('web', 'a');
  t.touch('web', 'missing');
  t.touch('nosuch', 'a');
  assert.deepEqual([...t.entries('web')].map((e) => e.key), ['b', 'c', 'a']);
  t.merge(entry({ key: 'd' }));
  assert.deepEqual(evicted, ['b:lru']);
  // A newer version (a refresh) also makes the key most recent.
  t.merge(entry({ key: 'c', version: hlcFromWallMs(T0) + 1 }));
  t.merge(entry({ key: 'e' }));
  assert.deepEqual(evicted, ['b:lru', 'a:lru']);
  assert.deepEqual([...t.entries()].map((e) => e.key), ['d', 'c', 'e']);
  assert.equal(t.stats.evictedLru, 2);
});

test('flow table: limits are per service', () => {
  const t = table((s) => (s === 'small' ? { maxEntries: 2, idleTimeoutMs: 1000 } : BIG));
  for (let i = 0; i < 10; i++) {
    t.merge(entry({ service: 'small', key: `k${i}` }));
    t.merge(entry({ service: 'web', key: `k${i}` }));
  }
  assert.equal(t.size('small'), 2);
  assert.equal(t.size('web'), 10);
  assert.equal(t.size(), 12);
  assert.deepEqual(t.services().sort(), ['small', 'web']);
  t.clear('small');
  assert.deepEqual(t.services(), ['web']);
  assert.equal(t.stats.evictedLru, 8, 'clear is not an eviction');
  t.clear();
  assert.equal(t.size(), 0);
  assert.deepEqual(t.services(), []);
});

test('flow table: invalid limits are refused loudly', () => {
  const t = table({ maxEntries: 0, idleTimeoutMs: 1000 });
  assert.throws(() => t.merge(entry({ key: 'a' })), (e) => isTandemError(e, ErrorCodes.CONFIG_INVALID));
  assert.throws(() => new FlowTable({ limits: () => BIG, tombstoneMs: -1 }), (e) => isTandemError(e, ErrorCodes.CONFIG_INVALID));
});

test('flow table: idle expiry by lastActive, counted and reported', () => {
  let now = T0;
  const evicted: string[] = [];
  const t = new FlowTable({ limits: () => ({ maxEntries: 100, idleTimeoutMs: 1000 }), now: () => now, onEvict: (e, r) => evicted.push(`${e.key}:${r}`) });
  t.merge(entry({ key: 'a', lastActive: T0 }));
  t.merge(entry({ key: 'b', lastActive: T0 + 500 }));
  t.merge(entry({ key: 'c', lastActive: T0 + 900 }));
  assert.equal(t.expire(T0 + 999), 0);
  now = T0 + 1000;
  assert.equal(t.expire(), 1);
  assert.deepEqual(evicted, ['a:idle']);
  // A refresh with a newer lastActive keeps b alive.
  t.merge(entry({ key: 'b', lastActive: T0 + 1400, version: hlcFromWallMs(T0) + 1 }));
  assert.equal(t.expire(T0 + 2000), 1);
  assert.deepEqual(evicted, ['a:idle', 'c:idle']);
  assert.equal(t.get('web', 'b')?.lastActive, T0 + 1400);
  assert.equal(t.expire(T0 + 2400), 1);
  assert.equal(t.stats.evictedIdle, 3);
  assert.equal(t.size(), 0);
  assert.deepEqual(t.services(), [], 'an emptied service is forgotten');
});

test('flow table: expire stops at the first entry not yet due (documented approximation)', () => {
  const t = table({ maxEntries: 100, idleTimeoutMs: 1000 });
  t.merge(entry({ key: 'fresh', lastActive: T0 + 5000 }));
  t.merge(entry({ key: 'old', lastActive: T0 }));
  assert.equal(t.expire(T0 + 2000), 0, 'old sits behind fresh in Map order');
  t.touch('web', 'old'); // touch does not renew lastActive
  assert.equal(t.expire(T0 + 2000), 0);
  t.touch('web', 'fresh');
  assert.equal(t.expire(T0 + 2000), 1, 'now old is at the head');
  assert.equal(t.get('web', 'old'), undefined);
});

test('flow table: onEvict may merge without corrupting the table', () => {
  const ends: string[] = [];
  const t: FlowTable = new FlowTable({
    limits: () => ({ maxEntries: 3, idleTimeoutMs: 1000 }),
    now: () => T0,
    onEvict: (e) => {
      ends.push(e.key);
      // What an owner does: announce the end with a tombstone.
      t.merge({ ...e, ended: true, version: e.version + 1 });
    },
  });
  for (const k of ['a', 'b', 'c']) t.merge(entry({ key: k, lastActive: T0 - 5000 }));
  assert.equal(t.expire(T0), 3);
  assert.deepEqual(ends, ['a', 'b', 'c']);
  assert.equal(t.size(), 0);
  assert.equal([...t.allEntries()].filter((e) => e.ended).length, 3);
  t.merge(entry({ key: 'x' }));
  assert.equal([...t.allEntries()].length, 3);
});

test('flow table: a tombstone blocks older live versions, then is cleaned after tombstoneMs', () => {
  const t = new FlowTable({ limits: () => BIG, tombstoneMs: 30_000, now: () => T0 });
  const live = entry({ key: 'a', version: hlcFromWallMs(T0) });
  const end = entry({ key: 'a', version: hlcFromWallMs(T0 + 10), ended: true, lastActive: T0 + 10 });
  const lateCopy = entry({ key: 'a', version: hlcFromWallMs(T0) + 5, writer: 'lb3' });
  t.merge(live);
  assert.equal(t.merge(end), true);
  assert.equal(t.get('web', 'a'), undefined, 'a tombstone reads as absent');
  assert.equal(t.getAny('web', 'a'), end);
  assert.equal(t.size(), 0);
  assert.deepEqual([...t.entries()], []);
  assert.deepEqual([...t.allEntries()], [end]);
  assert.equal(t.merge(lateCopy), false, 'no resurrection by an older live version');
  assert.equal(t.get('web', 'a'), undefined);
  // Measured from the tombstone's lastActive (this node's clock), not from its version.
  t.expire(T0 + 10 + 29_999);
  assert.equal(t.getAny('web', 'a'), end);
  assert.equal(t.expire(T0 + 10 + 30_000), 0, 'tombstone cleanup is not an idle eviction');
  assert.equal(t.getAny('web', 'a'), undefined);
  assert.equal(t.stats.tombstonesExpired, 1);
  assert.deepEqual(t.services(), []);
  // A newer live version (the same client starting again) replaces a tombstone.
  t.merge(end);
  const again = entry({ key: 'a', version: hlcFromWallMs(T0 + 20) });
  assert.equal(t.merge(again), true);
  assert.equal(t.get('web', 'a'), again);
});

test('flow table: expiry reads lastActive only, so a version dragged ahead by a fast peer clock changes nothing', () => {
  const t = new FlowTable({ limits: () => ({ maxEntries: 100, idleTimeoutMs: 60_000 }), tombstoneMs: 30_000, now: () => T0 });
  // Versions 10 minutes ahead of this node's clock (a peer's fast clock dragged every HLC there).
  const ahead = hlcFromWallMs(T0 + 600_000);
  t.merge(entry({ key: 'live', version: ahead, lastActive: T0 }));
  t.merge(entry({ key: 'ended', version: ahead + 1, lastActive: T0, ended: true }));
  t.expire(T0 + 30_000);
  assert.equal(t.getAny('web', 'ended'), undefined, 'the tombstone goes after tombstoneMs, not 10 minutes later');
  assert.notEqual(t.get('web', 'live'), undefined);
  t.expire(T0 + 60_000);
  assert.equal(t.get('web', 'live'), undefined, 'idle after idleTimeoutMs of this node');
});
