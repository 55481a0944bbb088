// Runs one scenario: every contender once as a warm-up, then the rounds interleaved (A B C A B C …),
// metering each contender's CPU over the load generator's window.
import { CpuMeter } from './cpu.js';
import { buildMetricRows } from './collect.js';
import { formatNumber } from './stats.js';
import { tailLog } from './procs.js';
import { netState } from './netstate.js';
import type { Scenario, PlanCtx, Plan, Measurement } from './scenarios.js';
import type { TandemHandle } from './tandem.js';
import type { ToolSet } from './tools.js';
import { CONTENDERS, type ContenderId, type ScenarioResult } from './types.js';

export interface RunnerCtx extends PlanCtx {
  dir: string;
  tools: ToolSet;
  rounds: number;
  durationSec: number;
  warmupSec: number;
  log: (s: string) => void;
  /** When set, the monotonic-clock windows (µs) of the measured tandem rounds, by contender. */
  profileWindows?: Partial<Record<ContenderId, Array<[number, number]>>>;
  /** Measure only these contenders (--contenders); the others are n/a. */
  contenders?: readonly ContenderId[];
}

export const label = (id: ContenderId) => CONTENDERS.find((c) => c.id === id)?.label ?? id;

const monoUs = () => Number(process.hrtime.bigint() / 1000n);

function routeNote(t: TandemHandle, s: Scenario, plan: Record<ContenderId, Plan>): string[] {
  if (t.status !== 'ok') return [];
  const key = s.id.startsWith('http') || s.id.startsWith('h2') ? 'http' : s.id === 'tcp-bulk' ? 'tcpBulk' : s.id === 'tcp-connrate' ? 'tcpConn' : 'udp';
  const route = t.routes[key];
  const what = key === 'http' ? 'x-bench header' : 'client address';
  const parts: string[] = [];
  for (const id of ['tandem1', 'tandem2'] as const) {
    const p = plan[id];
    if (p.kind === 'run') parts.push(`${label(id)}: ${what} ${key === 'http' ? p.target.header : p.target.local}`);
  }
  if (route?.note) parts.push(route.note);
  return parts.length ? [`tandem flows: ${parts.join('; ')}.`] : [];
}

export async function runScenario(s: Scenario, ctx: RunnerCtx): Promise<ScenarioResult> {
  const { log } = ctx;
  const plan = s.plan(ctx);
  for (const { id } of CONTENDERS) {
    if (ctx.contenders && !ctx.contenders.includes(id) && plan[id].kind !== 'n/a') plan[id] = { kind: 'n/a', reason: 'not selected (--contenders)' };
  }
  const ids = CONTENDERS.map((c) => c.id).filter((id) => plan[id].kind === 'run');
  const samples: Partial<Record<ContenderId, Record<string, number[]>>> = {};
  const failures: Partial<Record<ContenderId, string[]>> = {};
  const runs: Partial<Record<ContenderId, unknown[]>> = {};
  const notes = [...s.notes, ...routeNote(ctx.tandem, s, plan)];
  const measure = async (id: ContenderId, durationSec: number, tag: string, record: boolean) => {
    const p = plan[id];
    if (p.kind !== 'run') throw new Error('not run');
    if (id.startsWith('tandem')) {
      const dead = ctx.tandem.procs.find((x) => x.hasExited());
      if (dead) throw new Error(`${dead.name} exited: ${tailLog(dead.logFile, 2)}`);
    }
    const meter = new CpuMeter(p.pids);
    const profiled = record && ctx.profileWindows && id.startsWith('tandem');
    let t0 = 0;
    const window = {
      begin: () => {
        meter.begin();
        t0 = monoUs();
      },
      end: () => {
        meter.end();
        if (profiled && t0 && ctx.profileWindows) (ctx.profileWindows[id] ??= []).push([t0, monoUs()]);
        t0 = 0;
      },
    };
    const m: Measurement = await s.measure(p.target, { durationSec, dir: ctx.dir, tools: ctx.tools, tag, window });
    const cpu = meter.result;
    if (cpu && p.pids.length && m.work && m.work > 0) {
      m.figures.cpuPerUnit = (cpu.cpuSec * 1e6) / m.work;
      m.figures.cpuPct = (100 * cpu.cpuSec) / cpu.wallSec;
    }
    return { ...m, cpu };
  };
  log(`\n== ${s.title} (${s.id}) — ${ids.map(label).join(', ')}`);
  const warmFailed = new Set<ContenderId>();
  for (const id of ids) {
    try {
      await measure(id, ctx.warmupSec, `${s.id}-${id}-warmup`, false);
    } catch (e) {
      warmFailed.add(id);
      log(`   warm-up ${label(id)}: failed: ${(e as Error).message}`);
    }
  }
  const headline = s.metrics.find((m) => m.headline) ?? s.metrics[0];
  const cpuUnit = s.metrics.find((m) => m.key === 'cpuPerUnit')?.unit ?? '';
  for (let r = 0; r < ctx.rounds; r++) {
    for (const id of ids) {
      const f = (failures[id] ??= []);
      const list = (runs[id] ??= []);
      if (warmFailed.has(id) && f.length > 0 && r > 0) {
        list.push({ round: r + 1, skipped: 'failed in warm-up and round 1' });
        continue;
      }
      try {
        const net = s.id === 'tcp-bulk' ? netState() : undefined;
        const m = await measure(id, ctx.durationSec, `${s.id}-${id}-${r + 1}`, true);
        const per = (samples[id] ??= {});
        for (const k of s.metrics) (per[k.key] ??= []).push(m.figures[k.key] ?? NaN);
        list.push({ round: r + 1, figures: m.figures, raw: m.raw, cpu: m.cpu, work: m.work, net, warning: m.warning });
        if (m.warning) notes.push(`${label(id)}, round ${r + 1}: ${m.warning}`);
        const cpu = m.figures.cpuPerUnit === undefined ? '' : `, ${formatNumber(m.figures.cpuPerUnit)} ${cpuUnit} at ${formatNumber(m.figures.cpuPct)}% CPU`;
        log(`   round ${r + 1} ${label(id).padEnd(15)} ${formatNumber(m.figures[headline.key])} ${headline.unit}${cpu}${m.warning ? ` (${m.warning})` : ''}`);
      } catch (e) {
        const msg = (e as Error).message;
        f.push(msg);
        list.push({ round: r + 1, error: msg });
        log(`   round ${r + 1} ${label(id).padEnd(15)} failed: ${msg}`);
      }
    }
  }
  return { id: s.id, title: s.title, short: s.short, notes, metrics: buildMetricRows(s.metrics, plan, samples, failures), runs };
}
