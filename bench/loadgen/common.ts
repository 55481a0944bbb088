// Shared by the Node load generators: argument parsing and the latency summary they print.
import { percentileSorted } from '../lib/stats.js';

export function parseArgs(argv: string[], defaults: Record<string, string>): Record<string, string> {
  const out = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const [k, v] = a.includes('=') ? [a.slice(2, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a.slice(2), argv[++i]];
    if (v === undefined) throw new Error(`--${k} needs a value`);
    out[k] = v;
  }
  return out;
}

export function num(args: Record<string, string>, k: string): number {
  const v = Number(args[k]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${k} must be a non-negative number, got ${args[k]}`);
  return v;
}

/** Records latencies (ms) up to a cap, then keeps a uniform reservoir sample. */
export class LatencyRecorder {
  private readonly samples: Float64Array;
  private n = 0;
  private seen = 0;
  constructor(private readonly cap = 2_000_000) {
    this.samples = new Float64Array(cap);
  }
  add(ms: number): void {
    this.seen++;
    if (this.n < this.cap) this.samples[this.n++] = ms;
    else {
      const j = Math.floor(Math.random() * this.seen);
      if (j < this.cap) this.samples[j] = ms;
    }
  }
  summary(): { p50?: number; p90?: number; p99?: number; max?: number } {
    const s = Array.from(this.samples.subarray(0, this.n)).sort((a, b) => a - b);
    return { p50: percentileSorted(s, 50), p90: percentileSorted(s, 90), p99: percentileSorted(s, 99), max: s[s.length - 1] };
  }
}

export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
