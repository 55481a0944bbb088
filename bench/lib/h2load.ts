// h2load (nghttp2-client) command lines and the parser of its summary.

export interface H2LoadResult {
  requestsPerSec: number;
  /** Requests done, and how they ended. */
  requests: number;
  succeeded: number;
  failed: number;
  errored: number;
  timeout: number;
  status: { s2xx: number; s3xx: number; s4xx: number; s5xx: number };
  /** "time for request": mean and standard deviation, ms. */
  meanMs: number;
  sdMs: number;
}

export interface H2LoadOptions {
  url: string;
  clients: number;
  streams: number;
  durationSec: number;
  headers?: string[];
}

export function h2loadArgs(o: H2LoadOptions): string[] {
  const args = ['-t', '1', '-c', String(o.clients), '-m', String(o.streams), '-D', String(Math.max(1, Math.round(o.durationSec)))];
  for (const h of o.headers ?? []) args.push('-H', h);
  args.push(o.url);
  return args;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000 };

function durationMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text);
  return m ? Number(m[1]) * UNIT_MS[m[2]] : NaN;
}

/** Parses h2load's summary; throws when its request line is missing. */
export function parseH2Load(out: string): H2LoadResult {
  const fin = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out);
  const req = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  if (fin === null || req === null || codes === null) throw new Error(`h2load output not understood: ${out.trim().slice(-300)}`);
  const t = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
  return {
    requestsPerSec: Number(fin[1]),
    requests: Number(req[1]),
    succeeded: Number(req[2]),
    failed: Number(req[3]),
    errored: Number(req[4]),
    timeout: Number(req[5]),
    status: { s2xx: Number(codes[1]), s3xx: Number(codes[2]), s4xx: Number(codes[3]), s5xx: Number(codes[4]) },
    meanMs: t ? durationMs(t[3]) : NaN,
    sdMs: t ? durationMs(t[4]) : NaN,
  };
}
