/**
 * Reading a node's Prometheus text for the reliability tests: per-label breakdowns (what
 * TestCluster.metric() sums away), and checks every test ends with.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { TestCluster } from '../../helpers/cluster.js';

/** Undo prom-client's label escaping (backslash, double quote, newline). */
function unescape(v: string): string {
  return v.replace(/\\(n|\\|")/g, (_m, c: string) => (c === 'n' ? '\n' : c));
}

/** name → (value of `label`) → sum of the samples. */
export function byLabel(text: string, name: string, label: string): Map<string, number> {
  const out = new Map<string, number>();
  const re = new RegExp(`(?:^|[,{])${label}="((?:[^"\\\\]|\\\\.)*)"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{.*\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const lm = re.exec(m[2] ?? '');
    const key = lm ? unescape(lm[1]) : '';
    out.set(key, (out.get(key) ?? 0) + Number(m[3]));
  }
  return out;
}

export async function metricsText(c: TestCluster, id: string): Promise<string> {
  return (await c.get(id, '/metrics')).text;
}

export async function reasons(c: TestCluster, id: string, name: string, label = 'reason'): Promise<Map<string, number>> {
  return byLabel(await metricsText(c, id), name, label);
}

export function total(m: Map<string, number>): number {
  let n = 0;
  for (const v of m.values()) n += v;
  return n;
}

/** after - before, per label value, zeros left out. */
export function delta(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

/**
 * Every node of `ids` still runs, answers /healthz, and never logged an uncaught exception (the
 * CLI catches those to keep serving, so a crash-worthy bug shows up only in the log).
 */
export async function assertNodesSound(c: TestCluster, ids: readonly string[]): Promise<void> {
  for (const id of ids) {
    const n = c.node(id);
    assert.ok(n.process !== null && n.process.exitCode === null, `${id} is still running`);
    const h = await c.get(id, '/healthz');
    assert.equal(h.status, 200, `${id} /healthz`);
    let log = '';
    try {
      log = readFileSync(n.logFile, 'utf8');
    } catch {
      /* no log yet */
    }
    const bad = log.split('\n').filter((l) => /uncaught exception|"level":60|FATAL/i.test(l));
    assert.deepEqual(bad.slice(0, 3), [], `${id} logged no uncaught exception / fatal error`);
  }
}

/**
 * After start: every node process of `ids` is ours and running. A port clash (another run of the
 * suite on this machine) makes a new node exit at once while the other run's node answers /readyz
 * on the same address, which would make every later figure meaningless.
 */
export async function assertStarted(c: TestCluster, ids: readonly string[]): Promise<void> {
  await new Promise((r) => setTimeout(r, 200));
  for (const id of ids) {
    const p = c.node(id).process;
    assert.ok(p !== null && p.exitCode === null, `${id} exited right after start (a port in use by another run?):\n${c.log(id)}`);
  }
}
