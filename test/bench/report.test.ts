// Unit tests for the pure parts of the bench (bench/lib): wrk parsing, statistics, templates,
// table rows, and the markdown and SVG writers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWrk, parseDurationMs, wrkArgs } from '../../bench/lib/wrk.js';
import { median, percentileSorted, ratio, formatNumber } from '../../bench/lib/stats.js';
import { fillTemplate } from '../../bench/lib/templates.js';
import { buildMetricRows, type PlanStatus } from '../../bench/lib/collect.js';
import { renderMarkdown, formatRatio, busy } from '../../bench/lib/report-md.js';
import { renderSvg, chartGroups, bestPeer } from '../../bench/lib/report-svg.js';
import { microRows, figureLabel } from '../../bench/lib/micro-rows.js';
import { missingTools, missingMessage } from '../../bench/lib/tools.js';
import { viaHops } from '../../bench/lib/tandem.js';
import type { BenchReport, ContenderId } from '../../bench/lib/types.js';

const WRK_OK = `Running 1s test @ http://127.0.0.1:18980/
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    56.03us  107.65us   3.05ms   99.21%
    Req/Sec   116.74k    35.46k  149.63k    60.00%
  Latency Distribution
     50%   46.00us
     75%   64.00us
     90%   84.00us
     99%    1.27ms
  116090 requests in 1.00s, 16.61MB read
Requests/sec: 116049.73
Transfer/sec:     16.60MB
`;

const WRK_ERRORS = `Running 2s test @ http://127.0.0.1:18120/
  1 threads and 32 connections
  Latency Distribution
     50%    2.10ms
     75%    3.00ms
     90%    4.00ms
     99%    1.02s
  2000 requests in 2.00s, 300KB read
  Socket errors: connect 0, read 12, write 1, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:   1000.00
Transfer/sec:    150.00KB
`;

test('parseWrk reads requests/s, counts and latency percentiles in ms', () => {
  const r = parseWrk(WRK_OK);
  assert.equal(r.requestsPerSec, 116049.73);
  assert.equal(r.requests, 116090);
  assert.equal(r.durationSec, 1);
  assert.equal(r.latencyMs.p50, 0.046);
  assert.equal(r.latencyMs.p90, 0.084);
  assert.equal(r.latencyMs.p99, 1.27);
  assert.deepEqual(r.errors, { connect: 0, read: 0, write: 0, timeout: 0, non2xx3xx: 0 });
});

test('parseWrk reads socket errors, non-2xx responses and second-scale latencies', () => {
  const r = parseWrk(WRK_ERRORS);
  assert.equal(r.requestsPerSec, 1000);
  assert.equal(r.latencyMs.p99, 1020);
  assert.deepEqual(r.errors, { connect: 0, read: 12, write: 1, timeout: 3, non2xx3xx: 7 });
});

test('parseWrk throws on output without a result', () => {
  assert.throws(() => parseWrk('unable to connect to 127.0.0.1:18979 Connection refused'), /Requests\/sec/);
});

test('parseDurationMs handles every wrk unit', () => {
  assert.equal(parseDurationMs('850.00us'), 0.85);
  assert.equal(parseDurationMs('1.5ms'), 1.5);
  assert.equal(parseDurationMs('2s'), 2000);
  assert.equal(parseDurationMs('1m'), 60000);
  assert.equal(parseDurationMs('fast'), undefined);
});

test('wrkArgs builds a bounded wrk command line with headers', () => {
  const a = wrkArgs({ url: 'http://127.0.0.1:1/', connections: 64, durationSec: 2.4, headers: ['Connection: close'] });
  assert.deepEqual(a, ['-t1', '-c64', '-d2s', '--timeout', '2s', '--latency', '-H', 'Connection: close', 'http://127.0.0.1:1/']);
});

test('median, percentile and ratio', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([]), undefined);
  assert.equal(median([NaN, 5]), 5);
  const s = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentileSorted(s, 50), 50);
  assert.equal(percentileSorted(s, 99), 99);
  assert.equal(percentileSorted(s, 100), 100);
  assert.equal(percentileSorted([], 50), undefined);
  assert.equal(ratio(3, 2), 1.5);
  assert.equal(ratio(3, 0), undefined);
  assert.equal(ratio(undefined, 2), undefined);
  assert.equal(formatNumber(12345.6), '12,346');
  assert.equal(formatNumber(1.234), '1.23');
  assert.equal(formatNumber(undefined), '—');
  assert.equal(formatRatio(0.8512), '0.85×');
});

test('fillTemplate fills placeholders and refuses unknown ones', () => {
  assert.equal(fillTemplate('listen {{HOST}}:{{PORT}};', { HOST: '127.0.0.1', PORT: 18080 }), 'listen 127.0.0.1:18080;');
  assert.throws(() => fillTemplate('{{NOPE}}', {}), /NOPE/);
});

test('missing tools give one message naming the packages', () => {
  const miss = missingTools({ versions: {}, nginx: '/usr/sbin/nginx', nginxStreamLoad: '' }, {
    haproxy: true, nginx: true, stream: true, wrk: true, iperf3: false, taskset: true, perl: false,
  });
  assert.deepEqual(miss, ['haproxy', 'wrk', 'taskset (util-linux)']);
  assert.match(missingMessage(miss), /apt-get install haproxy nginx libnginx-mod-stream wrk iperf3/);
});

test('viaHops counts the hops of a Via header', () => {
  assert.equal(viaHops('1.1 lb1'), 1);
  assert.equal(viaHops('1.1 lb1, 1.1 lb2\n'), 2);
  assert.equal(viaHops(''), 0);
});

const run: PlanStatus = { kind: 'run' };
function sampleReport(): BenchReport {
  const plan: Record<ContenderId, PlanStatus> = {
    tandem1: run, tandem2: { kind: 'unavailable', reason: 'tandem did not start: exit 1' }, haproxy: run, nginx: run, direct: run,
  };
  const metrics = buildMetricRows(
    [
      { key: 'rps', metric: 'requests/s', unit: 'req/s', better: 'higher', headline: true },
      { key: 'p99', metric: 'p99 latency', unit: 'ms', better: 'lower' },
    ],
    plan,
    {
      tandem1: { rps: [800, 900, 1000], p99: [2, 3, 4] },
      haproxy: { rps: [1000, 1000], p99: [1, 1] },
      nginx: { rps: [2000], p99: [0.5] },
      direct: { rps: [], p99: [] },
    },
    { direct: ['connection refused'] },
  );
  const udpPlan = { ...plan, haproxy: { kind: 'n/a', reason: 'HAProxy does not proxy UDP' } as PlanStatus };
  const udp = buildMetricRows([{ key: 'dps', metric: 'datagrams/s', unit: 'dgram/s', better: 'higher', headline: true }], udpPlan,
    { tandem1: { dps: [50] }, nginx: { dps: [40] }, direct: { dps: [100] } }, {});
  return {
    meta: {
      startedAt: '2026-01-01T00:00:00.000Z', finishedAt: '2026-01-01T00:01:00.000Z', quick: true, rounds: 3, durationSec: 2,
      warmupSec: 1, only: null, host: { cpus: 2, node: 'v20', platform: 'linux', kernel: '6', load: [0, 0, 0] },
      tools: { wrk: 'wrk 4.1.0' }, pinning: 'none', tandem: { status: 'ok' },
    },
    scenarios: [
      { id: 'http-keepalive', title: 'HTTP keep-alive & co', notes: ['a note'], metrics, runs: {} },
      { id: 'udp-rr', title: 'UDP request/response', short: 'UDP', notes: [], metrics: udp, runs: {} },
    ],
    micro: [
      { name: 'rendezvous', status: 'ok', figures: [{ nodes: 3, decisionsPerSec: 1e6, nsPerDecision: 1000 }] },
      { name: 'replication', status: 'unavailable', reason: 'bench/micro/replication.ts not present' },
    ],
  };
}

test('buildMetricRows takes medians and keeps statuses and reasons', () => {
  const rows = sampleReport().scenarios[0].metrics;
  assert.equal(rows[0].cells.tandem1.value, 900);
  assert.deepEqual(rows[0].cells.tandem1.samples, [800, 900, 1000]);
  assert.equal(rows[0].cells.haproxy.value, 1000);
  assert.equal(rows[0].cells.tandem2.status, 'unavailable');
  assert.equal(rows[0].cells.direct.status, 'unavailable');
  assert.equal(rows[0].cells.direct.reason, 'connection refused');
  assert.equal(rows[1].better, 'lower');
});

test('renderMarkdown writes the columns, ratios and footnoted reasons', () => {
  const md = renderMarkdown(sampleReport());
  assert.match(md, /\| scenario \| metric \| tandem 1 hop \| tandem 2 hops \| HAProxy \| NGINX \| direct \| tandem\/HAProxy \| tandem\/NGINX \| tandem\/direct \|/);
  const row = md.split('\n').find((l) => l.includes('requests/s'));
  assert.ok(row);
  assert.match(row, /\| 900 \| unavailable \[1\] \| 1,000 \| 2,000 \| unavailable \[2\] \| 0\.90× \| 0\.45× \| — \|/);
  assert.match(md, /\[1\] unavailable: tandem did not start: exit 1/);
  assert.match(md, /\[2\] unavailable: connection refused/);
  assert.match(md, /n\/a \[\d\]/);
  assert.match(md, /n\/a: HAProxy does not proxy UDP/);
  assert.match(md, /\| rendezvous \(3 nodes\) \| decisions\/s \| 1,000,000 \|/);
  assert.match(md, /replication \| — \| unavailable: bench\/micro\/replication.ts not present/);
});

test('chartGroups gives tandem / best peer, higher is better', () => {
  const r = sampleReport();
  assert.deepEqual(bestPeer(r.scenarios[0].metrics[0]), { label: 'NGINX', value: 2000 });
  assert.deepEqual(bestPeer(r.scenarios[0].metrics[1]), { label: 'NGINX', value: 0.5 });
  const g = chartGroups(r);
  assert.equal(g.length, 2);
  assert.equal(g[0].bars[0].ratio, 0.45);
  assert.equal(g[0].bars[1].note, 'unavailable');
  assert.equal(g[1].title, 'UDP');
  assert.equal(g[1].bars[0].ratio, 50 / 40);
});

test('renderSvg draws a well-formed chart with the 1.0 line and escaped text', () => {
  const svg = renderSvg(sampleReport());
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  assert.ok(svg.trim().endsWith('</svg>'));
  assert.match(svg, /1\.0 = best peer/);
  assert.match(svg, /HTTP keep-alive &amp; co/);
  assert.doesNotMatch(svg, /& co/);
  assert.match(svg, />0\.45</);
  assert.match(svg, />1\.25</);
  assert.match(svg, />unavailable</);
  const opens = (svg.match(/<(rect|text|line)\b/g) ?? []).length;
  const closes = (svg.match(/<\/(rect|text)>|\/>/g) ?? []).length;
  assert.equal(opens, closes);
});

test('microRows flattens arrays by label and objects by key', () => {
  assert.deepEqual(microRows({ name: 'flow-table', status: 'ok', figures: { upsertsPerSec: 5, bytesPerEntry: 200, note: 'x' } }), [
    { benchmark: 'flow-table', figure: 'upsertsPerSec', value: 5 },
    { benchmark: 'flow-table', figure: 'bytesPerEntry', value: 200 },
  ]);
  assert.deepEqual(microRows({ name: 'selectors', status: 'ok', figures: [{ policy: 'p2c', picksPerSec: 9 }] }), [
    { benchmark: 'selectors (p2c)', figure: 'picksPerSec', value: 9 },
  ]);
});

test('figureLabel turns figure keys into units', () => {
  assert.equal(figureLabel('decisionsPerSec'), 'decisions/s');
  assert.equal(figureLabel('nsPerDecision'), 'ns/decision');
  assert.equal(figureLabel('bytesPerEntryOnWire'), 'bytes/entry on wire');
  assert.equal(figureLabel('upsertsPerSec'), 'upserts/s');
});

test('a busy machine at the start is flagged in the report', () => {
  const r = sampleReport();
  assert.equal(busy(r.meta), false);
  assert.doesNotMatch(renderMarkdown(r), /Warning/);
  r.meta.host.loadAtStart = [4.4, 3, 2];
  assert.equal(busy(r.meta), true);
  assert.match(renderMarkdown(r), /Warning:\*\* the machine was busy when the bench started \(load average 4\.40 on 2 CPUs\)/);
});
