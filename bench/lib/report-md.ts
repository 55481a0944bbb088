// The markdown report: one table for the network scenarios, one for the micro-benchmarks.
import type { BenchReport, Cell, ContenderId, MetricRow, ProfileGroup, ProfileSummary } from './types.js';
import { CONTENDERS } from './types.js';
import { formatNumber, ratio } from './stats.js';
import { microRows, figureLabel } from './micro-rows.js';
import { checkAims } from './acceptance.js';
import { GROUP_LABELS } from './cpuprofile.js';

/** The ratio columns: num ÷ den of the same row. */
export const RATIOS: ReadonlyArray<{ num: ContenderId; den: ContenderId; label: string }> = [
  { num: 'tandem1', den: 'naive', label: 'tandem/naive Node' },
  { num: 'tandem2', den: 'tandem1', label: 'tandem 2 hops/1 hop' },
  { num: 'haproxy2', den: 'haproxy', label: 'HAProxy chained/HAProxy' },
  { num: 'tandem1', den: 'haproxy', label: 'tandem/HAProxy' },
  { num: 'tandem1', den: 'nginx', label: 'tandem/NGINX' },
  { num: 'tandem1', den: 'direct', label: 'tandem/direct' },
];

const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function formatRatio(r: number | undefined): string {
  return r === undefined ? '—' : `${r.toFixed(2)}×`;
}

/** Footnotes for unavailable / n/a reasons, numbered in order of first use, deduplicated. */
class Notes {
  readonly list: string[] = [];
  ref(text: string): number {
    const i = this.list.indexOf(text);
    if (i >= 0) return i + 1;
    this.list.push(text);
    return this.list.length;
  }
}

function cellText(c: Cell | undefined, notes: Notes): string {
  if (!c) return '—'; // a contender added after this report was written
  if (c.status === 'ok') return formatNumber(c.value);
  const n = notes.ref(`${c.status}: ${c.reason ?? 'no reason given'}`);
  return `${c.status} [${n}]`;
}

/** row[num] ÷ row[den] when both were measured (num defaults to tandem 1 hop). */
export function ratioOf(row: MetricRow, den: ContenderId, num: ContenderId = 'tandem1'): number | undefined {
  const a = row.cells[num];
  const b = row.cells[den];
  return ratio(a?.status === 'ok' ? a.value : undefined, b?.status === 'ok' ? b.value : undefined);
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function profileLines(profiles: readonly ProfileSummary[]): string[] {
  if (profiles.length === 0) return [];
  const lines = [`## CPU profile of tandem (--cpu-prof ${profiles[0].scenario})`, '',
    'Self time by function in the measured rounds (1 hop and 2 hops), as shares of the node\'s busy samples; idle samples left out.', ''];
  for (const p of profiles) {
    const groups = (Object.keys(GROUP_LABELS) as ProfileGroup[]).filter((g) => p.groups[g] > 0).map((g) => `${GROUP_LABELS[g]} ${pct(p.groups[g])}`);
    lines.push(`**${esc(p.node)}**: ${formatNumber(p.busyMs)} ms of CPU${p.windowed ? '' : ' (whole profile: the windows did not match)'}, idle ${pct(p.idleShare)}; ${esc(groups.join(' · '))}. File: \`${esc(p.file)}\`.`, '');
    lines.push('| self | group | function | where |', '|---:|---|---|---|');
    for (const f of p.top.slice(0, 15)) lines.push(`| ${pct(f.share)} | ${f.group} | ${esc(f.name)} | ${esc(f.where)} |`);
    lines.push('');
  }
  return lines;
}

function acceptanceLines(r: BenchReport): string[] {
  if (r.scenarios.length === 0) return [];
  const checks = checkAims(r);
  const met = checks.filter((c) => c.status === 'met').length;
  const lines = [`## Acceptance: ${met} of ${checks.length} aims met`, ''];
  if (r.meta.quick || busy(r.meta)) lines.push(`(${r.meta.quick ? 'A quick run' : 'A busy machine'}: these checks show the bench works; judge the aims on a full run on an idle machine.)`, '');
  for (const c of checks) lines.push(`- [${c.status === 'met' ? 'x' : ' '}] **${c.status}** — ${esc(c.aim)}: ${esc(c.detail)}`);
  lines.push('');
  return lines;
}

function nodeLine(m: BenchReport['meta']): string {
  const n = m.contenderNode;
  const node = n ? `Node ${n.version} (V8 ${n.v8}, ${n.path})` : `Node ${m.host.node}`;
  return `${node} runs tandem, the naive Node proxy and the micro-benchmarks.`;
}

/**
 * Was the machine loaded by something else? The 1-minute load average before the bench started
 * anything, above half the CPUs. (The load at the end is mostly the bench's own.)
 */
export function busy(m: BenchReport['meta']): boolean {
  return (m.host.loadAtStart?.[0] ?? 0) > m.host.cpus / 2;
}

export function renderMarkdown(r: BenchReport): string {
  const m = r.meta;
  const notes = new Notes();
  const lines: string[] = [];
  lines.push(`# tandem benchmark — ${m.startedAt}${m.commit ? ` — commit ${m.commit}` : ''}`, '');
  const mode = m.quick ? 'quick' : 'full';
  const tools = Object.values(m.tools).filter(Boolean).join(' · ');
  lines.push(
    `Mode: **${mode}** — ${m.rounds} round(s) of ${m.durationSec} s per contender, interleaved, after a ${m.warmupSec} s warm-up; ` +
      `figures are medians over the rounds. Host: ${m.host.cpus} CPUs${m.host.cpuModel ? ` (${m.host.cpuModel})` : ''}, kernel ${m.host.kernel}, ` +
      `load average ${m.host.loadAtStart ? `${m.host.loadAtStart[0].toFixed(2)} at the start, ` : ''}${m.host.load[0].toFixed(2)} at the end.`,
    '',
    ...(busy(m) ? [`> **Warning:** the machine was busy when the bench started (load average ${m.host.loadAtStart?.[0].toFixed(2)} on ${m.host.cpus} CPUs): other work competed for the CPUs, so these figures swing and compare badly.`, ''] : []),
    `${nodeLine(m)} Pinning: ${m.pinning}. Tools: ${tools || 'none'}.`,
    '',
    ...(m.restart === undefined ? [] : [m.restart
      ? 'Every scenario starts fresh proxies (HAProxy, NGINX, the naive Node proxy, tandem); the backend runs all along.'
      : 'One set of proxies served the whole run (--no-restart): a scenario finds them in the state the earlier ones left.', '']),
    ...(m.cpuProf ? [`> tandem ran under the V8 profiler (--cpu-prof ${m.cpuProf}) ${m.restart === false ? `from the start of the run to the end of ${m.cpuProf}: its figures up to there` : `in ${m.cpuProf}: its figures there`} are slowed by the profiler.`, ''] : []),
    `tandem: ${m.tandem.status === 'ok' ? 'running (2-node cluster)' : `unavailable: ${m.tandem.reason ?? ''}`}` +
      `${m.tandem.nodeArgs?.length ? `; node flags: \`${m.tandem.nodeArgs.join(' ')}\`` : ''}.`,
    '',
  );
  if (r.scenarios.length) {
    const head = ['scenario', 'metric', ...CONTENDERS.map((c) => c.label), ...RATIOS.map((p) => p.label)];
    lines.push(`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`);
    for (const s of r.scenarios) {
      s.metrics.forEach((row, i) => {
        const arrow = row.better === 'higher' ? ' ↑' : row.better === 'lower' ? ' ↓' : '';
        const cols = [i === 0 ? `**${esc(s.title)}**` : '', `${esc(row.metric)} (${row.unit})${arrow}`];
        for (const c of CONTENDERS) cols.push(esc(cellText(row.cells[c.id], notes)));
        for (const p of RATIOS) cols.push(row.better === 'none' ? '' : formatRatio(ratioOf(row, p.den, p.num)));
        lines.push(`| ${cols.join(' | ')} |`);
      });
    }
    lines.push('', '↑ higher is better, ↓ lower is better. A ratio is the first-named column ÷ the second, on that row: above 1.00 means more of the figure. ' +
      'CPU per unit: CPU time (user + system) of all the contender\'s processes during the load, ÷ the work done; CPU used: that time ÷ the wall time, in % of one core.', '');
    lines.push(...acceptanceLines(r));
  }
  const extra: string[] = [];
  for (const s of r.scenarios) for (const n of s.notes) extra.push(`- ${esc(s.title)}: ${n}`);
  if (notes.list.length || extra.length) {
    lines.push('Notes:', '');
    notes.list.forEach((n, i) => lines.push(`- [${i + 1}] ${n}`));
    lines.push(...extra, '');
  }
  if (r.micro.length) {
    lines.push('## Micro-benchmarks (tandem alone, one process)', '', '| benchmark | figure | value |', '|---|---|---:|');
    for (const mr of r.micro) {
      if (mr.status !== 'ok') {
        lines.push(`| ${mr.name} | — | unavailable: ${esc(mr.reason ?? '')} |`);
        continue;
      }
      const rows = microRows(mr);
      if (rows.length === 0) lines.push(`| ${mr.name} | — | no numeric figure |`);
      for (const row of rows) lines.push(`| ${esc(row.benchmark)} | ${esc(figureLabel(row.figure))} | ${formatNumber(row.value)} |`);
    }
    lines.push('');
  }
  lines.push(...profileLines(r.profiles ?? []));
  lines.push('How to read these figures: bench/README.md. Every figure: bench/results/latest.json. Chart: bench/results/latest.svg.', '');
  return lines.join('\n');
}
