/**
 * The peer multiplexer over real loopback sockets: two PeerMux instances ("lb1" dials, "lb2"
 * accepts), with the transport's authentication left out (that is src/cluster's, tested there).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net, { type Socket } from 'node:net';
import { createHash } from 'node:crypto';
import { Registry } from 'prom-client';
import { PeerMux } from '../../../src/proxy/mux/peer-mux.js';
import { muxMetrics } from '../../../src/proxy/mux/metrics.js';
import { ResetCode, encodeFrame, FrameType } from '../../../src/proxy/mux/frame.js';
import { INITIAL_WINDOW, type MuxHandler, type MuxStream } from '../../../src/proxy/mux/stream.js';
import { prng } from '../../helpers/prng.js';

const servers: net.Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

/** A listener on 127.0.0.1:0 whose connections go to `owner.accept` as peer "lb1". */
async function ownerSide(owner: PeerMux): Promise<{ port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    s.pause();
    owner.accept(s, 'lb1');
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, sockets };
}

function dialTo(port: number): (peer: string) => Promise<Socket> {
  return () =>
    new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.pause();
        resolve(s);
      });
      s.once('error', reject);
    });
}

interface Collected {
  data: Buffer[];
  ended: Promise<void>;
  reset: Promise<{ code: number; reason: string }>;
  handler: MuxHandler;
  drains: number;
}

function collector(autoConsume: () => MuxStream | null = () => null): Collected {
  let endResolve!: () => void;
  let resetResolve!: (v: { code: number; reason: string }) => void;
  const c: Collected = {
    data: [],
    drains: 0,
    ended: new Promise((r) => (endResolve = r)),
    reset: new Promise((r) => (resetResolve = r)),
    handler: {
      onData(b) {
        c.data.push(b);
        autoConsume()?.consumed(b.length);
      },
      onEnd: () => endResolve(),
      onReset: (code, reason) => resetResolve({ code, reason }),
      onDrain: () => void c.drains++,
    },
  };
  return c;
}

/** An owner that echoes every stream: head first, then the body, then END. */
function echoOwner(): PeerMux {
  const owner = new PeerMux({ dial: () => Promise.reject(new Error('owner does not dial')) });
  owner.onOpen((stream, head) => {
    stream.write(head);
    return {
      onData(b) {
        stream.write(b);
        stream.consumed(b.length);
      },
      onEnd: () => stream.end(),
      onReset() {},
      onDrain() {},
    };
  });
  return owner;
}

const digest = (bufs: Buffer[]) => createHash('sha256').update(Buffer.concat(bufs)).digest('hex');

test('1000 concurrent streams of random sizes come back intact and in order, per stream', async () => {
  const owner = echoOwner();
  const { port } = await ownerSide(owner);
  const mux = new PeerMux({ dial: dialTo(port), metrics: muxMetrics(new Registry()) });
  const rnd = prng(7);
  const jobs: Promise<void>[] = [];
  for (let i = 0; i < 1000; i++) {
    const head = Buffer.from(`stream ${i}|`);
    const body = Buffer.alloc(Math.floor(rnd() * 20_000));
    for (let j = 0; j < body.length; j++) body[j] = Math.floor(rnd() * 256);
    let s: MuxStream | null = null;
    const c = collector(() => s);
    s = mux.open('lb2', head, c.handler);
    // Split the body in a few writes, the last one with end().
    const cut = Math.floor(body.length / 2);
    s.write(body.subarray(0, cut));
    s.end(body.subarray(cut));
    jobs.push(c.ended.then(() => assert.equal(digest(c.data), digest([head, body]), `stream ${i}`)));
  }
  await Promise.all(jobs);
  assert.ok(mux.connections <= 2, `at most connectionsPerPeer connections (${mux.connections})`);
  mux.close();
  owner.close();
});

test('frames written in one turn of the event loop leave in one socket write', async () => {
  const owner = echoOwner();
  const { port } = await ownerSide(owner);
  let writes = 0;
  const mux = new PeerMux({
    dial: async (p) => {
      const s = await dialTo(port)(p);
      const orig = s.write.bind(s);
      s.write = ((...args: Parameters<Socket['write']>) => {
        writes++;
        return orig(...args);
      }) as Socket['write'];
      return s;
    },
    streamsPerConnection: 1000,
  });
  // Warm the connection up so that the dial is done.
  const warm = collector();
  mux.open('lb2', Buffer.from('warm'), warm.handler, true);
  await warm.ended;
  writes = 0;
  const all: Promise<void>[] = [];
  for (let i = 0; i < 100; i++) {
    const c = collector();
    mux.open('lb2', Buffer.from(`r${i}`), c.handler, true);
    all.push(c.ended);
  }
  await Promise.all(all);
  assert.equal(writes, 1, '100 OPEN frames in one write');
  mux.close();
  owner.close();
});

test('flow control: a receiver that does not consume holds the sender at the window; consuming releases it', async () => {
  const owner = new PeerMux({ dial: () => Promise.reject(new Error('no')) });
  let ownerStream: MuxStream | null = null;
  let received = 0;
  owner.onOpen((stream) => {
    ownerStream = stream;
    return { onData: (b) => void (received += b.length), onEnd() {}, onReset() {}, onDrain() {} };
  });
  const { port } = await ownerSide(owner);
  const mux = new PeerMux({ dial: dialTo(port) });
  const c = collector();
  const s = mux.open('lb2', Buffer.from('h'), c.handler);
  const big = Buffer.alloc(INITIAL_WINDOW * 3, 1);
  assert.equal(s.write(big), false, 'past the window: wait for drain');
  await waitFor(() => received >= INITIAL_WINDOW);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(received, INITIAL_WINDOW, 'the receiver got exactly one window');
  ownerStream!.consumed(received);
  await waitFor(() => received >= 2 * INITIAL_WINDOW);
  ownerStream!.consumed(INITIAL_WINDOW);
  await waitFor(() => received === 3 * INITIAL_WINDOW);
  assert.equal(c.drains, 0, 'no drain while the credit is used up');
  ownerStream!.consumed(INITIAL_WINDOW);
  await waitFor(() => c.drains === 1);
  mux.close();
  owner.close();
});

test('an acceptor that refuses answers REFUSED; the opener hears it on a later tick', async () => {
  const owner = new PeerMux({ dial: () => Promise.reject(new Error('no')) });
  owner.onOpen(() => null);
  const { port } = await ownerSide(owner);
  const mux = new PeerMux({ dial: dialTo(port) });
  const c = collector();
  mux.open('lb2', Buffer.from('x'), c.handler, true);
  assert.equal((await c.reset).code, ResetCode.REFUSED);
  mux.close();
  owner.close();
});

test('a dial that fails marks the waiting streams UNREACHABLE (nothing was sent), never synchronously', async () => {
  const reg = new Registry();
  const mux = new PeerMux({ dial: () => Promise.reject(new Error('ECONNREFUSED')), metrics: muxMetrics(reg) });
  const c = collector();
  let sync = true;
  const reset = c.reset.then((r) => (assert.equal(sync, false), r));
  mux.open('lb9', Buffer.from('x'), c.handler);
  sync = false;
  assert.equal((await reset).code, ResetCode.UNREACHABLE);
  const text = await reg.metrics();
  assert.match(text, /tandem_mux_errors_total\{channel="http",reason="dial-failed"\} 1/);
  // The next open dials again.
  const c2 = collector();
  mux.open('lb9', Buffer.from('y'), c2.handler);
  assert.equal((await c2.reset).code, ResetCode.UNREACHABLE);
  mux.close();
});

test('a dial that hangs times out and refuses its streams', async () => {
  const mux = new PeerMux({ dial: () => new Promise(() => undefined), dialTimeoutMs: 50 });
  const c = collector();
  mux.open('lb9', Buffer.from('x'), c.handler);
  assert.equal((await c.reset).code, ResetCode.UNREACHABLE);
  mux.close();
});

test('the connection breaking mid-stream resets its streams with CONNECTION_LOST; a new open redials', async () => {
  const owner = new PeerMux({ dial: () => Promise.reject(new Error('no')) });
  owner.onOpen(() => ({ onData() {}, onEnd() {}, onReset() {}, onDrain() {} }));
  const { port, sockets } = await ownerSide(owner);
  const mux = new PeerMux({ dial: dialTo(port) });
  const c = collector();
  mux.open('lb2', Buffer.from('x'), c.handler);
  await waitFor(() => sockets.length === 1 && owner.connections === 1);
  sockets[0].destroy();
  assert.equal((await c.reset).code, ResetCode.CONNECTION_LOST);
  owner.onOpen((stream) => {
    stream.end(Buffer.from('fresh'));
    return { onData() {}, onEnd() {}, onReset() {}, onDrain() {} };
  });
  const c2 = collector();
  mux.open('lb2', Buffer.from('y'), c2.handler, true);
  await c2.ended;
  assert.equal(Buffer.concat(c2.data).toString(), 'fresh');
  mux.close();
  owner.close();
});

test('garbage from an authenticated peer closes that connection only, counted; others keep working', async () => {
  const reg = new Registry();
  const owner = echoOwner();
  const ownerWithMetrics = new PeerMux({ dial: () => Promise.reject(new Error('no')), metrics: muxMetrics(reg) });
  ownerWithMetrics.onOpen((stream, head) => {
    stream.end(head);
    return { onData() {}, onEnd() {}, onReset() {}, onDrain() {} };
  });
  const { port } = await ownerSide(ownerWithMetrics);
  const bad = [
    Buffer.from('GET / HTTP/1.1\r\n\r\n'), // not frames at all: a length out of bounds
    encodeFrame(9 as never, 0, 1), // unknown type
    Buffer.concat([encodeFrame(FrameType.OPEN, 0, 5, Buffer.from('a')), encodeFrame(FrameType.OPEN, 0, 5, Buffer.from('b'))]), // id not increasing
    encodeFrame(FrameType.WINDOW, 0, 1, Buffer.alloc(3)), // window of the wrong size
  ];
  for (const b of bad) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    s.resume();
    await new Promise((r) => s.once('connect', r));
    s.write(b);
    await new Promise((r) => s.once('close', r));
  }
  const text = await reg.metrics();
  const errors = [...text.matchAll(/tandem_mux_errors_total\{[^}]*\} (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
  assert.equal(errors, bad.length, text);
  // A well-behaved connection still works.
  const mux = new PeerMux({ dial: dialTo(port) });
  const c = collector();
  mux.open('lb2', Buffer.from('still here'), c.handler, true);
  await c.ended;
  assert.equal(Buffer.concat(c.data).toString(), 'still here');
  mux.close();
  ownerWithMetrics.close();
  owner.close();
});

test('a stream reset by its opener reaches the owner as CANCEL; late frames are dropped', async () => {
  const owner = new PeerMux({ dial: () => Promise.reject(new Error('no')) });
  let got: Promise<{ code: number; reason: string }> | null = null;
  owner.onOpen(() => {
    const c = collector();
    got = c.reset;
    return c.handler;
  });
  const { port } = await ownerSide(owner);
  const mux = new PeerMux({ dial: dialTo(port) });
  const c = collector();
  const s = mux.open('lb2', Buffer.from('x'), c.handler);
  await waitFor(() => got !== null);
  s.reset(ResetCode.CANCEL, 'client left');
  assert.deepEqual(await got!, { code: ResetCode.CANCEL, reason: 'client left' });
  assert.equal(s.write(Buffer.from('late')), false, 'a closed stream takes no writes');
  mux.close();
  owner.close();
});

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
