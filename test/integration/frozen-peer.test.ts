/**
 * A primary that freezes (SIGSTOP: connections stay open, nothing answers) while requests are in
 * flight to it: once it is declared dead, those forwards are aborted and retried on the backup,
 * so a GET costs about failureTimeoutMs, not requestMs. (Found by the partition test.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { startCluster, sleep, type TestCluster } from '../helpers/cluster.js';
import { httpBackend, type Backend } from '../helpers/backends.js';

const PORT = 18180;
let c: TestCluster;
let backends: Backend[];

before(async () => {
  backends = await Promise.all(['f1', 'f2'].map((id) => httpBackend(id)));
  c = await startCluster({
    basePort: 18100,
    services: [
      {
        name: 'web',
        protocol: 'http',
        port: PORT,
        flowKey: 'header:x-session',
        backends: backends.map((b) => ({ address: b.address })),
        healthCheck: { type: 'none' },
        timeouts: { requestMs: 20_000 },
      },
    ],
  });
});
after(async () => {
  const p = c?.node('lb3').process;
  if (p) p.kill('SIGCONT');
  await c?.stop();
  await Promise.all((backends ?? []).map((b) => b.close()));
});

async function get(session: string): Promise<{ status: number; backend: string; ms: number }> {
  const t0 = performance.now();
  const r = await request(`http://127.0.0.1:${PORT}/`, { headers: { 'x-session': session }, headersTimeout: 30_000 });
  const text = await r.body.text();
  return { status: r.statusCode, backend: r.statusCode === 200 ? (JSON.parse(text) as { id: string }).id : text, ms: performance.now() - t0 };
}

test('requests in flight to a frozen primary move to the backup once it is declared dead', { timeout: 60_000 }, async (t) => {
  // Sessions whose primary is lb3, sent through lb1.
  const sessions: string[] = [];
  for (let i = 0; sessions.length < 10 && i < 500; i++) {
    const r = (await c.get('lb1', `/api/ranking?key=frozen-${i}`)).body as { wouldOwn: { primary: string } };
    if (r.wouldOwn.primary === 'lb3') sessions.push(`frozen-${i}`);
  }
  const home = new Map<string, string>();
  for (const s of sessions) home.set(s, (await get(s)).backend);

  let stop = false;
  const results: Array<{ status: number; backend: string; ms: number; session: string }> = [];
  const load = sessions.map(async (s) => {
    for (let i = 0; !stop && i < 500; i++) results.push({ ...(await get(s)), session: s });
  });
  await sleep(300);
  c.node('lb3').process!.kill('SIGSTOP');
  await sleep(2500);
  stop = true;
  await Promise.all(load);
  c.node('lb3').process!.kill('SIGCONT');

  const failed = results.filter((r) => r.status !== 200);
  const moved = results.filter((r) => r.status === 200 && r.backend !== home.get(r.session));
  const slowest = Math.max(...results.map((r) => r.ms));
  t.diagnostic(`${results.length} GETs around a SIGSTOP of their primary: ${failed.length} failed, ${moved.length} changed backend, slowest ${slowest.toFixed(0)} ms (failureTimeoutMs 500, requestMs 20000)`);
  assert.equal(failed.length, 0);
  assert.equal(moved.length, 0);
  // A GET left waiting on the frozen primary would end at requestMs with a 504 backend-timeout
  // from the ingress; one moved when lb3 was declared dead is a failover there.
  assert.equal(await c.metric('lb1', 'tandem_http_errors_total', { service: 'web', code: 'backend-timeout' }), 0, 'no GET ended at the request timeout');
  assert.ok((await c.metric('lb1', 'tandem_http_failovers_total', { service: 'web' })) > 0, 'the forwards frozen on lb3 went on to the backup');
});
