import { FakeCluster } from '/work/main/test/proxy/http/harness.ts';
import { httpBackend } from '/work/main/test/helpers/backends.ts';
import { request } from 'undici';
const bs = await Promise.all(['b1','b2','b3'].map((id) => httpBackend(id)));
const c = await FakeCluster.start({ basePort: 17200, backends: bs.map((b) => b.address) });
try {
  for (const n of ['lb1','lb2','lb3']) {
    for (const k of ['s1','s2']) {
      const r = await request(c.url(n, '/x?q=1'), { headers: { 'x-session': k } });
      const body = await r.body.json() as any;
      console.log(n, k, r.statusCode, body.id, body.via, body.xff, body.forwarded, r.headers.via, c.entry(n, k)?.primary);
    }
  }
} finally { await c.stop(); await Promise.all(bs.map((b) => b.close())); }
