/**
 * Line charts as standalone SVG for the soak report (scripts/soak.ts): one series per node,
 * vertical markers where a node was restarted, axes with round ticks. Pure: data in, text out.
 */

export interface Series {
  readonly name: string;
  /** [seconds since the start, value]; NaN values leave a gap. */
  readonly points: ReadonlyArray<readonly [number, number]>;
}

export interface ChartSpec {
  readonly title: string;
  readonly unit: string;
  readonly series: readonly Series[];
  /** Seconds at which something happened (a restart), with a label. */
  readonly markers?: ReadonlyArray<readonly [number, string]>;
  readonly width?: number;
  readonly height?: number;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** 1, 2 or 5 times a power of ten: about `n` ticks over [0, max]. */
export function niceStep(max: number, n = 5): number {
  if (!(max > 0)) return 1;
  const raw = max / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

function fmt(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 1000) return `${Math.round(v / 100) / 10}k`;
  return String(Math.round(v * 100) / 100);
}

export function lineChart(spec: ChartSpec): string {
  const W = spec.width ?? 760;
  const H = spec.height ?? 300;
  const L = 64;
  const R = 130;
  const T = 34;
  const B = 40;
  const pts = spec.series.flatMap((s) => s.points.filter(([, v]) => Number.isFinite(v)));
  const xMax = Math.max(1, ...pts.map(([x]) => x), ...(spec.markers ?? []).map(([x]) => x));
  const yMaxRaw = Math.max(0, ...pts.map(([, y]) => y));
  const yStep = niceStep(yMaxRaw || 1);
  const yMax = Math.max(yStep, Math.ceil(yMaxRaw / yStep) * yStep);
  const xStep = niceStep(xMax / 60, 8) * 60; // ticks on round minutes
  const sx = (x: number): number => L + (x / xMax) * (W - L - R);
  const sy = (y: number): number => H - B - (y / yMax) * (H - T - B);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${L}" y="18" font-size="13" font-weight="bold">${esc(spec.title)}</text>`);
  for (let y = 0; y <= yMax + 1e-9; y += yStep) {
    out.push(`<line x1="${L}" x2="${W - R}" y1="${sy(y).toFixed(1)}" y2="${sy(y).toFixed(1)}" stroke="#eee"/>`);
    out.push(`<text x="${L - 6}" y="${(sy(y) + 4).toFixed(1)}" text-anchor="end" fill="#555">${fmt(y)}</text>`);
  }
  for (let x = 0; x <= xMax + 1e-9; x += xStep) {
    out.push(`<line x1="${sx(x).toFixed(1)}" x2="${sx(x).toFixed(1)}" y1="${H - B}" y2="${H - B + 4}" stroke="#555"/>`);
    out.push(`<text x="${sx(x).toFixed(1)}" y="${H - B + 16}" text-anchor="middle" fill="#555">${fmt(x / 60)}</text>`);
  }
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle" fill="#555">minutes</text>`);
  out.push(`<text x="14" y="${(T + H - B) / 2}" transform="rotate(-90 14 ${(T + H - B) / 2})" text-anchor="middle" fill="#555">${esc(spec.unit)}</text>`);
  out.push(`<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#555"/><line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="#555"/>`);
  for (const [x, label] of spec.markers ?? []) {
    out.push(`<line x1="${sx(x).toFixed(1)}" x2="${sx(x).toFixed(1)}" y1="${T}" y2="${H - B}" stroke="#999" stroke-dasharray="3,3"/>`);
    out.push(`<text x="${(sx(x) + 3).toFixed(1)}" y="${T + 10}" fill="#777" font-size="10">${esc(label)}</text>`);
  }
  spec.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    let d = '';
    let pen = false;
    for (const [x, y] of s.points) {
      if (!Number.isFinite(y)) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)} `;
      pen = true;
    }
    if (d) out.push(`<path d="${d.trim()}" fill="none" stroke="${color}" stroke-width="1.6"/>`);
    out.push(`<rect x="${W - R + 12}" y="${T + i * 18}" width="12" height="3" fill="${color}"/><text x="${W - R + 30}" y="${T + i * 18 + 5}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/** Least-squares slope of y over x (per second); 0 with fewer than two points. */
export function slope(points: ReadonlyArray<readonly [number, number]>): number {
  const ps = points.filter(([, y]) => Number.isFinite(y));
  if (ps.length < 2) return 0;
  const mx = ps.reduce((a, [x]) => a + x, 0) / ps.length;
  const my = ps.reduce((a, [, y]) => a + y, 0) / ps.length;
  let num = 0;
  let den = 0;
  for (const [x, y] of ps) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
