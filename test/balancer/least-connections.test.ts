import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LeastConnectionsSelector } from '../../src/balancer/least-connections.js';
import { prng } from '../helpers/prng.js';
import { backends, ctx, tally } from './fixtures.js';

describe('least-connections', () => {
  it('picks the backend with the fewest active connections', () => {
    const lc = new LeastConnectionsSelector();
    const list = backends([1, 1, 1]);
    list[0].active = 5;
    list[1].active = 2;
    list[2].active = 7;
    assert.equal(lc.pick(list, ctx()), 1);
    list[1].active = 9;
    assert.equal(lc.pick(list, ctx()), 0);
  });

  it('compares active / weight', () => {
    const lc = new LeastConnectionsSelector();
    const list = backends([1, 4]);
    list[0].active = 1; // 1 per weight
    list[1].active = 3; // 0.75 per weight
    assert.equal(lc.pick(list, ctx()), 1);
    list[1].active = 5; // 1.25 per weight
    assert.equal(lc.pick(list, ctx()), 0);
  });

  it('shares ties by smooth weighted round-robin, as nginx least_conn does', () => {
    const lc = new LeastConnectionsSelector();
    const idle = backends([1, 1, 1]);
    assert.deepEqual(Array.from({ length: 6 }, () => lc.pick(idle, ctx())), [0, 1, 2, 0, 1, 2]);
    const weighted = backends([1, 2, 3]);
    assert.deepEqual(tally(lc, weighted, 600), [100, 200, 300]);
    // Only the tied lowest take part: the loaded one is left out.
    const mixed = backends([1, 1, 1]);
    mixed[1].active = 3;
    assert.deepEqual(tally(lc, mixed, 10), [5, 0, 5]);
  });

  it('keeps active counts level when requests come and go', () => {
    const lc = new LeastConnectionsSelector();
    const list = backends([1, 1, 2, 4]);
    const r = prng(3);
    const inflight: number[] = [];
    for (let step = 0; step < 20_000; step++) {
      const i = lc.pick(list, ctx());
      list[i].active++;
      inflight.push(i);
      if (inflight.length > 80) {
        const done = inflight.splice(Math.floor(r() * inflight.length), 1)[0];
        list[done].active--;
      }
    }
    // With 81 in flight over total weight 8, each backend holds about 10 per unit of weight.
    const perWeight = list.map((b) => b.active / b.weight);
    assert.ok(Math.max(...perWeight) - Math.min(...perWeight) <= 1.5, `per-weight load ${perWeight}`);
  });
});
