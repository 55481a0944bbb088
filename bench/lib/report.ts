// Writes bench/results/latest.{md,json,svg}.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchReport } from './types.js';
import { renderMarkdown } from './report-md.js';
import { renderSvg } from './report-svg.js';

export const RESULTS_DIR = new URL('../results/', import.meta.url).pathname;

export function writeReports(r: BenchReport, dir = RESULTS_DIR): { md: string; json: string; svg: string; markdown: string } {
  mkdirSync(dir, { recursive: true });
  const markdown = renderMarkdown(r);
  const md = join(dir, 'latest.md');
  const json = join(dir, 'latest.json');
  const svg = join(dir, 'latest.svg');
  writeFileSync(md, markdown);
  writeFileSync(json, `${JSON.stringify(r, null, 2)}\n`);
  writeFileSync(svg, renderSvg(r));
  return { md, json, svg, markdown };
}
