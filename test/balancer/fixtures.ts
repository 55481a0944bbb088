/** Shared helpers for the balancer tests (not a test file itself). */
import type { BackendView, PickContext, Selector } from '../../src/balancer/selector.js';
import { prng } from '../helpers/prng.js';

export interface MutableBackend {
  address: string;
  weight: number;
  active: number;
  available: boolean;
}

/** Backends b0..b{n-1} at 10.0.0.i:80 with the given weights, idle and available. */
export function backends(weights: readonly number[]): MutableBackend[] {
  return weights.map((weight, i) => ({ address: `10.0.0.${i + 1}:80`, weight, active: 0, available: true }));
}

export function ctx(key = 'k', seed = 1): PickContext {
  return { key, random: prng(seed) };
}

/** Counts of `n` picks by index (a pick of -1 fails the caller's assertions through NaN shares). */
export function tally(selector: Selector, list: readonly BackendView[], n: number, context: PickContext = ctx()): number[] {
  const counts = new Array<number>(list.length).fill(0);
  for (let i = 0; i < n; i++) counts[selector.pick(list, context)]++;
  return counts;
}

export function shares(counts: readonly number[]): number[] {
  const total = counts.reduce((a, b) => a + b, 0);
  return counts.map((c) => c / total);
}
