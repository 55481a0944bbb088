/**
 * Holding a process to a small share of one core, for the slow-peer test: a CPU cgroup with a
 * CFS quota (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us`), which needs root and a writable
 * cgroup tree; elsewhere SIGSTOP/SIGCONT in a fixed duty cycle (the same share, in coarser
 * slices). Always call restore() (the test's `after`): the process gets its core back and the
 * cgroup is removed.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Throttle {
  /** How the share is enforced, for the report. */
  readonly how: string;
  restore(): void;
}

const PERIOD_US = 100_000;

function tryCgroup(pid: number, share: number): Throttle | null {
  const quota = Math.max(1000, Math.round(PERIOD_US * share));
  const name = `tandem-test-${process.pid}-${pid}`;
  // cgroup v2: a child of the root with the cpu controller enabled there.
  const v2 = '/sys/fs/cgroup';
  const v2ok = existsSync(join(v2, 'cgroup.controllers')) && readFileSync(join(v2, 'cgroup.subtree_control'), 'utf8').split(/\s+/).includes('cpu');
  const v1 = '/sys/fs/cgroup/cpu';
  const v1ok = !v2ok && existsSync(join(v1, 'cpu.cfs_quota_us'));
  if (!v2ok && !v1ok) return null;
  const root = v2ok ? v2 : v1;
  const dir = join(root, name);
  try {
    mkdirSync(dir);
    if (v2ok) writeFileSync(join(dir, 'cpu.max'), `${quota} ${PERIOD_US}`);
    else {
      writeFileSync(join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quota));
    }
    writeFileSync(join(dir, 'cgroup.procs'), String(pid));
  } catch {
    try {
      rmdirSync(dir);
    } catch {
      /* not made */
    }
    return null;
  }
  return {
    how: `cgroup ${v2ok ? 'v2 cpu.max' : 'v1 cpu.cfs_quota_us'} ${quota}/${PERIOD_US} µs`,
    restore: () => {
      try {
        writeFileSync(join(root, 'cgroup.procs'), String(pid));
      } catch {
        /* the process is gone */
      }
      try {
        rmdirSync(dir);
      } catch {
        /* still busy or gone */
      }
    },
  };
}

/** Holds `pid` to `share` (0..1) of one core. */
export function throttle(pid: number, share: number): Throttle {
  const cg = process.getuid?.() === 0 ? tryCgroup(pid, share) : null;
  if (cg !== null) return cg;
  // SIGSTOP/SIGCONT: running `share` of every 200 ms.
  const cycle = 200;
  const run = Math.max(5, Math.round(cycle * share));
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  const step = (): void => {
    try {
      process.kill(pid, stopped ? 'SIGCONT' : 'SIGSTOP');
    } catch {
      return; // the process is gone
    }
    stopped = !stopped;
    timer = setTimeout(step, stopped ? cycle - run : run);
  };
  step();
  return {
    how: `SIGSTOP/SIGCONT, running ${run} ms of every ${cycle} ms (no writable cpu cgroup here)`,
    restore: () => {
      if (timer !== null) clearTimeout(timer);
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* gone */
      }
    },
  };
}
