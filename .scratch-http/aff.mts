import { FakeCluster } from '../test/proxy/http/harness.ts';
import { httpBackend } from '../test/helpers/backends.ts';
import { prng } from '../test/helpers/prng.ts';
import { Agent, request } from 'undici';
const bs = await Promise.all(['b1','b2','b3'].map((id) => httpBackend(id)));
const c = await FakeCluster.start({ basePort: 17200, backends: bs.map((b) => b.address) });
const agent = new Agent({ connections: 64 });
const IDS = ['lb1','lb2','lb3'];
try {
  const rand = prng(7);
  const sessions = Array.from({ length: 100 }, (_, i) => `session-${i}`);
  const jobs = sessions.flatMap((s) => [s, s, s]).sort(() => rand() - 0.5);
  const seen = new Map();
  for (let i = 0; i < jobs.length; i += 30) {
    await Promise.all(jobs.slice(i, i + 30).map(async (s) => {
      const node = IDS[Math.floor(rand() * 3)];
      const r = await request(c.url(node, '/echo'), { headers: { 'x-session': s }, dispatcher: agent });
      const e = await r.body.json() as any;
      if (!seen.has(s)) seen.set(s, []);
      seen.get(s).push(`${node}->${e.id} via=${e.via} primary=${c.entry(node, s)?.primary}`);
    }));
  }
  for (const [s, l] of seen) if (new Set(l.map((x) => x.split('->')[1].split(' ')[0])).size > 1) console.log(s, l);
  for (const n of c.nodes) console.log(n.cfg.id, [...n.dp.suspects], await n.registry.getSingleMetricAsString('tandem_http_failovers_total'));
} finally { await agent.close(); await c.stop(); await Promise.all(bs.map((b) => b.close())); }
