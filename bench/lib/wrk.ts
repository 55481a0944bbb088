// wrk command lines and the parser of wrk's --latency output.

export interface WrkResult {
  requestsPerSec: number;
  requests: number;
  durationSec: number;
  /** Latency percentiles in milliseconds (from --latency). */
  latencyMs: { p50?: number; p75?: number; p90?: number; p99?: number };
  errors: { connect: number; read: number; write: number; timeout: number; non2xx3xx: number };
}

export interface WrkOptions {
  url: string;
  connections: number;
  durationSec: number;
  threads?: number;
  headers?: string[];
  timeoutSec?: number;
}

export function wrkArgs(o: WrkOptions): string[] {
  const args = [`-t${o.threads ?? 1}`, `-c${o.connections}`, `-d${Math.max(1, Math.round(o.durationSec))}s`,
    `--timeout`, `${o.timeoutSec ?? 2}s`, '--latency'];
  for (const h of o.headers ?? []) args.push('-H', h);
  args.push(o.url);
  return args;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60000, h: 3600000 };

/** "1.23ms" → 1.23; "850.00us" → 0.85; "1.02s" → 1020. */
export function parseDurationMs(text: string): number | undefined {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2]];
}

/** Parses wrk 4.x output; throws when the requests/s line is missing. */
export function parseWrk(output: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(output);
  if (!rps) throw new Error(`wrk output has no "Requests/sec" line: ${output.trim().split('\n').slice(-3).join(' | ')}`);
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m|h)/.exec(output);
  const latencyMs: WrkResult['latencyMs'] = {};
  const dist = output.split('Latency Distribution')[1] ?? '';
  for (const m of dist.matchAll(/^\s*(50|75|90|99)(?:\.0+)?%\s+(\S+)/gm)) {
    const ms = parseDurationMs(m[2]);
    if (ms !== undefined) latencyMs[`p${m[1]}` as keyof WrkResult['latencyMs']] = ms;
  }
  const errors = { connect: 0, read: 0, write: 0, timeout: 0, non2xx3xx: 0 };
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  if (sock) {
    errors.connect = Number(sock[1]);
    errors.read = Number(sock[2]);
    errors.write = Number(sock[3]);
    errors.timeout = Number(sock[4]);
  }
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output);
  if (non2xx) errors.non2xx3xx = Number(non2xx[1]);
  return {
    requestsPerSec: Number(rps[1]),
    requests: total ? Number(total[1]) : 0,
    durationSec: total ? (Number(total[2]) * UNIT_MS[total[3]]) / 1000 : 0,
    latencyMs,
    errors,
  };
}
