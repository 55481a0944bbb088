/**
 * A slow peer (issue 20): three nodes on 127.0.0.1-3; lb3 is held to 5 % of one core (a CPU
 * cgroup's quota as root, else SIGSTOP/SIGCONT in the same duty cycle: helpers/throttle.ts) for
 * 10 s while clients send HTTP requests through lb1 and lb2 for two sets of sessions: flows lb3
 * has no part in, and flows whose primary is lb3. Printed: p50/p99 of both sets before, during and
 * after, and what membership made of lb3. Asserted, whatever the machine: no request failed; no
 * flow lb3 has no part in changed owners or backend; lb3's flows kept their backend, and moved to
 * their backup only on a node that declared lb3 dead (its flows move only then).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, sleep, waitUntil, type TestCluster, type FlowView } from '../helpers/cluster.js';
import { httpBackend, type Backend } from '../helpers/backends.js';
import { MixedLoad, movedFlows, percentile } from './helpers/mixed-load.js';
import { throttle, type Throttle } from './helpers/throttle.js';
import { assertNodesSound, assertStarted } from './helpers/metrics.js';

const BASE = 24300;
const HTTP_PORT = BASE + 10;
const SLOW_MS = 10_000;
let c: TestCluster;
let slow: Throttle | null = null;
const backends: Backend[] = [];

before(async () => {
  for (let i = 1; i <= 3; i++) backends.push(await httpBackend(`h${i}`));
  c = await startCluster({
    basePort: BASE,
    services: [{ name: 'web', protocol: 'http', port: HTTP_PORT, flowKey: 'header:x-session', backends: backends.map((b) => ({ address: b.address })), healthCheck: { type: 'http', path: '/healthz', intervalMs: 1000 } }],
  });
  await assertStarted(c, ['lb1', 'lb2', 'lb3']);
});

after(async () => {
  slow?.restore();
  await c?.stop();
  await Promise.all(backends.map((b) => b.close()));
});

interface Ranking {
  wouldOwn: { primary: string; backup: string | null };
}

test('a peer held to 5 % of a core: the others keep serving, its flows move only if it is declared dead', { timeout: 180_000 }, async (t) => {
  // Two sets of sessions by their rendezvous owners among all three nodes.
  const without: string[] = [];
  const ofSlow: string[] = [];
  for (let i = 0; (without.length < 30 || ofSlow.length < 30) && i < 2000; i++) {
    const key = `slow-${i}`;
    const r = (await c.get('lb1', `/api/ranking?key=${key}`)).body as Ranking;
    if (r.wouldOwn.primary !== 'lb3' && r.wouldOwn.backup !== 'lb3' && without.length < 30) without.push(key);
    else if (r.wouldOwn.primary === 'lb3' && ofSlow.length < 30) ofSlow.push(key);
  }
  const hosts = ['127.0.0.1', '127.0.0.2'];
  const mk = (keys: string[]) => new MixedLoad({ http: { port: HTTP_PORT, sessions: keys.length, workers: 2, keys } }, { hosts, up: () => hosts, epochOf: () => 0, pauseMs: 20, timeoutMs: 30_000 });
  const a = mk(without);
  const b = mk(ofSlow);
  a.start();
  b.start();
  const phase = async (ms: number): Promise<{ a: number[]; b: number[] }> => {
    a.window();
    b.window();
    await sleep(ms);
    return { a: a.window().http, b: b.window().http };
  };
  const entries = async (): Promise<Map<string, FlowView>> => {
    const r = (await c.get('lb1', '/api/flows?service=web&limit=100000')).body as { flows: FlowView[] };
    return new Map(r.flows.map((f) => [f.key, f]));
  };
  const calm = await phase(5000);
  const before0 = await entries();
  const events0 = await Promise.all(['lb1', 'lb2'].map(async (id) => Math.max(0, ...((await c.get(id, '/api/events')).body as { events: Array<{ seq: number }> }).events.map((e) => e.seq))));
  slow = throttle(c.node('lb3').process!.pid!, 0.05);
  const how = slow.how;
  const during = await phase(SLOW_MS);
  slow.restore();
  slow = null;
  const recovered = await phase(3000);
  await a.stop();
  await b.stop();
  const verdicts: string[] = [];
  const sawDead = new Set<string>();
  for (const [i, id] of ['lb1', 'lb2'].entries()) {
    const ev = ((await c.get(id, `/api/events?after=${events0[i]}`)).body as { events: Array<{ kind: string; message: string; data?: { peer: string; state: string } }> }).events;
    for (const e of ev) {
      if (e.kind !== 'membership') continue;
      verdicts.push(`${id} sees ${e.message}`);
      if (e.data?.peer === 'lb3' && e.data.state === 'dead') sawDead.add(id);
    }
  }
  await waitUntil(async () => (await Promise.all(c.nodes.map((n) => c.cluster(n.id)))).every((v) => v.nodes.every((x) => x.state === 'alive')), 30_000, 'all alive again');
  const after0 = await entries();
  const p = (xs: number[]) => `p50 ${percentile(xs, 50).toFixed(1)} / p99 ${percentile(xs, 99).toFixed(1)} ms (${xs.length})`;
  t.diagnostic(`lb3 held to 5 % of a core for ${SLOW_MS / 1000} s by ${how}`);
  t.diagnostic(`flows without lb3 — before: ${p(calm.a)}; during: ${p(during.a)}; after: ${p(recovered.a)}`);
  t.diagnostic(`flows whose primary is lb3 — before: ${p(calm.b)}; during: ${p(during.b)}; after: ${p(recovered.b)}`);
  t.diagnostic(`membership while slow: ${verdicts.length === 0 ? 'no change' : verdicts.join('; ')}`);
  const ownersChanged = without.filter((k) => {
    const x = before0.get(k);
    const y = after0.get(k);
    return x !== undefined && y !== undefined && (x.primary !== y.primary || x.backup !== y.backup || x.backend !== y.backend);
  });
  const slowMoved = ofSlow.filter((k) => before0.get(k)?.primary !== after0.get(k)?.primary);
  t.diagnostic(`lb3's flows re-owned: ${slowMoved.length}/${ofSlow.length} (lb3 declared dead by: ${[...sawDead].join(', ') || 'nobody'})`);
  for (const f of [a.http, b.http]) if (f.errors.length) t.diagnostic(`errors: ${f.errors.join(' | ')}`);
  assert.equal(a.http.failed, 0, `no request of the other flows failed: ${a.http.errors.join(' | ')}`);
  assert.equal(b.http.failed, 0, `no request of lb3's flows failed: ${b.http.errors.join(' | ')}`);
  assert.deepEqual(movedFlows(a.http), [], 'the other flows kept their backend');
  assert.deepEqual(movedFlows(b.http), [], "lb3's flows kept their backend");
  assert.deepEqual(ownersChanged, [], 'the flows lb3 has no part in kept their owners');
  if (sawDead.size === 0) assert.deepEqual(slowMoved, [], 'lb3 was never declared dead, so its flows did not move');
  await assertNodesSound(c, ['lb1', 'lb2', 'lb3']);
});
