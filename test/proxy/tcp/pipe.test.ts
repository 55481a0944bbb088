import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket, type AddressInfo } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { pipeBoth, readExactly, type PipeEnd } from '../../../src/proxy/tcp/pipe.js';
import { waitFor } from '../../helpers/wait.js';
import { PassThrough } from 'node:stream';

/** Every socket a test opened or accepted, destroyed after each test so the process can exit. */
const sockets = new Set<Socket>();
const track = (s: Socket): Socket => {
  sockets.add(s);
  s.once('close', () => sockets.delete(s));
  return s;
};
afterEach(() => {
  for (const s of sockets) s.destroy();
  sockets.clear();
});

async function listen(server: Server): Promise<number> {
  server.on('connection', (s: Socket) => track(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** A proxy in front of `backendPort` using pipeBoth; reports how each pipe ended. */
async function proxy(backendPort: number, idleMs = 0): Promise<{ port: number; ends: PipeEnd[]; close(): void; server: Server }> {
  const ends: PipeEnd[] = [];
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    const b = track(connect({ port: backendPort, host: '127.0.0.1', allowHalfOpen: true }));
    const onErr = () => client.destroy();
    b.once('error', onErr);
    b.once('connect', () => {
      b.off('error', onErr);
      pipeBoth(client, b, { idleMs, onClose: (how) => ends.push(how) });
    });
  });
  const port = await listen(server);
  return { port, ends, server, close: () => server.close() };
}

function collect(s: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer) => parts.push(c));
    s.on('end', () => resolve(Buffer.concat(parts)));
    s.on('error', reject);
  });
}


test('pipe: client half-closes, the backend answers after the FIN (request/response over FIN)', async () => {
  // Backend: reads until FIN, then replies with the sha256 of what it got and closes.
  const backend = createServer({ allowHalfOpen: true }, (s) => {
    const h = createHash('sha256');
    s.on('data', (c) => h.update(c));
    s.on('end', () => s.end(h.digest('hex')));
  });
  const bp = await listen(backend);
  const p = await proxy(bp);
  const payload = randomBytes(3 * 1024 * 1024 + 7);
  const c = track(connect({ port: p.port, host: '127.0.0.1', allowHalfOpen: true }));
  const reply = collect(c);
  c.end(payload);
  assert.equal((await reply).toString(), createHash('sha256').update(payload).digest('hex'));
  await waitFor(() => p.ends.length === 1, 'p.ends.length === 1');
  assert.deepEqual(p.ends, ['done']);
  p.close();
  backend.close();
});

test('pipe: the backend half-closes first and keeps reading what the client still sends', async () => {
  let received = 0;
  let backendDone!: () => void;
  const got = new Promise<void>((r) => (backendDone = r));
  const backend = createServer({ allowHalfOpen: true }, (s) => {
    s.end('banner-then-FIN');
    s.on('data', (c: Buffer) => (received += c.length));
    s.on('end', () => backendDone());
  });
  const bp = await listen(backend);
  const p = await proxy(bp);
  const c = track(connect({ port: p.port, host: '127.0.0.1', allowHalfOpen: true }));
  const reply = await collect(c); // FIN from the backend reached the client...
  assert.equal(reply.toString(), 'banner-then-FIN');
  // ...and the client → backend direction still flows.
  c.end(Buffer.alloc(1024 * 1024, 1));
  await got;
  assert.equal(received, 1024 * 1024);
  await waitFor(() => p.ends.length === 1, 'p.ends.length === 1');
  assert.deepEqual(p.ends, ['done']);
  p.close();
  backend.close();
});

test('pipe: a reset on one side resets the other promptly', async () => {
  let bs!: Socket;
  const backend = createServer({ allowHalfOpen: true }, (s) => {
    bs = s;
    s.on('error', () => {});
  });
  const bp = await listen(backend);
  const p = await proxy(bp);
  const c = track(connect({ port: p.port, host: '127.0.0.1', allowHalfOpen: true }));
  c.write('x');
  await waitFor(() => bs !== undefined, 'bs !== undefined');
  const err = new Promise<NodeJS.ErrnoException>((r) => c.on('error', r));
  bs.resetAndDestroy();
  // The backend's reset is passed on as a reset (not a FIN, not silence).
  const e = await err;
  assert.equal(e.code, 'ECONNRESET');
  await waitFor(() => p.ends.length === 1, 'p.ends.length === 1');
  assert.ok(p.ends[0] === 'reset' || p.ends[0] === 'aborted');
  p.close();
  backend.close();
});

test('pipe: idle timeout closes both sides; traffic in either direction keeps it open', async () => {
  let bs!: Socket;
  const backend = createServer({ allowHalfOpen: true }, (s) => {
    bs = s;
  });
  const bp = await listen(backend);
  const p = await proxy(bp, 150);
  const c = track(connect({ port: p.port, host: '127.0.0.1', allowHalfOpen: true }));
  c.resume();
  await waitFor(() => bs !== undefined, 'bs !== undefined');
  // Backend → client only, every 50 ms, for 400 ms: never idle.
  for (let i = 0; i < 8; i++) {
    bs.write('tick');
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(p.ends.length, 0);
  const closed = new Promise((r) => c.once('end', r));
  await closed;
  await waitFor(() => p.ends.length === 1, 'p.ends.length === 1');
  assert.deepEqual(p.ends, ['idle']);
  p.close();
  backend.close();
});

test('pipe: backpressure — a backend that does not read stops the client, then everything arrives', async () => {
  let bs!: Socket;
  const backend = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    bs = s;
  });
  const bp = await listen(backend);
  const p = await proxy(bp);
  const c = track(connect({ port: p.port, host: '127.0.0.1', allowHalfOpen: true }));
  await new Promise((r) => c.once('connect', r));
  const chunk = Buffer.alloc(64 * 1024, 2);
  let written = 0;
  const total = 64 * 1024 * 1024;
  // Write until the socket says stop and stays stopped for 300 ms.
  for (;;) {
    while (written < total && c.write(chunk)) written += chunk.length;
    const drained = await Promise.race([new Promise((r) => c.once('drain', () => r(true))), new Promise((r) => setTimeout(() => r(false), 300))]);
    if (!drained) break;
    written += chunk.length;
  }
  assert.ok(written < 32 * 1024 * 1024, `the proxy buffered without bound: ${written} bytes accepted`);
  let got = 0;
  bs.on('data', (d: Buffer) => (got += d.length));
  bs.resume();
  c.end();
  await new Promise((r) => bs.once('end', r));
  assert.ok(got >= written, `${got} < ${written}`);
  p.close();
  backend.close();
});

test('readExactly: takes exactly n bytes and leaves the rest for the next reader', async () => {
  const s = new PassThrough();
  s.write(Buffer.from('abcdefgh'));
  const a = await readExactly(s, 3, 20_000);
  assert.equal(a?.toString(), 'abc');
  setTimeout(() => s.write('ij'), 20);
  const b = await readExactly(s, 7, 20_000);
  assert.equal(b?.toString(), 'defghij');
  s.end('k');
  const c = await readExactly(s, 5, 20_000);
  assert.equal(c, null);
  assert.equal(await readExactly(new PassThrough(), 1, 30), null);
});
