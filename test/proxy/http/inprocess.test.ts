/**
 * The HTTP proxy across three in-process nodes (harness.ts): routing and affinity, Via/XFF/
 * Forwarded, streaming both ways through two hops, 100-continue, upgrade tunnels, header hygiene.
 * The same scenarios run against real node processes in cluster.test.ts.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { Agent, request } from 'undici';
import { FakeCluster } from './harness.js';
import { rawExchange, upgradeEcho, randomBody } from './clients.js';
import { httpBackend, type Backend } from '../../helpers/backends.js';
import { prng } from '../../helpers/prng.js';

const IDS = ['lb1', 'lb2', 'lb3'];
let c: FakeCluster;
let backends: Backend[];
let agent: Agent;

before(async () => {
  backends = await Promise.all(['b1', 'b2', 'b3'].map((id) => httpBackend(id)));
  c = await FakeCluster.start({ basePort: 17220, backends: backends.map((b) => b.address) });
  agent = new Agent({ connections: 64 });
});
after(async () => {
  await agent?.close();
  await c?.stop();
  await Promise.all((backends ?? []).map((b) => b.close()));
});

interface Echo {
  id: string;
  via: string | null;
  xff: string | null;
  forwarded: string | null;
  bytes: number;
  sha256: string;
  headers: Record<string, string>;
}

async function get(node: string, session: string | null, extra: Record<string, string> = {}): Promise<{ status: number; echo: Echo; headers: Record<string, unknown> }> {
  const headers: Record<string, string> = { ...extra };
  if (session !== null) headers['x-session'] = session;
  const r = await request(c.url(node, '/echo'), { headers, dispatcher: agent });
  const echo = (await r.body.json()) as Echo;
  return { status: r.statusCode, echo, headers: r.headers };
}

/** A session key whose primary is `primary` (per the harness's ranking). */
function keyOwnedBy(primary: string, prefix = 'k'): string {
  for (let i = 0; ; i++) if (c.rank(`${prefix}${i}`)[0] === primary) return `${prefix}${i}`;
}

test('300 requests over 100 sessions to random nodes: one backend per session, Via from receiver to primary, entries identical', async () => {
  const rand = prng(7);
  const sessions = Array.from({ length: 100 }, (_, i) => `session-${i}`);
  const seen = new Map<string, Set<string>>();
  const jobs = sessions.flatMap((s) => [s, s, s]).sort(() => rand() - 0.5);
  for (let i = 0; i < jobs.length; i += 30) {
    await Promise.all(
      jobs.slice(i, i + 30).map(async (s) => {
        const node = IDS[Math.floor(rand() * 3)];
        const { status, echo } = await get(node, s);
        assert.equal(status, 200);
        const primary = c.entry(node, s)!.primary;
        const via = (echo.via ?? '').split(',').map((x) => x.trim());
        assert.equal(via[0], `1.1 ${node}`, `Via starts at the receiving node: ${echo.via}`);
        if (node !== primary) assert.deepEqual(via, [`1.1 ${node}`, `1.1 ${primary}`]);
        else assert.deepEqual(via, [`1.1 ${node}`]);
        assert.equal(echo.xff, '127.0.0.1');
        let set = seen.get(s);
        if (!set) seen.set(s, (set = new Set()));
        set.add(echo.id);
      }),
    );
  }
  for (const [s, set] of seen) assert.equal(set.size, 1, `session ${s} reached ${[...set]}`);
  await new Promise((r) => setTimeout(r, 20));
  for (const s of sessions) {
    const [a, b, d] = IDS.map((id) => c.entry(id, s));
    assert.ok(a && a.backend, `entry for ${s} on lb1`);
    assert.deepEqual(b, a);
    assert.deepEqual(d, a);
    assert.equal(backends.find((x) => x.address === a.backend)?.id, [...seen.get(s)!][0]);
  }
});

test('a request without the session header falls back to the client ip', async () => {
  const { status } = await get('lb2', null);
  assert.equal(status, 200);
  assert.ok(c.entry('lb2', '127.0.0.1'), 'entry keyed by client ip');
});

test('client-supplied x-tandem-* fields are dropped; hop-by-hop fields removed; XFF and Forwarded appended', async () => {
  const key = keyOwnedBy('lb2');
  const r = await rawExchange(
    '127.0.0.1',
    c.port,
    'GET /echo HTTP/1.1\r\nHost: t\r\n' +
      `x-session: ${key}\r\n` +
      'X-Tandem-Client: 6.6.6.6:1\r\nx-tandem-flow-key: forged\r\nx-tandem-service: other\r\n' +
      'X-Forwarded-For: 10.0.0.9\r\nForwarded: for=10.0.0.9\r\nVia: 1.0 upstream\r\n' +
      'Connection: X-Secret, keep-alive, close\r\nX-Secret: hop\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\n\r\n',
  );
  assert.match(r.text, /^HTTP\/1\.1 200 /);
  const echo = JSON.parse(r.text.slice(r.text.indexOf('\r\n\r\n') + 4)) as Echo;
  for (const h of ['x-tandem-client', 'x-tandem-flow-key', 'x-tandem-service', 'x-secret', 'keep-alive', 'te', 'proxy-connection']) {
    assert.equal(echo.headers[h], undefined, h);
  }
  assert.equal(echo.xff, '10.0.0.9, 127.0.0.1');
  assert.equal(echo.forwarded, 'for=10.0.0.9, for=127.0.0.1;proto=http;by=_lb1');
  assert.equal(echo.via, '1.0 upstream, 1.1 lb1, 1.1 lb2');
  assert.ok(c.entry('lb1', key), 'keyed by the real header, not a forged one');
});

test('responses carry Via of both hops', async () => {
  const key = keyOwnedBy('lb3');
  const { headers } = await get('lb1', key);
  assert.equal(headers.via, '1.1 lb3, 1.1 lb1');
  assert.ok(headers['x-backend']);
});

test('POST of a 10 MB streamed body and a 10 MB chunked response pass intact through two hops', async () => {
  const key = keyOwnedBy('lb3');
  const body = randomBody(10 * 1024 * 1024);
  const r = await request(c.url('lb1', '/upload'), { method: 'POST', headers: { 'x-session': key }, body: body.stream, dispatcher: agent });
  const echo = (await r.body.json()) as Echo;
  assert.equal(r.statusCode, 200);
  assert.equal(echo.bytes, 10 * 1024 * 1024);
  assert.equal(echo.sha256, body.sha256());
  assert.equal(echo.via, '1.1 lb1, 1.1 lb3');

  const total = 10 * 1024 * 1024;
  const d = await request(c.url('lb2', `/stream?bytes=${total}`), { headers: { 'x-session': key }, dispatcher: agent });
  assert.equal(d.statusCode, 200);
  assert.equal(d.headers['transfer-encoding'], 'chunked');
  const h = createHash('sha256');
  let n = 0;
  for await (const chunk of d.body) {
    h.update(chunk as Buffer);
    n += (chunk as Buffer).length;
  }
  assert.equal(n, total);
  assert.equal(h.digest('hex'), createHash('sha256').update(Buffer.alloc(total, 0x61)).digest('hex'));
});

test('a small body with Content-Length is forwarded (buffered for replay) intact', async () => {
  const key = keyOwnedBy('lb2');
  const payload = Buffer.alloc(40_000, 7);
  const r = await request(c.url('lb1', '/small'), { method: 'PUT', headers: { 'x-session': key }, body: payload, dispatcher: agent });
  const echo = (await r.body.json()) as Echo;
  assert.equal(echo.bytes, payload.length);
  assert.equal(echo.sha256, createHash('sha256').update(payload).digest('hex'));
});

test('Expect: 100-continue is answered before the body is sent', async () => {
  const key = keyOwnedBy('lb2');
  const head = `POST /e HTTP/1.1\r\nHost: t\r\nx-session: ${key}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`;
  const got = await new Promise<string>((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: c.port });
    let text = '';
    s.on('connect', () => s.write(head));
    s.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.startsWith('HTTP/1.1 100') && !text.includes('hello-sent')) {
        text += 'hello-sent';
        s.write('hello');
      }
    });
    s.on('close', () => resolve(text));
    s.on('error', reject);
  });
  assert.match(got, /^HTTP\/1\.1 100 Continue/);
  assert.match(got, /HTTP\/1\.1 200/);
  assert.match(got, /"bytes":5/);
});

test('a WebSocket-style upgrade through a non-primary node echoes both ways', async () => {
  const key = keyOwnedBy('lb3');
  const { head, echoes } = await upgradeEcho('127.0.0.1', c.port, { 'x-session': key }, ['hello', 'world', 'x'.repeat(100_000)]);
  assert.match(head, /^HTTP\/1\.1 101/);
  assert.deepEqual(echoes.slice(0, 2), ['hello', 'world']);
  assert.equal(echoes[2].length, 100_000);
  const entry = c.entry('lb1', key)!;
  assert.equal(entry.primary, 'lb3');
  assert.match(head, new RegExp(`X-Backend: ${backends.find((b) => b.address === entry.backend)!.id}`));
});

test('malformed request line → 400 with tandem-error; missing Host → 400; CONNECT → 405', async () => {
  const r = await rawExchange('127.0.0.2', c.port, 'GARBAGE\r\n\r\n');
  assert.match(r.text, /^HTTP\/1\.1 400 /);
  assert.match(r.text, /tandem-error: bad-request/);
  assert.ok(r.closed);
  const h = await rawExchange('127.0.0.2', c.port, 'GET / HTTP/1.1\r\n\r\n');
  assert.match(h.text, /^HTTP\/1\.1 400 /);
  const k = await rawExchange('127.0.0.2', c.port, 'CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n');
  assert.match(k.text, /^HTTP\/1\.1 405 /);
  assert.equal((await get('lb2', 'after-bad')).status, 200);
});

test('a 64 KB header → 431 with tandem-error, and the node goes on serving', async () => {
  const r = await rawExchange('127.0.0.1', c.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
  assert.match(r.text, /^HTTP\/1\.1 431 /);
  assert.match(r.text, /tandem-error: header-too-large/);
  assert.equal((await get('lb1', 'after-431')).status, 200);
});

test('an invalid flow key (control character) → 400', async () => {
  const r = await rawExchange('127.0.0.1', c.port, 'GET / HTTP/1.1\r\nHost: x\r\nx-session: a\x01b\r\n\r\n');
  assert.match(r.text, /^HTTP\/1\.1 400 /);
});


test('pipelined requests are answered in order, a large streamed response first', async () => {
  const key = keyOwnedBy('lb2', 'pipe');
  const one = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: t\r\nx-session: ${key}\r\n\r\n`;
  const data = one('/stream?bytes=1000000') + one('/echo?n=2') + one('/echo?n=3').replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n');
  const r = await rawExchange('127.0.0.1', c.port, data);
  assert.ok(r.closed);
  const statuses = r.text.match(/HTTP\/1\.1 \d{3}/g) ?? [];
  assert.deepEqual(statuses, ['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 200']);
  const i2 = r.text.indexOf('"url":"/echo?n=2"');
  const i3 = r.text.indexOf('"url":"/echo?n=3"');
  assert.ok(i2 > 1_000_000 && i3 > i2, 'in order, after the 1 MB body');
});
