// tandem's benchmark suite: `npm run bench [-- --quick] [-- --only SCENARIO[,SCENARIO…]]`.
// Starts a shared backend, HAProxy, NGINX and a 2-node tandem cluster on loopback, measures each
// scenario for every contender in interleaved rounds, and writes bench/results/latest.{md,json,svg}.
// It installs nothing; missing tools → one message and exit code 2. See bench/README.md.
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir, cpus, release, loadavg } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { SCENARIOS, type Scenario, type PlanCtx, type Plan } from './lib/scenarios.js';
import { findTools, missingTools, missingMessage, type ToolSet } from './lib/tools.js';
import { installCleanupHandlers, pinning, stopAll, tailLog } from './lib/procs.js';
import { startBackend, startHaproxy, startNginxPeer } from './lib/contenders.js';
import { startTandem, tandemUnavailable, ROOT, type TandemHandle } from './lib/tandem.js';
import { runMicro } from './lib/micro.js';
import { buildMetricRows } from './lib/collect.js';
import { writeReports } from './lib/report.js';
import { formatNumber } from './lib/stats.js';
import { CONTENDERS, type BenchReport, type ContenderId, type ScenarioResult } from './lib/types.js';

interface Options { quick: boolean; only: string[] | null; rounds: number; durationSec: number; warmupSec: number; pin: boolean }

const USAGE = `usage: npm run bench -- [--quick] [--only ID[,ID…]] [--rounds N] [--duration SEC] [--warmup SEC] [--no-pin]
  scenarios: ${SCENARIOS.map((s) => s.id).join(', ')}, micro
  --quick: ${'1 round of 2 s (about a minute); default: 5 rounds of 5 s'}`;

function parseCli(argv: string[]): Options {
  const o: Options = { quick: false, only: null, rounds: 0, durationSec: 0, warmupSec: -1, pin: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const pos = (v: string) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${a}: expected a positive number, got ${v}`);
      return n;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--only') o.only = [...(o.only ?? []), ...val().split(',').map((s) => s.trim()).filter(Boolean)];
    else if (a === '--rounds') o.rounds = Math.round(pos(val()));
    else if (a === '--duration') o.durationSec = Math.max(1, Math.round(pos(val())));
    else if (a === '--warmup') o.warmupSec = Math.max(1, Math.round(pos(val())));
    else if (a === '--no-pin') o.pin = false;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  o.rounds ||= o.quick ? 1 : 5;
  o.durationSec ||= o.quick ? 2 : 5;
  if (o.warmupSec < 0) o.warmupSec = o.quick ? 1 : 2;
  const known = new Set([...SCENARIOS.map((s) => s.id), 'micro']);
  const bad = (o.only ?? []).filter((id) => !known.has(id));
  if (bad.length) throw new Error(`unknown scenario ${bad.join(', ')} (known: ${[...known].join(', ')})`);
  return o;
}

const log = (s: string) => process.stderr.write(`${s}\n`);

function newestMtime(dir: string): number {
  let t = 0;
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      t = Math.max(t, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
    }
  } catch {
    /* missing */
  }
  return t;
}

function gitCommit(): string | undefined {
  const git = (args: string[]) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8', timeout: 5000 });
  const head = git(['rev-parse', '--short', 'HEAD']);
  if (head.status !== 0) return undefined;
  const dirty = git(['status', '--porcelain', '--untracked-files=no']).stdout?.trim();
  return `${head.stdout.trim()}${dirty ? '-dirty' : ''}`;
}

interface Ctx extends PlanCtx { dir: string; tools: ToolSet; opts: Options }

const label = (id: ContenderId) => CONTENDERS.find((c) => c.id === id)?.label ?? id;

function routeNote(t: TandemHandle, s: Scenario, plan: Record<ContenderId, Plan>): string[] {
  if (t.status !== 'ok') return [];
  const key = s.id.startsWith('http') ? 'http' : s.id === 'tcp-bulk' ? 'tcpBulk' : s.id === 'tcp-connrate' ? 'tcpConn' : 'udp';
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

async function runScenario(s: Scenario, ctx: Ctx): Promise<ScenarioResult> {
  const { opts } = ctx;
  const plan = s.plan(ctx);
  const ids = CONTENDERS.map((c) => c.id).filter((id) => plan[id].kind === 'run');
  const samples: Partial<Record<ContenderId, Record<string, number[]>>> = {};
  const failures: Partial<Record<ContenderId, string[]>> = {};
  const runs: Partial<Record<ContenderId, unknown[]>> = {};
  const notes = [...s.notes, ...routeNote(ctx.tandem, s, plan)];
  const measure = async (id: ContenderId, durationSec: number, tag: string) => {
    const p = plan[id];
    if (p.kind !== 'run') throw new Error('not run');
    if (id.startsWith('tandem')) {
      const dead = ctx.tandem.procs.find((x) => x.hasExited());
      if (dead) throw new Error(`${dead.name} exited: ${tailLog(dead.logFile, 2)}`);
    }
    return s.measure(p.target, { durationSec, dir: ctx.dir, tools: ctx.tools, tag });
  };
  log(`\n== ${s.title} (${s.id}) — ${ids.map(label).join(', ')}`);
  const warmFailed = new Set<ContenderId>();
  for (const id of ids) {
    try {
      await measure(id, opts.warmupSec, `${s.id}-${id}-warmup`);
    } catch (e) {
      warmFailed.add(id);
      log(`   warm-up ${label(id)}: failed: ${(e as Error).message}`);
    }
  }
  const headline = s.metrics.find((m) => m.headline) ?? s.metrics[0];
  for (let r = 0; r < opts.rounds; r++) {
    for (const id of ids) {
      const f = (failures[id] ??= []);
      const list = (runs[id] ??= []);
      if (warmFailed.has(id) && f.length > 0 && r > 0) {
        list.push({ round: r + 1, skipped: 'failed in warm-up and round 1' });
        continue;
      }
      try {
        const m = await measure(id, opts.durationSec, `${s.id}-${id}-${r + 1}`);
        const per = (samples[id] ??= {});
        for (const k of s.metrics) (per[k.key] ??= []).push(m.figures[k.key] ?? NaN);
        list.push({ round: r + 1, figures: m.figures, raw: m.raw, warning: m.warning });
        if (m.warning) notes.push(`${label(id)}, round ${r + 1}: ${m.warning}`);
        log(`   round ${r + 1} ${label(id).padEnd(14)} ${formatNumber(m.figures[headline.key])} ${headline.unit}${m.warning ? ` (${m.warning})` : ''}`);
      } catch (e) {
        const msg = (e as Error).message;
        f.push(msg);
        list.push({ round: r + 1, error: msg });
        log(`   round ${r + 1} ${label(id).padEnd(14)} failed: ${msg}`);
      }
    }
  }
  return { id: s.id, title: s.title, short: s.short, notes, metrics: buildMetricRows(s.metrics, plan, samples, failures), runs };
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseCli(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n${USAGE}\n`);
    return 1;
  }
  const selected = SCENARIOS.filter((s) => !opts.only || opts.only.includes(s.id));
  const doMicro = !opts.only || opts.only.includes('micro');
  const tools = findTools();
  const needs = new Set(selected.flatMap((s) => s.needs));
  const net = selected.length > 0;
  const miss = missingTools(tools, {
    haproxy: needs.has('haproxy'), nginx: net, stream: net, wrk: needs.has('wrk'), iperf3: needs.has('iperf3'), taskset: net && opts.pin, perl: net,
  });
  if (miss.length) {
    process.stderr.write(missingMessage(miss));
    return 2;
  }
  const ncpu = cpus().length;
  pinning.enabled = opts.pin && ncpu >= 2 && !!tools.taskset;
  const pinText = pinning.enabled
    ? `proxies (HAProxy, NGINX, both tandem nodes) on CPU ${pinning.proxyCpu}; backends (nginx, iperf3, Perl UDP echo) and load generators (wrk, iperf3, Node) on CPU ${pinning.loadCpu} (taskset)`
    : `none (${!opts.pin ? '--no-pin' : ncpu < 2 ? 'fewer than 2 CPUs' : 'taskset missing'})`;
  const dir = mkdtempSync(join(tmpdir(), 'tandem-bench-'));
  installCleanupHandlers();
  const startedAt = new Date().toISOString();
  const loadAtStart = loadavg();
  log(`bench: ${opts.quick ? 'quick' : 'full'} — ${opts.rounds} round(s) × ${opts.durationSec} s, warm-up ${opts.warmupSec} s; logs and configs in ${dir}`);
  let tandem: TandemHandle = tandemUnavailable('not started (no network scenario selected)');
  let tandemNote: string | undefined;
  const scenarios: ScenarioResult[] = [];
  let micro: BenchReport['micro'] = [];
  try {
    if (net) {
      await startBackend(dir, tools);
      const haproxy = needs.has('haproxy') ? await startHaproxy(dir, tools) : { ok: false as const, reason: 'not needed', procs: [] };
      const nginx = await startNginxPeer(dir, tools);
      if (!haproxy.ok && needs.has('haproxy')) log(`bench: HAProxy unavailable: ${haproxy.reason}`);
      if (!nginx.ok) log(`bench: NGINX unavailable: ${nginx.reason}`);
      if (newestMtime(join(ROOT, 'src')) > newestMtime(join(ROOT, 'dist')) + 1000) {
        tandemNote = 'dist/ is older than src/: the bench runs the last build (`npm run build`)';
        log(`bench: warning: ${tandemNote}`);
      }
      tandem = await startTandem(dir, 20_000);
      log(tandem.status === 'ok' ? 'bench: tandem cluster ready' : `bench: tandem unavailable: ${tandem.reason}`);
      const ctx: Ctx = { haproxy, nginx, tandem, dir, tools, opts };
      for (const s of selected) scenarios.push(await runScenario(s, ctx));
    }
    if (doMicro) {
      log('\n== micro-benchmarks');
      micro = await runMicro(opts.quick, (opts.quick ? 40 : 180) * 1000, log);
    }
  } finally {
    await stopAll();
  }
  const hops: Record<string, string> = {};
  for (const [k, r] of Object.entries(tandem.routes)) hops[k] = `1 hop: ${r.one ?? '—'}; 2 hops: ${r.two ?? '—'}${r.note ? ` (${r.note})` : ''}`;
  const report: BenchReport = {
    meta: {
      startedAt, finishedAt: new Date().toISOString(), quick: opts.quick, rounds: opts.rounds, durationSec: opts.durationSec,
      warmupSec: opts.warmupSec, only: opts.only, commit: gitCommit(),
      host: { cpus: ncpu, node: process.version, platform: process.platform, kernel: release(), load: loadavg(), loadAtStart },
      tools: tools.versions, pinning: pinText,
      tandem: { status: tandem.status, reason: tandem.reason, hops, note: tandemNote },
    },
    scenarios,
    micro,
  };
  const out = writeReports(report);
  process.stdout.write(`\n${out.markdown}\n`);
  log(`bench: wrote ${out.md}, ${out.json}, ${out.svg} (logs: ${dir})`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  async (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    await stopAll();
    process.exit(1);
  },
);
