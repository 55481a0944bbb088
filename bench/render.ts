// Re-renders bench/results/latest.md and latest.svg from a JSON report without measuring again:
// node --import tsx bench/render.ts [bench/results/latest.json]
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { BenchReport } from './lib/types.js';
import { RESULTS_DIR, writeReports } from './lib/report.js';

const file = process.argv[2] ?? `${RESULTS_DIR}latest.json`;
const report = JSON.parse(readFileSync(file, 'utf8')) as BenchReport;
const out = writeReports(report, dirname(file));
process.stdout.write(`${out.markdown}\nwrote ${out.md} and ${out.svg}\n`);
