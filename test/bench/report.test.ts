// Unit tests for the pure parts of the bench (bench/lib): wrk parsing, statistics, templates,
// /proc parsing, table rows, the acceptance checks, CPU profile summaries, and the markdown and
// SVG writers. Fixed data only: nothing here depends on how fast the machine is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWrk, parseDurationMs, wrkArgs } from '../../bench/lib/wrk.js';
import { median, percentileSorted, ratio, formatNumber } from '../../bench/lib/stats.js';
import { fillTemplate } from '../../bench/lib/templates.js';
import { buildMetricRows, type PlanStatus } from '../../bench/lib/collect.js';
import { renderMarkdown, formatRatio, busy } from '../../bench/lib/report-md.js';
import { renderSvg, chartGroups, bestPeer } from '../../bench/lib/report-svg.js';
import { microRows, figureLabel } from '../../bench/lib/micro-rows.js';
import { missingTools, missingMessage, cpuModelOf } from '../../bench/lib/tools.js';
import { viaHops } from '../../bench/lib/tandem.js';
import { parseProcIo, parseProcStat, treePids, treeSum, type ProcStat } from '../../bench/lib/cpu.js';
import { parseTimeWait } from '../../bench/lib/netstate.js';
import { checkAims, AIMS } from '../../bench/lib/acceptance.js';
import { classify, summarizeProfile, formatProfile, type CpuProfile } from '../../bench/lib/cpuprofile.js';
import type { BenchReport, ContenderId, MetricRow } from '../../bench/lib/types.js';

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
const NO_PROXY = 'no proxy: the load generator talks to the backend';
function sampleReport(): BenchReport {
  const plan: Record<ContenderId, PlanStatus> = {
    tandem1: run, tandem2: { kind: 'unavailable', reason: 'tandem did not start: exit 1' }, naive: run, haproxy: run, haproxy2: run, nginx: run, direct: run,
  };
  const metrics = buildMetricRows(
    [
      { key: 'rps', metric: 'requests/s', unit: 'req/s', better: 'higher', headline: true },
      { key: 'p99', metric: 'p99 latency', unit: 'ms', better: 'lower' },
      { key: 'cpuPerUnit', metric: 'CPU per request', unit: 'µs/req', better: 'lower', na: { direct: NO_PROXY } },
      { key: 'cpuPct', metric: 'CPU used', unit: '% of a core', better: 'none', na: { direct: NO_PROXY } },
    ],
    plan,
    {
      tandem1: { rps: [800, 900, 1000], p99: [2, 3, 4], cpuPerUnit: [100, 110, 120], cpuPct: [99, 98, 97] },
      naive: { rps: [300, 300], p99: [9, 9], cpuPerUnit: [330, 330], cpuPct: [99, 99] },
      haproxy: { rps: [1000, 1000], p99: [1, 1], cpuPerUnit: [25, 25], cpuPct: [60, 60] },
      haproxy2: { rps: [500], p99: [2], cpuPerUnit: [50], cpuPct: [62] },
      nginx: { rps: [2000], p99: [0.5], cpuPerUnit: [20], cpuPct: [70] },
      direct: { rps: [], p99: [] },
    },
    { direct: ['connection refused'] },
  );
  const udpPlan = { ...plan, haproxy: { kind: 'n/a', reason: 'HAProxy does not proxy UDP' } as PlanStatus };
  const udp = buildMetricRows([{ key: 'dps', metric: 'datagrams/s', unit: 'dgram/s', better: 'higher', headline: true }], udpPlan,
    { tandem1: { dps: [50] }, naive: { dps: [1] }, haproxy2: { dps: [1] }, nginx: { dps: [40] }, direct: { dps: [100] } }, {});
  return {
    meta: {
      startedAt: '2026-01-01T00:00:00.000Z', finishedAt: '2026-01-01T00:01:00.000Z', quick: true, rounds: 3, durationSec: 2,
      warmupSec: 1, only: null, host: { cpus: 2, node: 'v20', platform: 'linux', kernel: '6.1.0-test', load: [0, 0, 0], cpuModel: 'AMD EPYC 7B13' },
      contenderNode: { path: '/opt/node26/bin/node', version: 'v26.12.0', v8: '14.1.146.11-node.20' },
      tools: { wrk: 'wrk 4.1.0', haproxy: 'HAProxy version 2.6.12', nginx: 'nginx version: nginx/1.22.1' }, pinning: 'none', tandem: { status: 'ok' },
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
  assert.ok(md.includes('| scenario | metric | tandem 1 hop | tandem 2 hops | naive Node | HAProxy | HAProxy chained | NGINX | direct | ' +
    'tandem/naive Node | tandem 2 hops/1 hop | HAProxy chained/HAProxy | tandem/HAProxy | tandem/NGINX | tandem/direct |'));
  const row = md.split('\n').find((l) => l.includes('requests/s'));
  assert.ok(row);
  assert.ok(row.includes('| 900 | unavailable [1] | 300 | 1,000 | 500 | 2,000 | unavailable [2] | 3.00× | — | 0.50× | 0.90× | 0.45× | — |'), row);
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

test('CPU rows: per-unit cost with ratios, "CPU used" without arrow or ratios, n/a for direct', () => {
  const md = renderMarkdown(sampleReport());
  const cpu = md.split('\n').find((l) => l.includes('CPU per request'));
  assert.ok(cpu);
  assert.ok(cpu.includes('CPU per request (µs/req) ↓ | 110 | unavailable [1] | 330 | 25.0 | 50.0 | 20.0 | n/a [3] | 0.33× | — | 2.00× | 4.40× | 5.50× | — |'), cpu);
  const used = md.split('\n').find((l) => l.includes('CPU used'));
  assert.ok(used);
  assert.ok(used.includes('| CPU used (% of a core) | 98.0 | unavailable [1] | 99.0 | 60.0 | 62.0 | 70.0 | n/a [3] |  |  |  |  |  |  |'), used);
  assert.match(md, /\[3\] n\/a: no proxy: the load generator talks to the backend/);
});

test('buildMetricRows marks a metric n/a for the contenders it does not apply to', () => {
  const rows = sampleReport().scenarios[0].metrics;
  assert.equal(rows[2].key, 'cpuPerUnit');
  assert.equal(rows[2].cells.direct.status, 'n/a');
  assert.equal(rows[2].cells.direct.reason, NO_PROXY);
  assert.equal(rows[2].cells.tandem1.value, 110);
  // The plan's own status wins: tandem 2 hops stays unavailable with its reason.
  assert.equal(rows[2].cells.tandem2.status, 'unavailable');
});

test('the report names the Node that ran tandem (with V8), the CPU model, kernel and peer versions', () => {
  const md = renderMarkdown(sampleReport());
  assert.match(md, /Host: 2 CPUs \(AMD EPYC 7B13\), kernel 6\.1\.0-test/);
  assert.match(md, /Node v26\.12\.0 \(V8 14\.1\.146\.11-node\.20, \/opt\/node26\/bin\/node\) runs tandem, the naive Node proxy/);
  assert.match(md, /HAProxy version 2\.6\.12 · nginx version: nginx\/1\.22\.1/);
  const old = sampleReport();
  delete old.meta.contenderNode;
  assert.match(renderMarkdown(old), /Node v20 runs tandem/);
});

test('a report written before the new contenders renders with — in their columns', () => {
  const r = sampleReport();
  for (const s of r.scenarios) for (const m of s.metrics) {
    delete (m.cells as Partial<MetricRow['cells']>).naive;
    delete (m.cells as Partial<MetricRow['cells']>).haproxy2;
    delete m.key;
  }
  const row = renderMarkdown(r).split('\n').find((l) => l.includes('requests/s'));
  assert.ok(row?.includes('| 900 | unavailable [1] | — | 1,000 | — | 2,000 |'), row);
  // Old reports have no metric keys: the aims find their rows by label.
  assert.equal(checkAims(r)[1].status, 'met');
});

function aimReport(): BenchReport {
  const r = sampleReport();
  const cell = (value: number) => ({ status: 'ok' as const, value, samples: [value] });
  const row = (key: string, metric: string, unit: string, better: 'higher' | 'lower', v: Partial<Record<ContenderId, number>>): MetricRow => {
    const cells = {} as MetricRow['cells'];
    for (const id of ['tandem1', 'tandem2', 'naive', 'haproxy', 'haproxy2', 'nginx', 'direct'] as const) {
      const x = v[id];
      cells[id] = x === undefined ? { status: 'n/a', reason: 'x', samples: [] } : cell(x);
    }
    return { key, metric, unit, better, headline: better === 'higher', cells };
  };
  r.scenarios = [
    { id: 'http-keepalive', title: 'ka', notes: [], runs: {}, metrics: [
      row('rps', 'requests/s', 'req/s', 'higher', { tandem1: 30000, tandem2: 18000, naive: 10000, haproxy: 50000, haproxy2: 25000 }),
      row('p99', 'p99 latency', 'ms', 'lower', { tandem1: 2.5, haproxy: 1 }),
    ] },
    { id: 'tcp-bulk', title: 'bulk', notes: [], runs: {}, metrics: [row('mbps', 'throughput', 'MB/s', 'higher', { tandem1: 900, tandem2: 400, haproxy: 1000 })] },
    { id: 'udp-rr', title: 'udp', notes: [], runs: {}, metrics: [row('dps', 'datagrams/s', 'dgram/s', 'higher', { tandem1: 50000 })] },
  ];
  return r;
}

test('checkAims: met, missed and not measured, with the figures', () => {
  const c = checkAims(aimReport());
  assert.equal(c.length, AIMS.length);
  const by = (text: string) => c.find((x) => x.aim.startsWith(text)) ?? assert.fail(text);
  assert.equal(by('HTTP keep-alive, 1 hop ≥ 2.5×').status, 'met'); // 3.00×
  assert.equal(by('HTTP keep-alive, 1 hop ≥ 2.5×').detail, '3.00× (tandem 1 hop 30,000 ÷ naive Node 10,000 req/s; aim ≥ 2.5×)');
  assert.equal(by('HTTP keep-alive, 1 hop ≥ 0.6× HAProxy').status, 'met'); // exactly 0.60× counts as met
  const two = by('HTTP keep-alive, 2 hops');
  assert.equal(two.status, 'met');
  assert.match(two.detail, /; HAProxy chained ÷ HAProxy: 0\.50×$/);
  assert.equal(by('TCP bulk, 1 hop').status, 'met'); // 0.90×
  assert.equal(by('TCP bulk, 2 hops').status, 'missed'); // 0.44×
  assert.equal(by('TCP bulk, 2 hops').ratio, 400 / 900);
  const p99 = by('HTTP keep-alive p99');
  assert.equal(p99.status, 'missed'); // 2.5× the latency, aim at most 2×
  assert.match(p99.detail, /aim ≤ 2\.0×/);
  assert.equal(by('HTTP, new connection').status, 'not measured');
  assert.equal(by('HTTP, new connection').detail, 'scenario http-close not run');
  assert.equal(by('UDP').status, 'not measured');
  assert.equal(by('UDP').detail, 'NGINX n/a');
});

test('renderMarkdown lists the acceptance aims as a checklist', () => {
  const md = renderMarkdown(aimReport());
  assert.match(md, /## Acceptance: 4 of 10 aims met/);
  assert.match(md, /- \[x\] \*\*met\*\* — HTTP keep-alive, 1 hop ≥ 2\.5× the naive Node proxy: 3\.00× \(tandem 1 hop 30,000 ÷ naive Node 10,000 req\/s; aim ≥ 2\.5×\)/);
  assert.match(md, /- \[ \] \*\*missed\*\* — TCP bulk, 2 hops ≥ 0\.5× tandem 1 hop: 0\.44×/);
  assert.match(md, /- \[ \] \*\*not measured\*\* — TCP connection rate ≥ 0\.9× HAProxy: scenario tcp-connrate not run/);
  assert.match(md, /A quick run: these checks show the bench works/);
});

test('parseProcStat reads ppid and CPU ticks, even with spaces and parentheses in the name', () => {
  // Fields 10-11 (minflt cminflt) = 5000 0; 14-17 (utime stime cutime cstime) = 100 20 3 4; 24 (rss) = 2500.
  const line = '4242 (node (lb1) x) S 4200 4242 4200 0 -1 4194560 5000 0 0 0 100 20 3 4 20 0 11 0 123456 1000000 2500 18446744073709551615';
  assert.deepEqual(parseProcStat(line), { pid: 4242, ppid: 4200, ticks: 127, rss: 2500, faults: 5000 });
  assert.equal(parseProcStat('garbage'), undefined);
});

test('treeSum adds the whole tree under the roots, once each', () => {
  const t: ProcStat[] = [
    { pid: 1, ppid: 0, ticks: 1000, rss: 1, faults: 1 },
    { pid: 10, ppid: 1, ticks: 5, rss: 10, faults: 1 }, // nginx master
    { pid: 11, ppid: 10, ticks: 50, rss: 20, faults: 1 }, // its worker
    { pid: 12, ppid: 11, ticks: 7, rss: 30, faults: 1 }, // a grandchild
    { pid: 20, ppid: 1, ticks: 900, rss: 40, faults: 1 }, // someone else
  ];
  assert.equal(treeSum(t, [10]), 62);
  assert.equal(treeSum(t, [10, 11]), 62);
  assert.equal(treeSum(t, [10, 20], 'rss'), 100);
  assert.equal(treeSum(t, [10], 'faults'), 3);
  assert.equal(treeSum(t, [99]), 0);
  assert.deepEqual(treePids(t, [10, 99]).sort((a, b) => a - b), [10, 11, 12]);
});

test('parseProcIo reads the read/write syscall counters', () => {
  const io = 'rchar: 1056019\nwchar: 15085\nsyscr: 236\nsyscw: 95\nread_bytes: 0\nwrite_bytes: 0\ncancelled_write_bytes: 0\n';
  assert.deepEqual(parseProcIo(io), { reads: 236, writes: 95, readBytes: 1056019, writtenBytes: 15085 });
  assert.equal(parseProcIo('rchar: 1\n'), undefined);
});

test('parseTimeWait and cpuModelOf read /proc text', () => {
  assert.equal(parseTimeWait('sockets: used 42\nTCP: inuse 4 orphan 0 tw 26385 alloc 4 mem 364\nUDP: inuse 0 mem 138\n'), 26385);
  assert.equal(parseTimeWait('nothing'), undefined);
  assert.equal(cpuModelOf('processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n'), 'AMD EPYC 7B13 64-Core Processor');
  assert.equal(cpuModelOf(''), undefined);
});

const ROOT = '/repo/';
function sampleProfile(): CpuProfile {
  const frame = (functionName: string, url = '', lineNumber = 0) => ({ functionName, url, lineNumber, columnNumber: 0, scriptId: 0 });
  return {
    nodes: [
      { id: 1, callFrame: frame('(root)') },
      { id: 2, callFrame: frame('(idle)') },
      { id: 3, callFrame: frame('(garbage collector)') },
      { id: 4, callFrame: frame('writeBuffer') },
      { id: 5, callFrame: frame('onStreamRead', 'node:internal/stream_base_commons', 167) },
      { id: 6, callFrame: frame('pipe', 'file:///repo/dist/proxy/tcp/pipe.js', 41) },
      { id: 7, callFrame: frame('', 'file:///repo/node_modules/undici/lib/client.js', 9) },
      { id: 8, callFrame: frame('wasm-function[20]', 'wasm://wasm/00034eea', 0) },
    ],
    // Samples every 1000 µs from t=1000; the window [1000, 10000] keeps the first ten.
    startTime: 0,
    endTime: 20000,
    samples: [4, 4, 4, 4, 3, 3, 5, 6, 7, 2, /* outside the window: */ 6, 6, 6, 6, 6],
    timeDeltas: Array.from({ length: 15 }, () => 1000),
  };
}

test('classify puts frames in groups', () => {
  const c = (functionName: string, url = '') => classify({ functionName, url, lineNumber: 0, columnNumber: 0 }, ROOT);
  assert.equal(c('(idle)'), 'idle');
  assert.equal(c('(garbage collector)'), 'gc');
  assert.equal(c('(program)'), 'native');
  assert.equal(c('writev'), 'native');
  assert.equal(c('emit', 'node:events'), 'node');
  assert.equal(c('x', 'file:///repo/node_modules/undici/index.js'), 'dependencies');
  assert.equal(c('wasm-function[1]', 'wasm://wasm/1'), 'dependencies');
  assert.equal(c('route', 'file:///repo/dist/proxy/http/service.js'), 'tandem');
  assert.equal(c('x', 'file:///elsewhere/a.js'), 'other');
});

test('summarizeProfile gives self-time shares of busy samples within the windows', () => {
  const s = summarizeProfile(sampleProfile(), { scenario: 'tcp-bulk', node: 'lb1, 1 hop', file: 'x.cpuprofile', root: ROOT, windows: [[1000, 10000]] });
  assert.equal(s.windowed, true);
  assert.equal(s.busySamples, 9); // ten in the window, one of them idle
  assert.equal(s.busyMs, 9);
  assert.equal(s.idleShare, 0.1);
  assert.deepEqual(s.top.map((f) => [f.name, f.group, (100 * f.share).toFixed(1)]), [
    ['writeBuffer', 'native', '44.4'], ['(garbage collector)', 'gc', '22.2'], ['onStreamRead', 'node', '11.1'],
    ['pipe', 'tandem', '11.1'], ['(anonymous)', 'dependencies', '11.1'],
  ]);
  assert.equal(s.top[3].where, 'dist/proxy/tcp/pipe.js:42');
  assert.equal(s.top[0].where, '(native)');
  assert.ok(Math.abs(s.groups.native - 4 / 9) < 1e-9);
  assert.ok(Math.abs(s.groups.dependencies - 1 / 9) < 1e-9);
  const text = formatProfile(s, 2).join('\n');
  assert.match(text, /^lb1, 1 hop \(tcp-bulk\): 9 ms of CPU in 9 samples within the measured rounds, idle 10\.0%/);
  assert.match(text, /by group: tandem's code 11\.1% · dependencies \(node_modules, wasm\) 11\.1% · node internals \(node:\*\) 11\.1% · GC 22\.2% · native/);
  assert.ok(text.includes('44.4%  native        writeBuffer  ((native))'), text);
  assert.doesNotMatch(text, /onStreamRead/); // top 2 only
});

test('summarizeProfile falls back to the whole profile when no sample is in a window', () => {
  const s = summarizeProfile(sampleProfile(), { scenario: 's', node: 'lb1', file: 'f', root: ROOT, windows: [[1e12, 2e12]], where: () => 'here' });
  assert.equal(s.windowed, false);
  assert.equal(s.busySamples, 14);
  assert.equal(s.top[0].name, 'pipe'); // 6 samples
  assert.equal(s.top[0].where, 'here');
});

test('renderMarkdown shows the CPU profile section when the report has one', () => {
  const r = sampleReport();
  r.meta.cpuProf = 'tcp-bulk';
  r.profiles = [summarizeProfile(sampleProfile(), { scenario: 'tcp-bulk', node: 'lb1, 1 hop', file: 'bench/results/profiles/tcp-bulk/lb1.cpuprofile', root: ROOT, windows: [[1000, 10000]] })];
  const md = renderMarkdown(r);
  assert.match(md, /## CPU profile of tandem \(--cpu-prof tcp-bulk\)/);
  assert.match(md, /\*\*lb1, 1 hop\*\*: 9\.00 ms of CPU, idle 10\.0%; .*GC 22\.2%/);
  assert.match(md, /\| 44\.4% \| native \| writeBuffer \| \(native\) \|/);
  assert.match(md, /ran under the V8 profiler \(--cpu-prof tcp-bulk\) in tcp-bulk: its figures there are slowed/);
  r.meta.restart = false;
  assert.match(renderMarkdown(r), /One set of proxies served the whole run \(--no-restart\)/);
  assert.match(renderMarkdown(r), /\(--cpu-prof tcp-bulk\) from the start of the run to the end of tcp-bulk/);
  r.meta.restart = true;
  assert.match(renderMarkdown(r), /Every scenario starts fresh proxies/);
});
