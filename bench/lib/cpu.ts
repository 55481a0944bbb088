// CPU time of a contender's processes, from /proc/PID/stat: utime + stime of every process in the
// tree under each root (children included, also those that exited and were reaped: cutime + cstime).
// The runner reads it before and after the load generator runs, so the difference is the CPU the
// contender spent on that measurement.
import { readdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

export interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime + cutime + cstime, in clock ticks. */
  ticks: number;
  /** Resident set size, in pages. */
  rss: number;
}

/** Parses one /proc/PID/stat line; undefined when it is not one. The name may hold spaces and ')'. */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  const pid = Number.parseInt(text, 10);
  if (close < 0 || !Number.isInteger(pid)) return undefined;
  // Fields after the name, numbered from 3 (state) as in proc(5): ppid is 4, utime 14 … cstime 17.
  const f = text.slice(close + 2).trim().split(/\s+/);
  const n = (field: number) => Number(f[field - 3]);
  const ticks = n(14) + n(15) + n(16) + n(17);
  if (!Number.isFinite(ticks) || !Number.isFinite(n(4))) return undefined;
  return { pid, ppid: n(4), ticks, rss: n(24) || 0 };
}

/** Sum of a field over the roots and all their descendants in a process table. */
export function treeSum(table: readonly ProcStat[], roots: readonly number[], field: 'ticks' | 'rss' = 'ticks'): number {
  const children = new Map<number, number[]>();
  const byPid = new Map<number, ProcStat>();
  for (const p of table) {
    byPid.set(p.pid, p);
    const list = children.get(p.ppid);
    if (list) list.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  let sum = 0;
  const seen = new Set<number>();
  const stack = [...roots];
  while (stack.length) {
    const pid = stack.pop() as number;
    if (seen.has(pid)) continue;
    seen.add(pid);
    sum += byPid.get(pid)?.[field] ?? 0;
    stack.push(...(children.get(pid) ?? []));
  }
  return sum;
}

function processTable(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = parseProcStat(readFileSync(`/proc/${name}/stat`, 'utf8'));
      if (s) out.push(s);
    } catch {
      /* exited while we looked */
    }
  }
  return out;
}

const conf = new Map<string, number>();
function getconf(name: string, fallback: number): number {
  let v = conf.get(name);
  if (v === undefined) {
    const r = spawnSync('getconf', [name], { encoding: 'utf8', timeout: 2000 });
    const n = Number(r.stdout?.trim());
    v = Number.isInteger(n) && n > 0 ? n : fallback;
    conf.set(name, v);
  }
  return v;
}

/** Clock ticks per second (USER_HZ; 100 on every Linux the bench has met). */
export const clockTicks = () => getconf('CLK_TCK', 100);

/** CPU seconds used so far by the trees under these pids; undefined without /proc. */
export function cpuSeconds(roots: readonly number[]): number | undefined {
  if (roots.length === 0) return undefined;
  try {
    return treeSum(processTable(), roots) / clockTicks();
  } catch {
    return undefined;
  }
}

/** Resident memory of the trees under these pids, in MB (10^6 bytes); undefined without /proc. */
export function rssMB(roots: readonly number[]): number | undefined {
  if (roots.length === 0) return undefined;
  try {
    return (treeSum(processTable(), roots, 'rss') * getconf('PAGESIZE', 4096)) / 1e6;
  } catch {
    return undefined;
  }
}

/**
 * Brackets a measurement window: CPU seconds of the trees and wall seconds between begin and end.
 * begin() again restarts the window; end() after the first is a no-op.
 */
export class CpuMeter {
  readonly #roots: readonly number[];
  #cpu0: number | undefined;
  #t0 = 0;
  #result: { cpuSec: number; wallSec: number; rssMB?: number } | undefined;
  constructor(roots: readonly number[]) {
    this.#roots = roots;
  }
  begin(): void {
    this.#cpu0 = cpuSeconds(this.#roots);
    this.#t0 = performance.now();
    this.#result = undefined;
  }
  end(): void {
    if (this.#result || this.#cpu0 === undefined) return;
    const cpu1 = cpuSeconds(this.#roots);
    const wallSec = (performance.now() - this.#t0) / 1000;
    if (cpu1 !== undefined) this.#result = { cpuSec: Math.max(0, cpu1 - this.#cpu0), wallSec, rssMB: rssMB(this.#roots) };
  }
  /** CPU and wall seconds of the window, and the trees' resident memory at its end. */
  get result(): { cpuSec: number; wallSec: number; rssMB?: number } | undefined {
    return this.#result;
  }
}
