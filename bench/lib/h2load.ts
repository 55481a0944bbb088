// Reads h2load's summary (nghttp2 1.52, Debian 12):
//   finished in 5.00s, 31234.20 req/s, 1.23MB/s
//   requests: 156171 total, 156371 started, 156171 done, 156171 succeeded, 0 failed, 0 errored, 0 timeout
//   time for request:      236us     12.80ms      6.31ms      1.59ms    71.46%
// h2load reports no percentiles, only min, max, mean and sd.

export interface H2loadResult {
  /** What ALPN gave ("Application protocol: h2"); h2load falls back to http/1.1 when offered. */
  protocol: string | null;
  requestsPerSec: number;
  done: number;
  succeeded: number;
  failed: number;
  errored: number;
  meanMs: number;
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v);
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
}

export function parseH2load(out: string): H2loadResult {
  const rps = /finished in [\d.]+s, ([\d.]+) req\/s/.exec(out);
  const req = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
  const t = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
  const proto = /Application protocol: (\S+)/.exec(out);
  return {
    protocol: proto ? proto[1] : null,
    requestsPerSec: rps ? Number(rps[1]) : 0,
    done: req ? Number(req[2]) : 0,
    succeeded: req ? Number(req[3]) : 0,
    failed: req ? Number(req[4]) : 0,
    errored: req ? Number(req[5]) : 0,
    meanMs: t ? toMs(t[3]) : NaN,
  };
}
