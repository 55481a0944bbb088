import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { P2cSelector } from '../../src/balancer/p2c.js';
import { RandomSelector } from '../../src/balancer/random.js';
import type { Selector } from '../../src/balancer/selector.js';
import { prng } from '../helpers/prng.js';
import { backends, ctx, shares, tally } from './fixtures.js';

/** Requests arrive one at a time and a random one of the `inflight` completes: the max active count. */
function peakLoad(selector: Selector, n: number, inflightTarget: number, seed: number): number {
  const list = backends(new Array<number>(n).fill(1));
  const r = prng(seed);
  const context = { key: 'k', random: prng(seed + 1) };
  const inflight: number[] = [];
  let peak = 0;
  for (let step = 0; step < 30_000; step++) {
    const i = selector.pick(list, context);
    list[i].active++;
    inflight.push(i);
    if (inflight.length > inflightTarget) {
      const k = Math.floor(r() * inflight.length);
      const done = inflight[k];
      inflight[k] = inflight[inflight.length - 1]!;
      inflight.pop();
      list[done].active--;
    }
    if (step > 1000) peak = Math.max(peak, ...list.map((b) => b.active));
  }
  return peak;
}

describe('p2c (power of two choices)', () => {
  it('with two backends, always the less loaded; with one, that one', () => {
    const p2c = new P2cSelector();
    const list = backends([1, 1]);
    list[0].active = 3;
    list[1].active = 2;
    assert.deepEqual(tally(p2c, list, 1000, ctx('k', 5)), [0, 1000]);
    list[1].available = false;
    assert.deepEqual(tally(p2c, list, 10), [10, 0]);
  });

  it('picks the more loaded of two equal-weight backends far less often', () => {
    const p2c = new P2cSelector();
    const list = backends([1, 1, 1, 1]);
    [0, 4, 8, 12].forEach((a, i) => (list[i].active = a));
    const s = shares(tally(p2c, list, 100_000, ctx('k', 11)));
    // Ranked by load the winners are: least loaded whenever drawn (1/2 of pairs), then 1/3, 1/6, 0.
    [1 / 2, 1 / 3, 1 / 6, 0].forEach((want, i) => assert.ok(Math.abs(s[i] - want) < 0.01, `${i}: ${s[i]}`));
    assert.equal(s[3], 0, 'the most loaded backend never wins a comparison');
  });

  it('compares active / weight', () => {
    const p2c = new P2cSelector();
    const list = backends([1, 4]);
    list[0].active = 1;
    list[1].active = 3;
    assert.deepEqual(tally(p2c, list, 100), [0, 100]);
  });

  it('idle backends share in proportion to weight (1, 2, 3)', () => {
    const s = shares(tally(new P2cSelector(), backends([1, 2, 3]), 100_000, ctx('k', 21)));
    [1 / 6, 2 / 6, 3 / 6].forEach((want, i) => assert.ok(Math.abs(s[i] - want) < 0.015, `${i}: ${s[i]}`));
  });

  it('keeps the peak load well below that of a random choice', () => {
    const p2c = peakLoad(new P2cSelector(), 10, 200, 31);
    const random = peakLoad(new RandomSelector(), 10, 200, 31);
    // Mean load is 20 per backend; one choice wanders far above it, two choices stay close.
    assert.ok(p2c <= 26, `p2c peak ${p2c}`);
    assert.ok(random >= p2c + 8, `random peak ${random} vs p2c ${p2c}`);
  });
});
