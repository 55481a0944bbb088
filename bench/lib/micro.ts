// The micro-benchmarks of bench/micro/*.ts (written alongside tandem's code), each run in its own
// child process with a time limit; a module that is absent or fails is recorded as unavailable.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { MicroResult } from './types.js';
import { runCommand } from './procs.js';
import { ROOT } from './tandem.js';

export const MICROS: ReadonlyArray<{ name: string; module: string; fn: string; title: string }> = [
  { name: 'rendezvous', module: 'rendezvous', fn: 'benchRendezvous', title: 'rendezvous decisions' },
  { name: 'flow-table', module: 'flow-table', fn: 'benchFlowTable', title: 'flow table' },
  { name: 'replication', module: 'replication', fn: 'benchReplication', title: 'replication across 3 nodes' },
  { name: 'selectors', module: 'selectors', fn: 'benchSelectors', title: 'backend selectors' },
  { name: 'routes', module: 'routes', fn: 'benchRoutes', title: 'route match (10 and 1,000 routes)' },
];

export async function runMicro(quick: boolean, timeoutMs: number, log: (s: string) => void, node = process.execPath): Promise<MicroResult[]> {
  const out: MicroResult[] = [];
  for (const m of MICROS) {
    const file = join(ROOT, 'bench/micro', `${m.module}.ts`);
    if (!existsSync(file)) {
      out.push({ name: m.name, status: 'unavailable', reason: `bench/micro/${m.module}.ts not present` });
      log(`  micro ${m.name}: unavailable (no bench/micro/${m.module}.ts)`);
      continue;
    }
    log(`  micro ${m.name}…`);
    const r = await runCommand(node, ['--import', 'tsx', join(ROOT, 'bench/lib/micro-child.ts'), m.module, m.fn], {
      cpu: 'proxy', cwd: ROOT, timeoutMs, env: { ...process.env, BENCH_QUICK: quick ? '1' : '' },
    });
    const line = r.stdout.split('\n').find((l) => l.startsWith('MICRO_RESULT '));
    if (r.code === 0 && line) {
      const j = JSON.parse(line.slice('MICRO_RESULT '.length)) as { figures: unknown; elapsedMs: number };
      out.push({ name: m.name, status: 'ok', figures: j.figures, elapsedMs: Math.round(j.elapsedMs) });
    } else {
      const why = r.timedOut
        ? `timed out after ${Math.round(timeoutMs / 1000)} s`
        : `exited ${r.code ?? r.signal}: ${r.stderr.trim().split('\n').filter(Boolean).slice(-2).join(' ').slice(0, 200)}`;
      out.push({ name: m.name, status: 'unavailable', reason: why });
    }
  }
  return out;
}
