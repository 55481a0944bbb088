import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSelector, policyNames, registerPolicy, isPolicyName, BUILTIN_POLICIES } from '../../src/balancer/index.js';
import type { Selector } from '../../src/balancer/index.js';
import { ErrorCodes, isTandemError } from '../../src/errors.js';
import { backends, ctx } from './fixtures.js';

const isConfigError = (e: unknown): boolean => isTandemError(e, ErrorCodes.CONFIG_INVALID);

describe('policy registry', () => {
  it('registers the built-in policies by default', () => {
    for (const name of BUILTIN_POLICIES) {
      assert.ok(policyNames().includes(name), name);
      assert.ok(isPolicyName(name));
      assert.equal(createSelector(name).name, name);
    }
  });

  it('creates a fresh selector per call (state is per service)', () => {
    assert.notEqual(createSelector('round-robin'), createSelector('round-robin'));
  });

  it('throws a TandemError naming the known policies for unknown names', () => {
    assert.throws(() => createSelector('least-conn'), (e: unknown) => isConfigError(e) && /round-robin/.test((e as Error).message));
    assert.throws(() => createSelector(''), isConfigError);
  });

  it('accepts extra policies and refuses duplicates and bad names', () => {
    const first: Selector = { name: 'first-available', pick: (list) => list.findIndex((b) => b.available && b.weight > 0) };
    registerPolicy('first-available', () => first);
    assert.equal(createSelector('first-available').pick(backends([0, 1]), ctx()), 1);
    assert.throws(() => registerPolicy('first-available', () => first), isConfigError);
    assert.throws(() => registerPolicy('round-robin', () => first), isConfigError);
    assert.throws(() => registerPolicy('Bad Name', () => first), isConfigError);
  });
});
