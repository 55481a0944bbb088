import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConsistentHashSelector } from '../../src/balancer/consistent-hash.js';
import { buildMaglevTable, isPrime, quantizeWeights } from '../../src/balancer/maglev.js';
import { fnv1a32, keyHash } from '../../src/balancer/hash.js';
import { ErrorCodes, isTandemError } from '../../src/errors.js';
import { prng, randomKey } from '../helpers/prng.js';
import { backends, ctx, shares, type MutableBackend } from './fixtures.js';

const KEYS = (() => {
  const r = prng(2016);
  return Array.from({ length: 100_000 }, () => randomKey(r));
})();

/** The address each key maps to. */
function assign(selector: ConsistentHashSelector, list: readonly MutableBackend[], keys: readonly string[] = KEYS): string[] {
  const context = { key: '', random: () => 0 };
  return keys.map((key) => list[selector.pick(list, { ...context, key })].address);
}

describe('consistent-hash (Maglev)', () => {
  it('is stable across calls, instances and list order', () => {
    const list = backends([1, 1, 1, 1, 1]);
    const a = assign(new ConsistentHashSelector(), list, KEYS.slice(0, 5000));
    const b = new ConsistentHashSelector();
    assert.deepEqual(assign(b, list, KEYS.slice(0, 5000)), a);
    assert.deepEqual(assign(b, [...list].reverse(), KEYS.slice(0, 5000)), a);
    assert.deepEqual(assign(b, list, KEYS.slice(0, 5000)), a);
    assert.equal(b.builds, 1, 'a reordered list with the same members reuses the table');
  });

  it('spreads keys evenly over equal backends', () => {
    const list = backends([1, 1, 1, 1, 1]);
    const ch = new ConsistentHashSelector();
    const counts = new Map<string, number>();
    for (const a of assign(ch, list)) counts.set(a, (counts.get(a) ?? 0) + 1);
    for (const [address, n] of counts) assert.ok(Math.abs(n / KEYS.length - 0.2) < 0.01, `${address}: ${n}`);
  });

  it('weights 1, 2, 3 give shares 1/6, 2/6, 3/6 of keys (within 3%)', () => {
    const list = backends([1, 2, 3]);
    const ch = new ConsistentHashSelector();
    const counts = [0, 0, 0];
    for (const key of KEYS) counts[ch.pick(list, ctx(key))]++;
    const s = shares(counts);
    [1 / 6, 2 / 6, 3 / 6].forEach((want, i) => assert.ok(Math.abs(s[i] - want) < 0.03, `${i}: ${s[i]}`));
    // Fractional weights in the same ratio give the same shares.
    const frac = backends([0.5, 1, 1.5]);
    const counts2 = [0, 0, 0];
    for (const key of KEYS) counts2[ch.pick(frac, ctx(key))]++;
    shares(counts2).forEach((v, i) => assert.ok(Math.abs(v - s[i]) < 0.005, `${i}: ${v}`));
  });

  it('moves only the keys of a backend that becomes unavailable (about 1/N)', () => {
    const list = backends([1, 1, 1, 1, 1]);
    const ch = new ConsistentHashSelector();
    const before = assign(ch, list);
    list[2].available = false;
    const gone = list[2].address;
    const after = assign(ch, list);
    let moved = 0;
    let betweenSurvivors = 0;
    for (let i = 0; i < KEYS.length; i++) {
      if (before[i] === after[i]) continue;
      moved++;
      if (before[i] !== gone) betweenSurvivors++;
    }
    assert.ok(Math.abs(moved / KEYS.length - 0.2) < 0.03, `moved ${moved / KEYS.length}`);
    assert.ok(betweenSurvivors / KEYS.length < 0.02, `between survivors ${betweenSurvivors / KEYS.length}`);
    assert.ok(!after.includes(gone));
    // When it comes back, nearly every key returns to where it was.
    list[2].available = true;
    const back = assign(ch, list);
    const returned = back.filter((a, i) => a === before[i]).length;
    assert.ok(returned / KEYS.length > 0.99, `returned ${returned / KEYS.length}`);
  });

  it('adding a backend takes about 1/(N+1) of keys, from everyone', () => {
    const list = backends([1, 1, 1, 1]);
    const ch = new ConsistentHashSelector();
    const before = assign(ch, list);
    const grown = backends([1, 1, 1, 1, 1]);
    const after = assign(ch, grown);
    const moved = after.filter((a, i) => a !== before[i]).length / KEYS.length;
    const toNew = after.filter((a, i) => a !== before[i] && a === grown[4].address).length / KEYS.length;
    assert.ok(Math.abs(moved - 0.2) < 0.03, `moved ${moved}`);
    assert.ok(moved - toNew < 0.02, `moved elsewhere ${moved - toNew}`);
  });

  it('rebuilds only when the available set or its weights change', () => {
    const list = backends([1, 1, 1]);
    const ch = new ConsistentHashSelector({ tableSize: 251 });
    const key = ctx('alice');
    ch.pick(list, key);
    list[0].active = 10; // load is not part of the signature
    ch.pick(list, key);
    assert.equal(ch.builds, 1);
    list[1].available = false;
    ch.pick(list, key);
    assert.equal(ch.builds, 2);
    list[1].weight = 7; // weight of an unavailable backend: no change to the table
    ch.pick(list, key);
    assert.equal(ch.builds, 2);
    list[1].available = true;
    ch.pick(list, key);
    ch.pick(list, key);
    assert.equal(ch.builds, 3);
    // Slow start nudging a fractional weight by less than a quantum does not rebuild.
    list[2].weight = 0.5;
    ch.pick(list, key);
    list[2].weight = 0.50001;
    ch.pick(list, key);
    assert.equal(ch.builds, 4);
  });

  it('returns the index in the current list even when the list is reordered', () => {
    const list = backends([1, 1, 1, 1]);
    const ch = new ConsistentHashSelector({ tableSize: 1009 });
    const address = list[ch.pick(list, ctx('bob'))].address;
    const shuffled = [list[2], list[0], list[3], list[1]];
    assert.equal(shuffled[ch.pick(shuffled, ctx('bob'))].address, address);
  });

  it('accepts only prime table sizes', () => {
    assert.throws(() => new ConsistentHashSelector({ tableSize: 1000 }), (e: unknown) => isTandemError(e, ErrorCodes.CONFIG_INVALID));
    assert.throws(() => new ConsistentHashSelector({ tableSize: 1 }), (e: unknown) => isTandemError(e, ErrorCodes.CONFIG_INVALID));
    assert.equal(new ConsistentHashSelector({ tableSize: 13 }).tableSize, 13);
    assert.ok(isPrime(65537) && isPrime(2) && !isPrime(65535) && !isPrime(1));
  });
});

describe('Maglev building blocks', () => {
  it('fills every slot, with shares proportional to integer weights', () => {
    const h = { h1: (s: string) => keyHash(s), h2: (s: string) => fnv1a32(s, 1) };
    const table = buildMaglevTable([{ address: 'a', weight: 1 }, { address: 'b', weight: 3 }], 1009, h);
    assert.ok(table.every((v) => v === 0 || v === 1));
    const b = table.filter((v) => v === 1).length;
    assert.ok(Math.abs(b / 1009 - 0.75) < 0.002, `${b}`);
    assert.equal(buildMaglevTable([], 1009, h).length, 0);
  });

  it('quantizes weights: integers kept, fractions to 1/1000 of the heaviest', () => {
    assert.deepEqual(quantizeWeights([1, 2, 3]), [1, 2, 3]);
    assert.deepEqual(quantizeWeights([0.5, 1]), [500, 1000]);
    assert.deepEqual(quantizeWeights([0.0001, 1]), [1, 1000]);
    assert.deepEqual(quantizeWeights([1, 5000]), [1, 1000]);
  });

  it('hashes UTF-8 like FNV-1a reference values', () => {
    // FNV-1a 32 test vectors (draft-eastlake-fnv): "" → 811c9dc5, "a" → e40c292c, "foobar" → bf9cf968.
    assert.equal(fnv1a32(''), 0x811c9dc5);
    assert.equal(fnv1a32('a'), 0xe40c292c);
    assert.equal(fnv1a32('foobar'), 0xbf9cf968);
    // Multi-byte characters hash as their UTF-8 bytes.
    const viaBytes = (s: string): number => {
      let h = 0x811c9dc5;
      for (const byte of Buffer.from(s, 'utf8')) h = Math.imul(h ^ byte, 0x01000193);
      return h >>> 0;
    };
    for (const s of ['caf\u00e9', '\u20ac5', 'emoji \u{1f600}', 'lone \ud800 surrogate', 'low \udc00 first', 'end \ud83d']) assert.equal(fnv1a32(s), viaBytes(s), s);
  });
});
