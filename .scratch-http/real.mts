import { startCluster } from '../test/helpers/cluster.ts';
import { httpBackend } from '../test/helpers/backends.ts';
import { request, Agent } from 'undici';
const bs = await Promise.all(['b1','b2','b3'].map((id) => httpBackend(id)));
const c = await startCluster({ basePort: 17200, services: [{ name: 'web', protocol: 'http', port: 17205, flowKey: 'header:x-session', backends: bs.map((b) => ({ address: b.address })), healthCheck: { type: 'none' } }] });
const agent = new Agent();
try {
  for (const n of c.nodes) for (const k of ['s1','s2','s3']) {
    const r = await request(`http://${n.host}:17205/e`, { headers: { 'x-session': k }, dispatcher: agent });
    const t = await r.body.text();
    let e: any = {}; try { e = JSON.parse(t) } catch { e = { raw: t } }
    const f = await c.flow(n.id, 'web', k);
    console.log(n.id, k, r.statusCode, e.id, e.via, e.raw ?? '', f?.primary, f?.backend);
  }
} catch (e) { console.log(e); for (const n of c.nodes) console.log(c.log(n.id)); }
finally { await agent.close(); await c.stop(); await Promise.all(bs.map((b) => b.close())); }
