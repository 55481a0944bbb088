import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BUILTIN_POLICIES, createSelector, ConsistentHashSelector, isPickable } from '../../src/balancer/index.js';
import type { Selector } from '../../src/balancer/index.js';
import { prng, randomKey } from '../helpers/prng.js';
import { backends, ctx } from './fixtures.js';

const ODD_WEIGHTS = [0, 0, -1, Number.NaN, Number.POSITIVE_INFINITY, 0.25, 1, 2, 5];

function make(name: string): Selector {
  // A small table keeps 2000 rebuilds fast; the policy logic is the same.
  return name === 'consistent-hash' ? new ConsistentHashSelector({ tableSize: 1009 }) : createSelector(name);
}

describe('every policy', () => {
  for (const name of BUILTIN_POLICIES) {
    it(`${name}: never picks an unavailable or weight-0 backend; -1 when none is pickable`, () => {
      const selector = make(name);
      const r = prng(42);
      const context = { key: 'k', random: prng(7) };
      for (let trial = 0; trial < 2000; trial++) {
        // The list changes between calls: size, order, weights, availability and load.
        const n = Math.floor(r() * 7);
        const list = Array.from({ length: n }, () => ({
          address: `10.1.0.${Math.floor(r() * 9)}:80`,
          weight: ODD_WEIGHTS[Math.floor(r() * ODD_WEIGHTS.length)],
          active: Math.floor(r() * 5),
          available: r() < 0.7,
        }));
        const unique = list.filter((b, i) => list.findIndex((c) => c.address === b.address) === i);
        const picked = selector.pick(unique, { ...context, key: randomKey(r) });
        if (unique.some(isPickable)) {
          assert.ok(picked >= 0 && picked < unique.length, `${name} trial ${trial}: index ${picked}`);
          assert.ok(isPickable(unique[picked]), `${name} trial ${trial}: picked ${JSON.stringify(unique[picked])}`);
        } else {
          assert.equal(picked, -1, `${name} trial ${trial}`);
        }
      }
    });

    it(`${name}: -1 for an empty list and for an all-unavailable list`, () => {
      const selector = make(name);
      assert.equal(selector.pick([], ctx()), -1);
      const list = backends([1, 2, 3]);
      for (const b of list) b.available = false;
      assert.equal(selector.pick(list, ctx()), -1);
      assert.equal(selector.pick(backends([0, 0]), ctx()), -1);
    });

    it(`${name}: with one pickable backend, picks it`, () => {
      const selector = make(name);
      const list = backends([1, 0, 3, 2]);
      list[2].available = false;
      list[3].available = false;
      list[0].active = 1000;
      for (let i = 0; i < 50; i++) assert.equal(selector.pick(list, ctx(`key-${i}`, i)), 0);
    });
  }
});
