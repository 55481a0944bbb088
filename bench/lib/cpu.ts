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
  /** Minor page faults (minflt + cminflt): fresh memory touched, e.g. a new buffer per read. */
  faults: number;
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
  return { pid, ppid: n(4), ticks, rss: n(24) || 0, faults: (n(10) || 0) + (n(11) || 0) };
}

/** The pids of the roots and all their descendants in a process table (those in the table). */
export function treePids(table: readonly ProcStat[], roots: readonly number[]): number[] {
  const children = new Map<number, number[]>();
  const known = new Set<number>();
  for (const p of table) {
    known.add(p.pid);
    const list = children.get(p.ppid);
    if (list) list.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  const out: number[] = [];
  const seen = new Set<number>();
  const stack = [...roots];
  while (stack.length) {
    const pid = stack.pop() as number;
    if (seen.has(pid)) continue;
    seen.add(pid);
    if (known.has(pid)) out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** Sum of a field over the roots and all their descendants in a process table. */
export function treeSum(table: readonly ProcStat[], roots: readonly number[], field: 'ticks' | 'rss' | 'faults' = 'ticks'): number {
  const byPid = new Map(table.map((p) => [p.pid, p]));
  return treePids(table, roots).reduce((sum, pid) => sum + (byPid.get(pid)?.[field] ?? 0), 0);
}

/** read()/write()-family syscalls and their bytes (/proc/PID/io: syscr, syscw, rchar, wchar). */
export interface IoCounts { reads: number; writes: number; readBytes: number; writtenBytes: number }

/** Parses /proc/PID/io; undefined when a field is missing. */
export function parseProcIo(text: string): IoCounts | undefined {
  const f = (k: string) => Number(new RegExp(`^${k}:\\s*(\\d+)`, 'm').exec(text)?.[1]);
  const io = { reads: f('syscr'), writes: f('syscw'), readBytes: f('rchar'), writtenBytes: f('wchar') };
  return Object.values(io).every(Number.isFinite) ? io : undefined;
}

function treeIo(roots: readonly number[]): IoCounts | undefined {
  const sum: IoCounts = { reads: 0, writes: 0, readBytes: 0, writtenBytes: 0 };
  for (const pid of treePids(processTable(), roots)) {
    let io: IoCounts | undefined;
    try {
      io = parseProcIo(readFileSync(`/proc/${pid}/io`, 'utf8'));
    } catch {
      /* exited, or not ours to read */
    }
    if (!io) return undefined;
    for (const k of Object.keys(sum) as Array<keyof IoCounts>) sum[k] += io[k];
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

function faults(roots: readonly number[]): number | undefined {
  if (roots.length === 0) return undefined;
  try {
    return treeSum(processTable(), roots, 'faults');
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
 * CPU and wall seconds of a window, the trees' resident memory at its end, their read/write
 * syscalls (io: undefined when /proc/PID/io cannot be read) and minor page faults in it.
 */
export interface MeterResult { cpuSec: number; wallSec: number; rssMB?: number; io?: IoCounts; minorFaults?: number }

/**
 * Brackets a measurement window: CPU seconds of the trees and wall seconds between begin and end.
 * begin() again restarts the window; end() after the first is a no-op.
 */
export class CpuMeter {
  readonly #roots: readonly number[];
  #cpu0: number | undefined;
  #t0 = 0;
  #io0: IoCounts | undefined;
  #faults0: number | undefined;
  #result: MeterResult | undefined;
  constructor(roots: readonly number[]) {
    this.#roots = roots;
  }
  begin(): void {
    this.#faults0 = faults(this.#roots);
    this.#cpu0 = cpuSeconds(this.#roots);
    this.#io0 = this.#roots.length ? treeIo(this.#roots) : undefined;
    this.#t0 = performance.now();
    this.#result = undefined;
  }
  end(): void {
    if (this.#result || this.#cpu0 === undefined) return;
    const cpu1 = cpuSeconds(this.#roots);
    const wallSec = (performance.now() - this.#t0) / 1000;
    const io1 = this.#io0 ? treeIo(this.#roots) : undefined;
    const io0 = this.#io0;
    const io = io0 && io1 ? { reads: io1.reads - io0.reads, writes: io1.writes - io0.writes, readBytes: io1.readBytes - io0.readBytes, writtenBytes: io1.writtenBytes - io0.writtenBytes } : undefined;
    const f1 = faults(this.#roots);
    const minorFaults = f1 !== undefined && this.#faults0 !== undefined ? f1 - this.#faults0 : undefined;
    if (cpu1 !== undefined) this.#result = { cpuSec: Math.max(0, cpu1 - this.#cpu0), wallSec, rssMB: rssMB(this.#roots), io, minorFaults };
  }
  get result(): MeterResult | undefined {
    return this.#result;
  }
}
