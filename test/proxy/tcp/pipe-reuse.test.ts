/**
 * The pipe's allocation-free path (pipe.ts): a direction that has moved 64 KiB takes its socket
 * over and reads into recycled buffers (buffers.ts). What must hold whatever the timing: every
 * byte arrives intact and in order in both directions, including bytes buffered before the
 * takeover and while the destination is slow (buffers lent to queued writes are not reused), and
 * the pool recycles instead of allocating per read.
 */
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket, type AddressInfo } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { pipeBoth, readExactly, type PipeHandle } from '../../../src/proxy/tcp/pipe.js';
import { BufferPool } from '../../../src/proxy/tcp/buffers.js';

const open = new Set<Socket>();
const servers = new Set<Server>();
const track = (s: Socket): Socket => {
  open.add(s);
  s.once('close', () => open.delete(s));
  return s;
};
afterEach(() => {
  for (const s of open) s.destroy();
  open.clear();
  for (const s of servers) s.close();
  servers.clear();
});

async function listen(server: Server): Promise<number> {
  servers.add(server);
  server.on('connection', (s: Socket) => track(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A proxy in front of `backendPort`; `before` runs on the client socket before the pipe starts. */
async function proxy(backendPort: number, pool: BufferPool, before?: (client: Socket) => Promise<void>): Promise<{ port: number; pipes: PipeHandle[] }> {
  const pipes: PipeHandle[] = [];
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    client.on('error', () => {});
    const b = track(connect({ port: backendPort, host: '127.0.0.1', allowHalfOpen: true }));
    b.on('error', () => client.destroy());
    b.once('connect', () => {
      void (before ? before(client) : Promise.resolve()).then(() => pipes.push(pipeBoth(client, b, { idleMs: 0, buffers: pool })));
    });
  });
  return { port: await listen(server), pipes };
}

/** Writes `data` in random-sized pieces with pauses, honouring backpressure. */
async function trickle(s: Socket, data: Buffer, seed: number): Promise<void> {
  let x = seed;
  const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let o = 0; o < data.length; ) {
    const n = Math.min(data.length - o, 1 + Math.floor(rnd() * 200_000));
    const ok = s.write(data.subarray(o, o + n));
    o += n;
    if (!ok) await new Promise((r) => s.once('drain', r));
    else if (rnd() < 0.1) await new Promise((r) => setTimeout(r, 1));
  }
  s.end();
}

/**
 * Reads everything, with short random pauses and a long one after each 2 MiB, long enough for the
 * kernel's buffers to fill so that the proxy's writes to this socket queue (and lend buffers).
 */
function slowCollect(s: Socket, seed: number): Promise<Buffer> {
  let x = seed;
  const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32);
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    let nextStall = 2 * 1024 * 1024;
    s.on('data', (c: Buffer) => {
      parts.push(c);
      got += c.length;
      if (got >= nextStall) {
        nextStall += 2 * 1024 * 1024;
        s.pause();
        setTimeout(() => s.resume(), 150);
      } else if (rnd() < 0.05) {
        s.pause();
        setTimeout(() => s.resume(), 2 + Math.floor(rnd() * 20));
      }
    });
    s.on('end', () => resolve(Buffer.concat(parts)));
    s.on('error', reject);
  });
}

test('pipe reuse: 8 MiB each way at once, random pieces, slow readers — intact, taken over, buffers recycled', async () => {
  const pool = new BufferPool();
  const up = randomBytes(8 * 1024 * 1024 + 13);
  const down = randomBytes(8 * 1024 * 1024 + 29);
  let backendGot!: Promise<Buffer>;
  const backend = createServer({ allowHalfOpen: true }, (s) => {
    backendGot = slowCollect(s, 7);
    void trickle(s, down, 11);
  });
  const bp = await listen(backend);
  const p = await proxy(bp, pool);
  const c = track(connect({ port: p.port, host: '127.0.0.1', allowHalfOpen: true }));
  const clientGot = slowCollect(c, 3);
  await new Promise((r) => c.once('connect', r));
  await trickle(c, up, 5);
  assert.equal(sha(await clientGot), sha(down));
  assert.equal(sha(await backendGot), sha(up));
  const pipe = p.pipes[0];
  assert.equal(pipe.zeroAlloc, true, 'both directions read into pooled buffers');
  assert.equal(pipe.bytesAtoB, up.length);
  assert.equal(pipe.bytesBtoA, down.length);
  // 16 MiB moved in 64 KiB reads would be ~256 buffers without recycling.
  assert.ok(pool.allocated <= 16, `pool allocated ${pool.allocated} buffers`);
});

test('pipe reuse: many bulk connections in a row reuse the same buffers', async () => {
  const pool = new BufferPool();
  const backend = createServer({ allowHalfOpen: true }, (s) => {
    const h = createHash('sha256');
    s.on('data', (d: Buffer) => h.update(d));
    s.on('end', () => s.end(h.digest('hex')));
  });
  const bp = await listen(backend);
  const p = await proxy(bp, pool);
  for (let i = 0; i < 8; i++) {
    const data = randomBytes(1024 * 1024 + i);
    const c = track(connect({ port: p.port, host: '127.0.0.1', allowHalfOpen: true }));
    const reply = new Promise<string>((resolve) => {
      let t = '';
      c.on('data', (d) => (t += String(d)));
      c.on('end', () => resolve(t));
    });
    c.end(data);
    assert.equal(await reply, sha(data));
  }
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(pool.allocated <= 8, `allocated ${pool.allocated} buffers for 8 connections of 1 MiB`);
  assert.ok(pool.free >= 1, 'buffers came back to the pool');
});

test('pipe reuse: bytes the socket had already read before the pipe go first, in order', async () => {
  const pool = new BufferPool();
  const backend = createServer({ allowHalfOpen: true }, (s) => {
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('end', () => s.end(sha(Buffer.concat(parts))));
  });
  const bp = await listen(backend);
  // Like a status byte or a handshake: the first byte is consumed, the rest stays buffered in the stream.
  const p = await proxy(bp, pool, async (client) => {
    const first = await readExactly(client, 1, 20_000);
    assert.equal(first?.[0], 0x42);
  });
  const rest = randomBytes(512 * 1024);
  const c = track(connect({ port: p.port, host: '127.0.0.1', allowHalfOpen: true }));
  const reply = new Promise<string>((resolve) => {
    let t = '';
    c.on('data', (d) => (t += String(d)));
    c.on('end', () => resolve(t));
  });
  c.write(Buffer.from([0x42]));
  c.end(rest);
  assert.equal(await reply, sha(rest));
});

test('pipe reuse: a small request and response stay on the plain path (no takeover cost)', async () => {
  const pool = new BufferPool();
  const backend = createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', () => s.end('pong'));
  });
  const bp = await listen(backend);
  const p = await proxy(bp, pool);
  const c = track(connect({ port: p.port, host: '127.0.0.1', allowHalfOpen: true }));
  const reply = new Promise<string>((resolve) => {
    let t = '';
    c.on('data', (d) => (t += String(d)));
    c.on('end', () => resolve(t));
  });
  c.end('ping');
  assert.equal(await reply, 'pong');
  assert.equal(p.pipes[0].zeroAlloc, false);
  assert.equal(pool.allocated, 0);
});
