/**
 * Flow keys through the proxy (in-process, harness.ts): cookie:NAME with client-ip fallback, and
 * `connection` keys whose flow ends (tombstone) when the client connection closes.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Agent, request } from 'undici';
import { FakeCluster } from './harness.js';
import { httpBackend, type Backend } from '../../helpers/backends.js';
import { waitFor } from '../../helpers/wait.js';

let backends: Backend[] = [];
let c: FakeCluster | undefined;
after(async () => {
  await c?.stop();
  await Promise.all(backends.map((b) => b.close()));
});

test('cookie:sid keys by the cookie, and falls back to the client ip without it', async () => {
  backends = await Promise.all(['b1', 'b2'].map((id) => httpBackend(id)));
  c = await FakeCluster.start({ basePort: 17286, backends: backends.map((b) => b.address), flowKey: 'cookie:sid' });
  const agent = new Agent();
  try {
    const ids = new Set<string>();
    for (const node of ['lb1', 'lb2', 'lb3']) {
      const r = await request(c.url(node, '/'), { headers: { cookie: 'theme=dark; sid="abc123"' }, dispatcher: agent });
      ids.add(((await r.body.json()) as { id: string }).id);
    }
    assert.equal(ids.size, 1);
    assert.ok(c.entry('lb1', 'abc123'), 'keyed by the cookie value (quotes removed)');
    const r = await request(c.url('lb2', '/'), { headers: { cookie: 'theme=dark' }, dispatcher: agent });
    await r.body.text();
    assert.ok(c.entry('lb2', '127.0.0.1'), 'fallback: client ip');
  } finally {
    await agent.close();
    await c.stop();
    c = undefined;
  }
});

test('connection keys: the flow ends when the client connection closes', async () => {
  c = await FakeCluster.start({ basePort: 17286, backends: backends.map((b) => b.address), flowKey: 'connection' });
  const cl = c;
  const s = net.connect({ host: '127.0.0.1', port: cl.port });
  await new Promise<void>((resolve) => s.once('connect', () => resolve()));
  const key = `127.0.0.1:${s.localPort}`;
  const reply = new Promise<string>((resolve) => {
    let t = '';
    s.on('data', (d) => {
      t += d.toString();
      if (t.includes('"sha256"')) resolve(t);
    });
  });
  s.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.match(await reply, /^HTTP\/1\.1 200/);
  assert.equal(cl.entry('lb1', key)?.ended, false);
  s.destroy();
  await waitFor(() => cl.entry('lb1', key)?.ended === true, 'a tombstone after the close');
});
