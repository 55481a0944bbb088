/**
 * Issue 4 acceptance, failover with real processes: kill -9 the node that is primary for a set of
 * sessions while 50 concurrent GETs run for 5 s against the two survivors. No GET may fail and
 * every session keeps its backend. Prints the failover figures (requests retried on the backup,
 * longest added latency).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { startCluster, type TestCluster } from '../../helpers/cluster.js';
import { httpBackend, type Backend } from '../../helpers/backends.js';
import { runLoad, percentile, failoverFigures } from './clients.js';

const PORT = 17215;
let c: TestCluster;
let backends: Backend[];
let agent: Agent;

before(async () => {
  backends = await Promise.all(['b1', 'b2', 'b3'].map((id) => httpBackend(id)));
  c = await startCluster({
    basePort: 17210,
    services: [{ name: 'web', protocol: 'http', port: PORT, flowKey: 'header:x-session', backends: backends.map((b) => ({ address: b.address })), healthCheck: { type: 'none' } }],
  });
  agent = new Agent({ connections: 128 });
});
after(async () => {
  await agent?.close();
  await c?.stop();
  await Promise.all((backends ?? []).map((b) => b.close()));
});

test('kill -9 the primary of a set of sessions under 50 concurrent GETs for 5 s: no GET fails, every session keeps its backend', async () => {
  const sessions = Array.from({ length: 150 }, (_, i) => `fo-${i}`);
  const before = new Map<string, string>();
  for (let i = 0; i < sessions.length; i += 25) {
    await Promise.all(
      sessions.slice(i, i + 25).map(async (s) => {
        const r = await request(`http://${c.node('lb1').host}:${PORT}/w`, { headers: { 'x-session': s }, dispatcher: agent });
        assert.equal(r.statusCode, 200);
        before.set(s, ((await r.body.json()) as { id: string }).id);
      }),
    );
  }
  await new Promise((r) => setTimeout(r, 100));
  const owners = await Promise.all(sessions.map((s) => c.flow('lb1', 'web', s)));
  const victim = 'lb3';
  const victims = sessions.filter((_, i) => owners[i]!.primary === victim);
  assert.ok(victims.length > 20, `${victims.length} sessions on ${victim}`);

  let n = 0;
  const survivors = ['lb1', 'lb2'].map((id) => `http://${c.node(id).host}:${PORT}/l`);
  const t0 = performance.now();
  const load = runLoad({ urls: () => survivors[n++ % 2], sessions, concurrency: 50, durationMs: 5000, agent });
  await new Promise((r) => setTimeout(r, 1500));
  const killedAt = performance.now() - t0;
  await c.kill(victim);
  const res = await load;

  assert.equal(res.failed, 0, res.errors.slice(0, 5).join('\n'));
  for (const [s, set] of res.backends) {
    assert.equal(set.size, 1, `session ${s} saw ${[...set]}`);
    assert.equal([...set][0], before.get(s), `session ${s} moved`);
  }
  let retried = 0;
  for (const id of ['lb1', 'lb2']) retried += await c.metric(id, 'tandem_http_failovers_total', { service: 'web' });
  const f = failoverFigures(res, killedAt);
  console.log(
    `# failover (real processes, kill -9): ${res.ok} GETs in 5 s, ${res.failed} failed; ${victims.length}/150 sessions had the killed node as primary; ` +
      `${retried} forwards retried on the backup. Latency before the kill p50 ${f.baseP50.toFixed(1)} ms / p99 ${f.baseP99.toFixed(1)} ms; ` +
      `slowest request started in the second after the kill ${f.windowMax.toFixed(1)} ms → longest added ≈ ${f.added.toFixed(1)} ms; overall p99 ${percentile(res.latencies, 99).toFixed(1)} ms`,
  );
  // After detection the survivors agree on the flows, backends unchanged.
  for (const s of victims.slice(0, 10)) {
    const [a, b] = await Promise.all([c.flow('lb1', 'web', s), c.flow('lb2', 'web', s)]);
    assert.equal(a!.backend, b!.backend);
    assert.notEqual(a!.primary, victim);
  }
});
