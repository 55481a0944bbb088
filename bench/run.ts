// tandem's benchmark suite: `npm run bench [-- --quick] [-- --only SCENARIO[,SCENARIO…]]`.
// Starts a shared backend, HAProxy, NGINX, a naive Node proxy and a 2-node tandem cluster on
// loopback, measures each scenario for every contender in interleaved rounds (throughput, latency,
// CPU per unit of work), and writes bench/results/latest.{md,json,svg}.
// It installs nothing; missing tools → one message and exit code 2. See bench/README.md.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir, cpus, release, loadavg } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { SCENARIOS } from './lib/scenarios.js';
import { contenderNode, cpuModelOf, findTools, missingTools, missingMessage, type NodeInfo } from './lib/tools.js';
import { installCleanupHandlers, pinning, stopAll } from './lib/procs.js';
import { startBackend } from './lib/contenders.js';
import { tandemNodeArgs, ROOT, type TandemHandle } from './lib/tandem.js';
import { Lineup } from './lib/lineup.js';
import { runMicro } from './lib/micro.js';
import { runScenario, type RunnerCtx } from './lib/runner.js';
import { netState } from './lib/netstate.js';
import { summarizeDir, writeWindows } from './lib/profile-io.js';
import { formatProfile } from './lib/cpuprofile.js';
import { RESULTS_DIR, writeReports } from './lib/report.js';
import { CONTENDERS, type BenchMeta, type BenchReport, type ContenderId, type ProfileSummary, type ScenarioResult } from './lib/types.js';

interface Options {
  quick: boolean; only: string[] | null; rounds: number; durationSec: number; warmupSec: number; pin: boolean;
  /** --cpu-prof SCENARIO: tandem's nodes run under the V8 profiler during that scenario. */
  cpuProf?: string;
  /** --contenders: measure only these (the others read "n/a: not selected"). */
  contenders: ContenderId[] | null;
  /** Fresh proxies for each scenario (default); --no-restart: one set for the whole run. */
  restart: boolean;
}

const USAGE = `usage: npm run bench -- [--quick] [--only ID[,ID…]] [--contenders ID[,ID…]] [--rounds N] [--duration SEC] [--warmup SEC] [--no-pin] [--no-restart] [--cpu-prof ID]
  scenarios: ${SCENARIOS.map((s) => s.id).join(', ')}, micro
  contenders: ${CONTENDERS.map((c) => c.id).join(', ')}
  --quick: 1 round of 2 s (a smoke test); default: 5 rounds of 5 s
  --cpu-prof ID: profile tandem's nodes during scenario ID (bench/results/profiles/ID/) and print the top functions
  --no-restart: one set of proxies for the whole run (default: fresh ones for each scenario)
  BENCH_NODE=/path/to/node: run tandem, the naive Node proxy and the micro-benchmarks with that Node`;

function parseCli(argv: string[]): Options {
  const o: Options = { quick: false, only: null, rounds: 0, durationSec: 0, warmupSec: -1, pin: true, contenders: null, restart: true };
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
    else if (a === '--no-restart') o.restart = false;
    else if (a === '--cpu-prof') o.cpuProf = val();
    else if (a === '--contenders') {
      const list = val().split(',').map((x) => x.trim()).filter(Boolean);
      const unknown = list.filter((x) => !CONTENDERS.some((c) => c.id === x));
      if (unknown.length) throw new Error(`unknown contender ${unknown.join(', ')} (known: ${CONTENDERS.map((c) => c.id).join(', ')})`);
      o.contenders = [...(o.contenders ?? []), ...(list as ContenderId[])];
    }
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
  if (o.cpuProf !== undefined) {
    if (!SCENARIOS.some((s) => s.id === o.cpuProf)) throw new Error(`--cpu-prof: unknown network scenario ${o.cpuProf} (known: ${SCENARIOS.map((s) => s.id).join(', ')})`);
    if (o.only && !o.only.includes(o.cpuProf)) throw new Error(`--cpu-prof ${o.cpuProf}: that scenario is not among --only ${o.only.join(',')}`);
  }
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
    haproxy: needs.has('haproxy'), nginx: net, stream: net, wrk: needs.has('wrk'), iperf3: needs.has('iperf3'), h2load: needs.has('h2load'), taskset: net && opts.pin, perl: net,
  });
  if (miss.length) {
    process.stderr.write(missingMessage(miss));
    return 2;
  }
  const ncpu = cpus().length;
  pinning.enabled = opts.pin && ncpu >= 2 && !!tools.taskset;
  const pinText = pinning.enabled
    ? `proxies (HAProxy, NGINX, the naive Node proxy, both tandem nodes) on CPU ${pinning.proxyCpu}; backends (nginx, iperf3, Perl UDP echo) and load generators (wrk, iperf3, Node) on CPU ${pinning.loadCpu} (taskset)`
    : `none (${!opts.pin ? '--no-pin' : ncpu < 2 ? 'fewer than 2 CPUs' : 'taskset missing'})`;
  let node: NodeInfo;
  try {
    node = contenderNode();
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n`);
    return 1;
  }
  const dir = mkdtempSync(join(tmpdir(), 'tandem-bench-'));
  installCleanupHandlers();
  const startedAt = new Date().toISOString();
  const loadAtStart = loadavg();
  log(`bench: ${opts.quick ? 'quick' : 'full'} — ${opts.rounds} round(s) × ${opts.durationSec} s, warm-up ${opts.warmupSec} s; logs and configs in ${dir}`);
  log(`bench: tandem and the naive Node proxy run on Node ${node.version} (V8 ${node.v8}) ${node.path}`);
  let tandemNote: string | undefined;
  const scenarios: ScenarioResult[] = [];
  const netStates: NonNullable<BenchMeta['netState']> = {};
  let profiles: ProfileSummary[] = [];
  let micro: BenchReport['micro'] = [];
  const lineup = new Lineup({ dir, tools, node: node.path, contenders: opts.contenders, log });
  const routes: TandemHandle['routes'] = {};
  try {
    if (net) {
      await startBackend(dir, tools);
      if (newestMtime(join(ROOT, 'src')) > newestMtime(join(ROOT, 'dist')) + 1000) {
        tandemNote = 'dist/ is older than src/: the bench runs the last build (`npm run build`)';
        log(`bench: warning: ${tandemNote}`);
      }
      const profIndex = selected.findIndex((s) => s.id === opts.cpuProf);
      const profileDir = join(RESULTS_DIR, 'profiles', opts.cpuProf ?? '');
      if (profIndex >= 0) {
        rmSync(profileDir, { recursive: true, force: true });
        mkdirSync(profileDir, { recursive: true });
      }
      for (const [i, s] of selected.entries()) {
        const profiled = i === profIndex;
        if (opts.restart) {
          log(`\nbench: starting the proxies for ${s.id}`);
          await lineup.start([s], profiled ? profileDir : undefined);
        } else if (i === 0) {
          // One set for the whole run: under --cpu-prof tandem is profiled from the start, so the
          // profiled scenario finds it in the state the earlier ones left.
          await lineup.start(selected, profIndex >= 0 ? profileDir : undefined);
        } else if (i === profIndex + 1) await lineup.startTandem();
        const ctx: RunnerCtx = {
          haproxy: lineup.haproxy, nginx: lineup.nginx, naive: lineup.naive, tandem: lineup.tandem,
          dir, tools, log, rounds: opts.rounds, durationSec: opts.durationSec, warmupSec: opts.warmupSec,
          profileWindows: profiled ? {} : undefined, contenders: opts.contenders ?? undefined,
        };
        netStates[s.id] = netState();
        scenarios.push(await runScenario(s, ctx));
        Object.assign(routes, lineup.tandem.routes);
        if (profiled) {
          writeWindows(profileDir, ctx.profileWindows ?? {});
          await lineup.stopTandem();
          profiles = summarizeDir(profileDir, s.id, ROOT);
          if (profiles.length === 0) log(`bench: --cpu-prof: no profile was written to ${profileDir} (did tandem exit cleanly? see ${dir}/tandem/)`);
          for (const p of profiles) log(`\n${formatProfile(p).join('\n')}`);
        }
        if (opts.restart) await lineup.stop();
      }
    }
    if (doMicro) {
      log('\n== micro-benchmarks');
      micro = await runMicro(opts.quick, (opts.quick ? 40 : 180) * 1000, log, node.path);
    }
  } finally {
    await stopAll();
  }
  const tandem = lineup.tandem;
  const hops: Record<string, string> = {};
  for (const [k, r] of Object.entries(routes)) hops[k] = `1 hop: ${r.one ?? '—'}; 2 hops: ${r.two ?? '—'}${r.note ? ` (${r.note})` : ''}`;
  const report: BenchReport = {
    meta: {
      startedAt, finishedAt: new Date().toISOString(), quick: opts.quick, rounds: opts.rounds, durationSec: opts.durationSec,
      warmupSec: opts.warmupSec, only: opts.only, commit: gitCommit(),
      host: { cpus: ncpu, node: process.version, platform: process.platform, kernel: release(), load: loadavg(), loadAtStart, cpuModel: cpuModel() },
      contenderNode: node,
      tools: tools.versions, pinning: pinText,
      tandem: { status: tandem.status, reason: tandem.reason, hops, note: tandemNote, nodeArgs: tandemNodeArgs() },
      cpuProf: opts.cpuProf,
      restart: opts.restart,
      netState: netStates,
    },
    scenarios,
    micro,
    ...(profiles.length ? { profiles } : {}),
  };
  const out = writeReports(report);
  process.stdout.write(`\n${out.markdown}\n`);
  log(`bench: wrote ${out.md}, ${out.json}, ${out.svg} (logs: ${dir})`);
  return 0;
}

function cpuModel(): string | undefined {
  try {
    return cpuModelOf(readFileSync('/proc/cpuinfo', 'utf8')) ?? cpus()[0]?.model;
  } catch {
    return cpus()[0]?.model;
  }
}

main().then(
  (code) => process.exit(code),
  async (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    await stopAll();
    process.exit(1);
  },
);
