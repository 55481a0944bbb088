/**
 * Failover in-process (harness.ts): the primary of a set of sessions dies (every socket closed at
 * once, seen dead 500 ms later) while 50 concurrent GETs run for 5 s against the survivors. No
 * GET may fail and every session keeps its backend. Prints the failover figures.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { FakeCluster } from './harness.js';
import { runLoad, percentile, failoverFigures } from './clients.js';
import { httpBackend, type Backend } from '../../helpers/backends.js';

let c: FakeCluster;
let backends: Backend[];
let agent: Agent;

before(async () => {
  backends = await Promise.all(['b1', 'b2', 'b3'].map((id) => httpBackend(id)));
  c = await FakeCluster.start({ basePort: 17270, backends: backends.map((b) => b.address) });
  agent = new Agent({ connections: 128 });
});
after(async () => {
  await agent?.close();
  await c?.stop();
  await Promise.all((backends ?? []).map((b) => b.close()));
});

test('kill the primary of a set of sessions under 50 concurrent GETs for 5 s: no GET fails, every session keeps its backend', async () => {
  const sessions = Array.from({ length: 150 }, (_, i) => `fo-${i}`);
  const victims = sessions.filter((s) => c.rank(s)[0] === 'lb3');
  assert.ok(victims.length > 20);
  // Warm up: every session gets its backend, recorded and replicated.
  const before = new Map<string, string>();
  for (let i = 0; i < sessions.length; i += 25) {
    await Promise.all(
      sessions.slice(i, i + 25).map(async (s) => {
        const r = await request(c.url('lb1', '/w'), { headers: { 'x-session': s }, dispatcher: agent });
        assert.equal(r.statusCode, 200);
        before.set(s, ((await r.body.json()) as { id: string }).id);
      }),
    );
  }
  await new Promise((r) => setTimeout(r, 50));

  let n = 0;
  const survivors = ['lb1', 'lb2'];
  const load = runLoad({ urls: () => c.url(survivors[n++ % 2], '/l'), sessions, concurrency: 50, durationMs: 5000, agent });
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, 1500));
  const killedAt = performance.now() - t0;
  await c.kill('lb3');
  const res = await load;

  assert.equal(res.failed, 0, res.errors.slice(0, 5).join('\n'));
  for (const [s, set] of res.backends) {
    assert.equal(set.size, 1, `session ${s} saw ${[...set]}`);
    assert.equal([...set][0], before.get(s), `session ${s} moved: primary ${c.rank(s)} entry ${JSON.stringify(c.entry('lb1', s))}`);
  }
  let retried = 0;
  for (const id of survivors) {
    const text = await c.node(id).registry.metrics();
    const m = /tandem_http_failovers_total\{service="web"\} (\d+)/.exec(text);
    retried += m ? Number(m[1]) : 0;
  }
  const f = failoverFigures(res, killedAt);
  console.log(
    `# failover (in-process): ${res.ok} GETs in 5 s, ${res.failed} failed; ${victims.length}/150 sessions had the killed node as primary; ` +
      `${retried} forwards retried on the backup. Latency before the kill p50 ${f.baseP50.toFixed(1)} ms / p99 ${f.baseP99.toFixed(1)} ms; ` +
      `slowest request started in the second after the kill ${f.windowMax.toFixed(1)} ms → longest added ≈ ${f.added.toFixed(1)} ms; overall p99 ${percentile(res.latencies, 99).toFixed(1)} ms`,
  );
});
