// The chart: for each scenario's headline figure, tandem's ratio to the best peer (HAProxy or
// NGINX), 1 hop and 2 hops side by side, with the 1.0 line marked. Hand-written SVG.
import type { BenchReport, MetricRow } from './types.js';
import { formatNumber } from './stats.js';

export interface ChartBar { label: string; ratio?: number; note?: string }
export interface ChartGroup { title: string; subtitle: string[]; bars: ChartBar[] }

const PEERS = [
  { id: 'haproxy', label: 'HAProxy' },
  { id: 'nginx', label: 'NGINX' },
] as const;

/** Best peer of a row: the highest value (or lowest, for lower-is-better figures). */
export function bestPeer(row: MetricRow): { label: string; value: number } | undefined {
  let best: { label: string; value: number } | undefined;
  for (const p of PEERS) {
    const c = row.cells[p.id];
    if (c.status !== 'ok' || c.value === undefined) continue;
    const better = !best || (row.better === 'higher' ? c.value > best.value : c.value < best.value);
    if (better) best = { label: p.label, value: c.value };
  }
  return best;
}

/** tandem's ratio to the best peer, oriented so that above 1 is always better for tandem. */
export function chartGroups(r: BenchReport): ChartGroup[] {
  const groups: ChartGroup[] = [];
  for (const s of r.scenarios) {
    const row = s.metrics.find((m) => m.headline);
    if (!row) continue;
    const best = bestPeer(row);
    const bars: ChartBar[] = (['tandem1', 'tandem2'] as const).map((id) => {
      const label = id === 'tandem1' ? '1 hop' : '2 hops';
      const c = row.cells[id];
      if (c.status !== 'ok' || c.value === undefined) return { label, note: c.status };
      if (!best) return { label, note: 'no peer' };
      const ratio = row.better === 'higher' ? c.value / best.value : best.value / c.value;
      return { label, ratio };
    });
    const subtitle = best ? [`best peer: ${best.label}`, `${formatNumber(best.value)} ${row.unit}`] : ['no peer measured'];
    groups.push({ title: s.short ?? s.title, subtitle, bars });
  }
  return groups;
}

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function renderSvg(r: BenchReport): string {
  const groups = chartGroups(r);
  const W = Math.max(820, 160 * groups.length + 100);
  const H = 460;
  const left = 70;
  const right = 30;
  const top = 80;
  const bottom = 110;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const maxRatio = Math.max(1.25, ...groups.flatMap((g) => g.bars.map((b) => b.ratio ?? 0)));
  const yMax = Math.ceil(maxRatio * 1.1 * 4) / 4;
  const y = (v: number) => top + plotH - (v / yMax) * plotH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="28" text-anchor="middle" font-size="18" font-weight="bold">tandem ÷ best peer (HAProxy or NGINX), higher is better</text>`);
  const mode = r.meta.quick ? 'quick run' : 'full run';
  out.push(`<text x="${W / 2}" y="50" text-anchor="middle" font-size="12" fill="#555">${xml(`${r.meta.startedAt} · ${mode} · median of ${r.meta.rounds} round(s) · headline figure of each scenario`)}</text>`);
  // Axis and grid.
  const step = yMax > 2.5 ? 0.5 : 0.25;
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    out.push(`<line x1="${left}" y1="${y(v).toFixed(1)}" x2="${W - right}" y2="${y(v).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${left - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" font-size="11" fill="#444">${v.toFixed(2)}</text>`);
  }
  out.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#333"/>`);
  out.push(`<line x1="${left}" y1="${top + plotH}" x2="${W - right}" y2="${top + plotH}" stroke="#333"/>`);
  const colors = ['#2b6cb0', '#7fb3e6'];
  const gw = groups.length ? plotW / groups.length : plotW;
  const bw = Math.min(48, gw * 0.3);
  groups.forEach((g, gi) => {
    const cx = left + gw * gi + gw / 2;
    g.bars.forEach((b, bi) => {
      const x = cx + (bi === 0 ? -bw - 3 : 3);
      if (b.ratio !== undefined) {
        const yy = y(Math.min(b.ratio, yMax));
        out.push(`<rect x="${x.toFixed(1)}" y="${yy.toFixed(1)}" width="${bw.toFixed(1)}" height="${(top + plotH - yy).toFixed(1)}" fill="${colors[bi]}"><title>${xml(`${g.title}, tandem ${b.label}: ${b.ratio.toFixed(2)}× best peer`)}</title></rect>`);
        out.push(`<text x="${(x + bw / 2).toFixed(1)}" y="${(yy - 5).toFixed(1)}" text-anchor="middle" font-size="11">${b.ratio.toFixed(2)}</text>`);
      } else {
        const yy = top + plotH - 6;
        out.push(`<rect x="${x.toFixed(1)}" y="${(top + plotH - 70).toFixed(1)}" width="${bw.toFixed(1)}" height="70" fill="none" stroke="#aaa" stroke-dasharray="3 3"/>`);
        out.push(`<text transform="translate(${(x + bw / 2 + 4).toFixed(1)} ${yy.toFixed(1)}) rotate(-90)" font-size="10" fill="#888">${xml(b.note ?? 'unavailable')}</text>`);
      }
      out.push(`<text x="${(x + bw / 2).toFixed(1)}" y="${top + plotH + 14}" text-anchor="middle" font-size="10" fill="#333">${xml(b.label)}</text>`);
    });
    out.push(`<text x="${cx.toFixed(1)}" y="${top + plotH + 34}" text-anchor="middle" font-size="12" font-weight="bold">${xml(g.title)}</text>`);
    g.subtitle.forEach((line, li) => {
      out.push(`<text x="${cx.toFixed(1)}" y="${top + plotH + 50 + 13 * li}" text-anchor="middle" font-size="10" fill="#555">${xml(line)}</text>`);
    });
  });
  // The 1.0 line: parity with the best peer.
  out.push(`<line x1="${left}" y1="${y(1).toFixed(1)}" x2="${W - right}" y2="${y(1).toFixed(1)}" stroke="#c53030" stroke-width="2" stroke-dasharray="8 4"/>`);
  out.push(`<text x="${W - right - 4}" y="${(y(1) - 6).toFixed(1)}" text-anchor="end" font-size="11" fill="#c53030">1.0 = best peer</text>`);
  // Legend.
  const ly = H - 18;
  out.push(`<rect x="${left}" y="${ly - 10}" width="12" height="12" fill="${colors[0]}"/><text x="${left + 18}" y="${ly}" font-size="12">tandem, 1 hop (receiving node is primary)</text>`);
  out.push(`<rect x="${left + 320}" y="${ly - 10}" width="12" height="12" fill="${colors[1]}"/><text x="${left + 338}" y="${ly}" font-size="12">tandem, 2 hops (forwarded to the primary)</text>`);
  if (groups.length === 0) out.push(`<text x="${W / 2}" y="${top + plotH / 2}" text-anchor="middle" font-size="14" fill="#888">no scenario measured</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
