/**
 * Traffic history and the small per-node charts: SVG drawn by the page, no library. Each node's
 * chart spans the same window and shares one vertical scale, so nodes compare at a glance.
 */
import { h, svg, setText } from './dom.js';
import { rate } from './format.js';

export const WINDOW_MS = 5 * 60_000;
const W = 300;
const H = 60;

interface Point {
  readonly at: number;
  /** Communications per second; null while the node was dead or not sampled (a gap). */
  readonly v: number | null;
}

export class TrafficHistory {
  readonly #points = new Map<string, Point[]>();

  push(id: string, at: number, v: number | null): void {
    let p = this.#points.get(id);
    if (!p) this.#points.set(id, (p = []));
    p.push({ at, v });
    while (p.length > 0 && p[0].at < at - WINDOW_MS) p.shift();
  }

  points(id: string): readonly Point[] {
    return this.#points.get(id) ?? [];
  }

  /** A rounded scale top over every node's window: 1, 2, 5 × 10^n. */
  scaleMax(): number {
    let max = 0;
    for (const p of this.#points.values()) for (const x of p) if (x.v !== null && x.v > max) max = x.v;
    if (max <= 1) return 1;
    const e = 10 ** Math.floor(Math.log10(max));
    for (const m of [1, 2, 5, 10]) if (max <= m * e) return m * e;
    return 10 * e;
  }
}

/** One node's chart: an SVG and its labels, redrawn in place. */
export class NodeChart {
  readonly el: HTMLElement;
  readonly #area: SVGPathElement;
  readonly #line: SVGPathElement;
  readonly #top: HTMLElement;

  constructor(label: string) {
    this.#area = svg('path', { class: 'chart-area' });
    this.#line = svg('path', { class: 'chart-line' });
    const grid = svg('path', { class: 'chart-grid', d: `M0 2 H${W} M0 ${H / 2 + 1} H${W} M0 ${H - 0.5} H${W}` });
    const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': label }, grid, this.#area, this.#line);
    this.#top = h('span', { class: 'chart-max' });
    this.el = h('div', { class: 'chart' }, h('div', { class: 'chart-head' }, h('span', {}, 'traffic, last 5 min'), this.#top), s);
  }

  draw(points: readonly Point[], now: number, max: number): void {
    setText(this.#top, `${rate(max)}/s`);
    const x = (at: number) => ((at - (now - WINDOW_MS)) / WINDOW_MS) * W;
    const y = (v: number) => H - (Math.min(v, max) / max) * (H - 2);
    let line = '';
    let area = '';
    let run: Array<[number, number]> = [];
    const flush = () => {
      if (run.length === 0) return;
      line += run.map(([px, py], i) => `${i === 0 ? 'M' : 'L'}${px.toFixed(1)} ${py.toFixed(1)}`).join('');
      const first = run[0];
      const last = run[run.length - 1];
      area += `M${first[0].toFixed(1)} ${H}` + run.map(([px, py]) => `L${px.toFixed(1)} ${py.toFixed(1)}`).join('') + `L${last[0].toFixed(1)} ${H}Z`;
      run = [];
    };
    for (const p of points) {
      if (p.v === null) flush();
      else run.push([x(p.at), y(p.v)]);
    }
    flush();
    this.#line.setAttribute('d', line || 'M0 0');
    this.#area.setAttribute('d', area || 'M0 0');
  }
}
