import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RandomSelector } from '../../src/balancer/random.js';
import { backends, ctx, shares, tally } from './fixtures.js';

describe('random (weighted)', () => {
  it('weights 1, 2, 3 give shares 1/6, 2/6, 3/6 over 100k picks', () => {
    const s = shares(tally(new RandomSelector(), backends([1, 2, 3]), 100_000, ctx('k', 99)));
    [1 / 6, 2 / 6, 3 / 6].forEach((want, i) => assert.ok(Math.abs(s[i] - want) < 0.015, `${i}: ${s[i]}`));
  });

  it('skips unavailable and weight-0 backends, and is reproducible with a seed', () => {
    const list = backends([1, 0, 1, 1]);
    list[2].available = false;
    const counts = tally(new RandomSelector(), list, 10_000, ctx('k', 5));
    assert.equal(counts[1], 0);
    assert.equal(counts[2], 0);
    assert.equal(counts[0] + counts[3], 10_000);
    assert.deepEqual(tally(new RandomSelector(), list, 1000, ctx('k', 5)), tally(new RandomSelector(), list, 1000, ctx('k', 5)));
  });

  it('a draw at the very top of [0, 1) still lands on a pickable backend', () => {
    const list = backends([0.1, 0.2, 0.3, 0]);
    assert.equal(new RandomSelector().pick(list, { key: 'k', random: () => 1 - Number.EPSILON }), 2);
    assert.equal(new RandomSelector().pick(list, { key: 'k', random: () => 0 }), 0);
  });
});
