/**
 * Micro-benchmark of route matching (src/routes): nanoseconds per match, with 10 and with 1,000
 * routes of mixed exact hosts, wildcard hosts and path prefixes, over a seeded request mix in which
 * most requests hit a route and some hit none. The cost must not grow with the table.
 * Run directly: `node --import tsx bench/micro/routes.ts`.
 */
import { pathToFileURL } from 'node:url';
import { RouteMatcher, type MatchRequest, type RouteMatch } from '../../src/routes/matcher.js';
import { normalizeHost, normalizeTarget } from '../../src/routes/normalize.js';
import { prng } from '../../test/helpers/prng.js';

export interface RouteBenchResult {
  routes: number;
  nsPerMatch: number;
  /** Including host and path normalisation of the raw request. */
  nsPerRequest: number;
}

function table(n: number, rnd: () => number): RouteMatch[] {
  const out: RouteMatch[] = [];
  for (let i = 0; i < n; i++) {
    const kind = i % 4;
    if (kind === 0) out.push({ host: `svc${i}.example.com`, pathPrefix: `/api/v${i % 7}/` });
    else if (kind === 1) out.push({ host: `*.tenant${i}.example.com` });
    else if (kind === 2) out.push({ pathPrefix: `/static/${i}/` });
    else out.push({ host: `svc${i - 3}.example.com`, method: rnd() < 0.5 ? 'POST' : 'GET' });
  }
  return out;
}

export function benchRoutes(options: { matches?: number } = {}): RouteBenchResult[] {
  const matches = options.matches ?? (process.env['BENCH_QUICK'] ? 200_000 : 1_000_000);
  const results: RouteBenchResult[] = [];
  for (const n of [10, 1000]) {
    const rnd = prng(17);
    const m = new RouteMatcher(table(n, rnd));
    const raw = Array.from({ length: 1024 }, () => {
      const i = Math.floor(rnd() * n);
      const host = rnd() < 0.1 ? 'unknown.example.org' : i % 4 === 1 ? `a.tenant${i}.example.com` : `svc${i - (i % 4)}.example.com`;
      const path = rnd() < 0.5 ? `/api/v${i % 7}/users/${i}?page=2` : `/static/${i}/app.js`;
      return { host: `${host}:443`, path, method: rnd() < 0.8 ? 'GET' : 'POST' };
    });
    const reqs: MatchRequest[] = raw.map((r) => ({ host: normalizeHost(r.host), path: normalizeTarget(r.path).path, method: r.method, header: () => undefined }));
    let sink = 0;
    const runMatch = (k: number): void => {
      for (let i = 0; i < k; i++) sink += m.match(reqs[i & 1023]);
    };
    const runRequest = (k: number): void => {
      for (let i = 0; i < k; i++) {
        const r = raw[i & 1023];
        sink += m.match({ host: normalizeHost(r.host), path: normalizeTarget(r.path).path, method: r.method, header: () => undefined });
      }
    };
    runMatch(50_000);
    let t = process.hrtime.bigint();
    runMatch(matches);
    const nsMatch = Number(process.hrtime.bigint() - t) / matches;
    runRequest(50_000);
    t = process.hrtime.bigint();
    runRequest(matches);
    const nsReq = Number(process.hrtime.bigint() - t) / matches;
    if (sink === Number.MIN_SAFE_INTEGER) throw new Error('unreachable');
    results.push({ routes: n, nsPerMatch: Math.round(nsMatch * 10) / 10, nsPerRequest: Math.round(nsReq * 10) / 10 });
  }
  return results;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const r of benchRoutes()) console.log(`${String(r.routes).padStart(5)} routes: ${r.nsPerMatch} ns/match, ${r.nsPerRequest} ns/request with normalisation`);
}
