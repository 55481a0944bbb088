// The acceptance aims of tandem's data plane (bench/README.md, "Acceptance"), checked against one
// report: each aim is a ratio of two contenders' medians in one scenario of the same run.
import type { BenchReport, ContenderId, MetricRow } from './types.js';
import { CONTENDERS } from './types.js';
import { formatNumber } from './stats.js';

export interface Aim {
  text: string;
  scenario: string;
  /** The metric's key (rps, mbps, …), or its label in reports written before keys were stored. */
  key: string;
  label: string;
  num: ContenderId;
  den: ContenderId;
  /** at least: num/den ≥ bound (higher is better); at most: num/den ≤ bound (lower is better). */
  op: 'at least' | 'at most';
  bound: number;
  /** A ratio shown beside the figures for context (e.g. HAProxy's own two-hop cost). */
  context?: { num: ContenderId; den: ContenderId; text: string };
}

export const AIMS: readonly Aim[] = [
  { text: 'HTTP keep-alive, 1 hop ≥ 2.5× the naive Node proxy', scenario: 'http-keepalive', key: 'rps', label: 'requests/s', num: 'tandem1', den: 'naive', op: 'at least', bound: 2.5 },
  { text: 'HTTP keep-alive, 1 hop ≥ 0.6× HAProxy', scenario: 'http-keepalive', key: 'rps', label: 'requests/s', num: 'tandem1', den: 'haproxy', op: 'at least', bound: 0.6 },
  {
    text: 'HTTP keep-alive, 2 hops ≥ 0.6× tandem 1 hop', scenario: 'http-keepalive', key: 'rps', label: 'requests/s', num: 'tandem2', den: 'tandem1', op: 'at least', bound: 0.6,
    context: { num: 'haproxy2', den: 'haproxy', text: 'HAProxy chained ÷ HAProxy' },
  },
  { text: 'TCP bulk, 1 hop ≥ 0.9× HAProxy', scenario: 'tcp-bulk', key: 'mbps', label: 'throughput', num: 'tandem1', den: 'haproxy', op: 'at least', bound: 0.9 },
  {
    text: 'TCP bulk, 2 hops ≥ 0.5× tandem 1 hop', scenario: 'tcp-bulk', key: 'mbps', label: 'throughput', num: 'tandem2', den: 'tandem1', op: 'at least', bound: 0.5,
    context: { num: 'haproxy2', den: 'haproxy', text: 'HAProxy chained ÷ HAProxy' },
  },
  { text: 'HTTP, new connection per request ≥ 0.6× HAProxy', scenario: 'http-close', key: 'rps', label: 'requests/s', num: 'tandem1', den: 'haproxy', op: 'at least', bound: 0.6 },
  { text: 'TCP connection rate ≥ 0.9× HAProxy', scenario: 'tcp-connrate', key: 'cps', label: 'connections/s', num: 'tandem1', den: 'haproxy', op: 'at least', bound: 0.9 },
  { text: "HTTP keep-alive p99 latency at 50 connections ≤ 2× HAProxy's", scenario: 'http-keepalive', key: 'p99', label: 'p99 latency', num: 'tandem1', den: 'haproxy', op: 'at most', bound: 2 },
  { text: 'UDP request/response ≥ 1.0× NGINX', scenario: 'udp-rr', key: 'dps', label: 'datagrams/s', num: 'tandem1', den: 'nginx', op: 'at least', bound: 1 },
  // HTTPS front: the handshake is OpenSSL's work in every contender.
  { text: 'Full TLS handshakes/s (ECDSA P-256) ≥ 0.6× HAProxy', scenario: 'https-handshake', key: 'rps', label: 'handshakes/s', num: 'tandem1', den: 'haproxy', op: 'at least', bound: 0.6 },
];

export interface Check { aim: string; status: 'met' | 'missed' | 'not measured'; ratio?: number; detail: string }

const name = (id: ContenderId) => CONTENDERS.find((c) => c.id === id)?.label ?? id;

function findRow(r: BenchReport, a: Aim): MetricRow | undefined {
  const s = r.scenarios.find((x) => x.id === a.scenario);
  return s?.metrics.find((m) => m.key === a.key) ?? s?.metrics.find((m) => m.key === undefined && m.metric === a.label);
}

const value = (row: MetricRow, id: ContenderId) => {
  const c = row.cells[id];
  return c?.status === 'ok' && c.value !== undefined && Number.isFinite(c.value) ? c.value : undefined;
};

export function checkAims(r: BenchReport, aims: readonly Aim[] = AIMS): Check[] {
  return aims.map((a) => {
    const row = findRow(r, a);
    if (!row) return { aim: a.text, status: 'not measured', detail: `scenario ${a.scenario} not run` };
    const num = value(row, a.num);
    const den = value(row, a.den);
    if (num === undefined || den === undefined || den === 0) {
      const missing = [num === undefined ? a.num : undefined, den === undefined || den === 0 ? a.den : undefined].filter((x): x is ContenderId => !!x);
      const why = missing.map((id) => `${name(id)} ${row.cells[id]?.status ?? 'missing'}`).join(', ');
      return { aim: a.text, status: 'not measured', detail: why };
    }
    const ratio = num / den;
    const ok = a.op === 'at least' ? ratio >= a.bound : ratio <= a.bound;
    let detail = `${ratio.toFixed(2)}× (${name(a.num)} ${formatNumber(num)} ÷ ${name(a.den)} ${formatNumber(den)} ${row.unit}; aim ${a.op === 'at least' ? '≥' : '≤'} ${a.bound.toFixed(1)}×)`;
    if (a.context) {
      const cn = value(row, a.context.num);
      const cd = value(row, a.context.den);
      if (cn !== undefined && cd) detail += `; ${a.context.text}: ${(cn / cd).toFixed(2)}×`;
    }
    return { aim: a.text, status: ok ? 'met' : 'missed', ratio, detail };
  });
}
