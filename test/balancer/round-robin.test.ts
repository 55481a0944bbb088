import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RoundRobinSelector } from '../../src/balancer/round-robin.js';
import { SmoothWeights } from '../../src/balancer/smooth-weights.js';
import { backends, ctx, shares, tally } from './fixtures.js';

describe('round-robin (nginx smooth weighted)', () => {
  it('produces the nginx sequence for weights 5, 1, 1: a a b a c a a', () => {
    const rr = new RoundRobinSelector();
    const list = backends([5, 1, 1]);
    const seq = Array.from({ length: 14 }, () => 'abc'[rr.pick(list, ctx())]).join('');
    assert.equal(seq, 'aabacaa'.repeat(2));
  });

  it('plain round-robin for equal weights', () => {
    const rr = new RoundRobinSelector();
    const list = backends([1, 1, 1]);
    assert.deepEqual(Array.from({ length: 6 }, () => rr.pick(list, ctx())), [0, 1, 2, 0, 1, 2]);
  });

  it('weights 1, 2, 3 give shares 1/6, 2/6, 3/6 over 100k picks (exact per window)', () => {
    const rr = new RoundRobinSelector();
    const list = backends([1, 2, 3]);
    const s = shares(tally(rr, list, 100_000));
    [1 / 6, 2 / 6, 3 / 6].forEach((want, i) => assert.ok(Math.abs(s[i] - want) < 0.015, `${i}: ${s[i]}`));
    // Smoothness: every window of 6 picks holds exactly 1, 2 and 3 of each.
    const window = tally(rr, list, 6);
    assert.deepEqual(window, [1, 2, 3]);
  });

  it('fractional (slow-start) weights keep their proportions', () => {
    const rr = new RoundRobinSelector();
    const list = backends([1, 0.25]);
    assert.deepEqual(tally(rr, list, 50_000), [40_000, 10_000]);
  });

  it('skips unavailable backends and resumes them', () => {
    const rr = new RoundRobinSelector();
    const list = backends([1, 1, 1]);
    list[1].available = false;
    assert.deepEqual(Array.from({ length: 4 }, () => rr.pick(list, ctx())), [0, 2, 0, 2]);
    list[1].available = true;
    assert.deepEqual(tally(rr, list, 300), [100, 100, 100]);
  });

  it('follows a changing list by address and forgets removed backends', () => {
    const rr = new RoundRobinSelector();
    const list = backends([1, 1, 1, 1]);
    const first = list[rr.pick(list, ctx())].address;
    // Reordering the list resets no one: the cycle continues with the three not yet picked.
    const reversed = [...list].reverse();
    const next = new Set(Array.from({ length: 3 }, () => reversed[rr.pick(reversed, ctx())].address));
    assert.equal(next.size, 3);
    assert.ok(!next.has(first));
    // Churn through many addresses: state stays bounded by the list.
    for (let gen = 0; gen < 100; gen++) {
      const churn = backends([1, 2]).map((b, i) => ({ ...b, address: `10.9.${gen}.${i}:80` }));
      rr.pick(churn, ctx());
    }
    const final = backends([1, 2, 3]);
    assert.deepEqual(tally(rr, final, 600), [100, 200, 300]);
  });

  it('keeps state only for listed addresses', () => {
    const sw = new SmoothWeights();
    for (let gen = 0; gen < 100; gen++) {
      const list = backends([1, 2, 3]).map((b, i) => ({ ...b, address: `10.9.${gen}.${i}:80` }));
      sw.begin(list);
      sw.step(list, [0, 1, 2]);
      assert.equal(sw.size, 3);
    }
  });
});
