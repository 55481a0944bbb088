// Shapes of the figures the bench records (bench/results/latest.json).

export type ContenderId = 'tandem1' | 'tandem2' | 'naive' | 'haproxy' | 'haproxy2' | 'nginx' | 'direct';

/** Every contender, in table and measuring order. */
export const CONTENDERS: ReadonlyArray<{ id: ContenderId; label: string }> = [
  { id: 'tandem1', label: 'tandem 1 hop' },
  { id: 'tandem2', label: 'tandem 2 hops' },
  { id: 'naive', label: 'naive Node' },
  { id: 'haproxy', label: 'HAProxy' },
  { id: 'haproxy2', label: 'HAProxy chained' },
  { id: 'nginx', label: 'NGINX' },
  { id: 'direct', label: 'direct' },
];

/** ok: measured; unavailable: should have been measured but could not be; n/a: not applicable. */
export type CellStatus = 'ok' | 'unavailable' | 'n/a';

export interface Cell {
  status: CellStatus;
  /** Median over the rounds (status ok). */
  value?: number;
  /** One figure per round, in round order. */
  samples: number[];
  reason?: string;
}

export interface MetricRow {
  /** The figure's key in the scenario (rps, p99, cpuPerUnit, …); absent in older reports. */
  key?: string;
  metric: string;
  unit: string;
  /** 'none': a figure to read, not to rank (e.g. how busy the proxy's core was). */
  better: 'higher' | 'lower' | 'none';
  /** The scenario's headline figure, drawn in the chart. */
  headline: boolean;
  cells: Record<ContenderId, Cell>;
}

export interface ScenarioResult {
  id: string;
  title: string;
  /** A short name for the chart. */
  short?: string;
  notes: string[];
  metrics: MetricRow[];
  /** Raw output of every run: contender → per-round record (parsed tool output, errors). */
  runs: Partial<Record<ContenderId, unknown[]>>;
}

export interface MicroResult {
  name: string;
  status: 'ok' | 'unavailable';
  reason?: string;
  figures?: unknown;
  elapsedMs?: number;
}

export interface BenchMeta {
  startedAt: string;
  finishedAt: string;
  quick: boolean;
  rounds: number;
  durationSec: number;
  warmupSec: number;
  only: string[] | null;
  /** git commit of the work tree measured, with "-dirty" when it had changes. */
  commit?: string;
  /** load: 1, 5, 15-minute load averages at the end; loadAtStart: the same at the start. */
  /** node: the Node running the bench itself; cpuModel from /proc/cpuinfo. */
  host: { cpus: number; node: string; platform: string; kernel: string; load: number[]; loadAtStart?: number[]; cpuModel?: string };
  /** The Node that ran tandem and the naive Node proxy (BENCH_NODE, or the bench's own). */
  contenderNode?: { path: string; version: string; v8: string };
  tools: Record<string, string>;
  pinning: string;
  /** nodeArgs: extra node flags of tandem's processes (BENCH_TANDEM_NODE_ARGS). */
  tandem: { status: 'ok' | 'unavailable'; reason?: string; hops?: Record<string, string>; note?: string; nodeArgs?: string[] };
  /** Whether each scenario had freshly started proxies (default) or one set served the whole run. */
  restart?: boolean;
  /** --cpu-prof: the scenario whose tandem nodes ran under the V8 profiler. */
  cpuProf?: string;
  /** Sockets in TIME_WAIT and conntrack entries at the start of each scenario (state left behind). */
  netState?: Record<string, { timeWait?: number; conntrack?: number }>;
}

/** One function's share of a profile's busy samples (self time). */
export interface ProfileFunction { name: string; where: string; group: ProfileGroup; share: number }
export type ProfileGroup = 'tandem' | 'dependencies' | 'node' | 'gc' | 'native' | 'other';

/** The summary of one node's .cpuprofile (bench/lib/cpuprofile.ts). */
export interface ProfileSummary {
  scenario: string;
  node: string;
  file: string;
  /** Samples in the measured windows, not idle; ms of CPU they stand for. */
  busySamples: number;
  busyMs: number;
  /** Share of idle samples in the windows (the node waiting for I/O). */
  idleShare: number;
  /** Whether samples were cut to the measured windows (false: the whole profile). */
  windowed: boolean;
  groups: Record<ProfileGroup, number>;
  top: ProfileFunction[];
}

export interface BenchReport {
  meta: BenchMeta;
  scenarios: ScenarioResult[];
  micro: MicroResult[];
  profiles?: ProfileSummary[];
}
