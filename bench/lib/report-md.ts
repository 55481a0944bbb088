// The markdown report: one table for the network scenarios, one for the micro-benchmarks.
import type { BenchReport, Cell, ContenderId, MetricRow } from './types.js';
import { CONTENDERS } from './types.js';
import { formatNumber, ratio } from './stats.js';
import { microRows, figureLabel } from './micro-rows.js';

const RATIO_PEERS: ReadonlyArray<{ id: ContenderId; label: string }> = [
  { id: 'haproxy', label: 'tandem/HAProxy' },
  { id: 'nginx', label: 'tandem/NGINX' },
  { id: 'direct', label: 'tandem/direct' },
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

function cellText(c: Cell, notes: Notes): string {
  if (c.status === 'ok') return formatNumber(c.value);
  const n = notes.ref(`${c.status}: ${c.reason ?? 'no reason given'}`);
  return `${c.status} [${n}]`;
}

export function ratioOf(row: MetricRow, peer: ContenderId): number | undefined {
  const t = row.cells.tandem1;
  const p = row.cells[peer];
  return ratio(t.status === 'ok' ? t.value : undefined, p.status === 'ok' ? p.value : undefined);
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
      `figures are medians over the rounds. Host: ${m.host.cpus} CPUs, Node ${m.host.node}, ${m.host.kernel}, ` +
      `load average ${m.host.loadAtStart ? `${m.host.loadAtStart[0].toFixed(2)} at the start, ` : ''}${m.host.load[0].toFixed(2)} at the end.`,
    '',
    ...(busy(m) ? [`> **Warning:** the machine was busy when the bench started (load average ${m.host.loadAtStart?.[0].toFixed(2)} on ${m.host.cpus} CPUs): other work competed for the CPUs, so these figures swing and compare badly.`, ''] : []),
    `Pinning: ${m.pinning}. Tools: ${tools || 'none'}.`,
    '',
    `tandem: ${m.tandem.status === 'ok' ? 'running (2-node cluster)' : `unavailable: ${m.tandem.reason ?? ''}`}.`,
    '',
  );
  if (r.scenarios.length) {
    const head = ['scenario', 'metric', ...CONTENDERS.map((c) => c.label), ...RATIO_PEERS.map((p) => p.label)];
    lines.push(`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`);
    for (const s of r.scenarios) {
      s.metrics.forEach((row, i) => {
        const arrow = row.better === 'higher' ? '↑' : '↓';
        const cols = [i === 0 ? `**${esc(s.title)}**` : '', `${esc(row.metric)} (${row.unit}) ${arrow}`];
        for (const c of CONTENDERS) cols.push(esc(cellText(row.cells[c.id], notes)));
        for (const p of RATIO_PEERS) cols.push(formatRatio(ratioOf(row, p.id)));
        lines.push(`| ${cols.join(' | ')} |`);
      });
    }
    lines.push('', '↑ higher is better, ↓ lower is better. Ratios compare tandem 1 hop with each column: above 1.00 means more of the figure than that contender.', '');
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
  lines.push('How to read these figures: bench/README.md. Every figure: bench/results/latest.json. Chart: bench/results/latest.svg.', '');
  return lines.join('\n');
}
