/**
 * Micro-benchmark of the backend-selection policies: nanoseconds per `pick` over 8 backends.
 * The backend list is fixed (weights 1..8, a static spread of active counts), so consistent-hash
 * measures its steady state (cached table) and the numbers are the per-request cost of each
 * policy, not of table rebuilds. Run directly: `node --import tsx bench/micro/selectors.ts`.
 */
import { pathToFileURL } from 'node:url';
import { BUILTIN_POLICIES, createSelector, type BackendView } from '../../src/balancer/index.js';
import { prng, randomKey } from '../../test/helpers/prng.js';

export interface SelectorBenchResult {
  policy: string;
  nsPerPick: number;
  picksPerSec: number;
}

const BACKENDS = 8;

export function benchSelectors(options: { picks?: number } = {}): Array<SelectorBenchResult> {
  // BENCH_QUICK is set by bench/lib/micro.ts for a short run.
  const picks = options.picks ?? (process.env['BENCH_QUICK'] ? 100_000 : 500_000);
  const r = prng(8);
  const backends: BackendView[] = Array.from({ length: BACKENDS }, (_, i) => ({
    address: `10.0.0.${i + 1}:8080`,
    weight: i + 1,
    active: Math.floor(r() * 20),
    available: true,
  }));
  const keys = Array.from({ length: 1024 }, () => randomKey(r));
  const results: SelectorBenchResult[] = [];
  for (const policy of BUILTIN_POLICIES) {
    const selector = createSelector(policy);
    const random = prng(1);
    let sink = 0;
    const run = (n: number): void => {
      for (let i = 0; i < n; i++) sink += selector.pick(backends, { key: keys[i & 1023], random });
    };
    run(Math.min(picks, 50_000)); // warm-up: JIT, and the consistent-hash table build
    const start = process.hrtime.bigint();
    run(picks);
    const ns = Number(process.hrtime.bigint() - start) / picks;
    if (sink < 0) throw new Error('unreachable: a pick returned -1');
    results.push({ policy, nsPerPick: Math.round(ns * 10) / 10, picksPerSec: Math.round(1e9 / ns) });
  }
  return results;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = benchSelectors();
  console.log(`policy               ns/pick    picks/s   (${BACKENDS} backends)`);
  for (const { policy, nsPerPick, picksPerSec } of rows) {
    console.log(`${policy.padEnd(18)} ${nsPerPick.toFixed(1).padStart(9)} ${picksPerSec.toLocaleString('en-US').padStart(12)}`);
  }
}
