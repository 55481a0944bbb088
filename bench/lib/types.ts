// Shapes of the figures the bench records (bench/results/latest.json).

export type ContenderId = 'tandem1' | 'tandem2' | 'haproxy' | 'nginx' | 'direct';

export const CONTENDERS: ReadonlyArray<{ id: ContenderId; label: string }> = [
  { id: 'tandem1', label: 'tandem 1 hop' },
  { id: 'tandem2', label: 'tandem 2 hops' },
  { id: 'haproxy', label: 'HAProxy' },
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
  metric: string;
  unit: string;
  better: 'higher' | 'lower';
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
  host: { cpus: number; node: string; platform: string; kernel: string; load: number[]; loadAtStart?: number[] };
  tools: Record<string, string>;
  pinning: string;
  tandem: { status: 'ok' | 'unavailable'; reason?: string; hops?: Record<string, string>; note?: string };
}

export interface BenchReport {
  meta: BenchMeta;
  scenarios: ScenarioResult[];
  micro: MicroResult[];
}
