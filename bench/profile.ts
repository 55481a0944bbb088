// Prints the top self-time functions of the CPU profiles a `npm run bench -- --cpu-prof SCENARIO`
// run wrote: node --import tsx bench/profile.ts [DIR] [--top N]
// DIR defaults to every bench/results/profiles/<scenario>/ there is.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { summarizeDir } from './lib/profile-io.js';
import { formatProfile } from './lib/cpuprofile.js';
import { RESULTS_DIR } from './lib/report.js';

const ROOT = new URL('../', import.meta.url).pathname;
const args = process.argv.slice(2);
const topAt = args.indexOf('--top');
const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) || 15 : 15;
const base = join(RESULTS_DIR, 'profiles');
const dirs = args.length ? args : existsSync(base) ? readdirSync(base).map((d) => join(base, d)).filter((d) => statSync(d).isDirectory()) : [];
if (dirs.length === 0) {
  process.stderr.write('no profiles: run `npm run bench -- --only SCENARIO --cpu-prof SCENARIO` first\n');
  process.exit(1);
}
for (const dir of dirs) {
  const sums = summarizeDir(dir, basename(dir), ROOT, top);
  if (sums.length === 0) process.stdout.write(`${dir}: no .cpuprofile\n`);
  for (const s of sums) process.stdout.write(`${formatProfile(s, top).join('\n')}\n\n`);
}
