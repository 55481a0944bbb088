import { test } from 'node:test';
import assert from 'node:assert/strict';
import net, { type Socket } from 'node:net';
import { once } from 'node:events';
import { ErrorCodes, isTandemError } from '../../src/errors.js';
import {
  HandshakeError,
  computeProof,
  decodeReply,
  deriveAuthKey,
  encodeHello,
  initiateHandshake,
  respondHandshake,
  transcript,
  type HandshakeResult,
} from '../../src/cluster/handshake.js';
import { ByteWriter, FrameDecoder, FrameType, HANDSHAKE_FRAME_TYPES } from '../../src/cluster/frame.js';

const SECRET = 'correct horse battery staple';
const KEY = deriveAuthKey(SECRET);
const NODES = new Set(['lb1', 'lb2', 'lb3']);
const responderOpts = { authKey: KEY, cluster: 'demo', selfId: 'lb2', nodeIds: NODES, timeoutMs: 500 };

/** A server running the responder on every connection; results/errors are collected. */
async function withServer(fn: (port: number, results: Array<Promise<{ r?: HandshakeResult; err?: HandshakeError; socket: Socket }>>) => Promise<void>): Promise<void> {
  const results: Array<Promise<{ r?: HandshakeResult; err?: HandshakeError; socket: Socket }>> = [];
  const sockets = new Set<Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    results.push(
      respondHandshake(s, responderOpts).then(
        (r) => ({ r, socket: s }),
        (err: HandshakeError) => {
          s.destroy();
          return { err, socket: s };
        },
      ),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  try {
    await fn(port, results);
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
    await once(server, 'close');
  }
}

async function connect(port: number): Promise<Socket> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  await once(s, 'connect');
  return s;
}

async function waitResult(results: Array<Promise<{ r?: HandshakeResult; err?: HandshakeError; socket: Socket }>>): Promise<{ r?: HandshakeResult; err?: HandshakeError; socket: Socket }> {
  for (const until = Date.now() + 20_000; Date.now() < until && results.length === 0; ) await new Promise((r) => setTimeout(r, 5));
  return results[results.length - 1];
}

test('success: both sides agree on ids, channel and session key', async () => {
  await withServer(async (port, results) => {
    const s = await connect(port);
    const mine = await initiateHandshake(s, { authKey: KEY, cluster: 'demo', selfId: 'lb1', peerId: 'lb2', channel: 'http', timeoutMs: 500 });
    const theirs = await waitResult(results);
    assert.equal(theirs.err, undefined);
    assert.equal(theirs.r?.peerId, 'lb1');
    assert.equal(theirs.r?.channel, 'http');
    assert.equal(mine.peerId, 'lb2');
    assert.ok(mine.session.key.equals(theirs.r.session.key));
    assert.equal(mine.session.key.length, 32);
    s.destroy();
  });
});

test('bytes sent right behind the proof (same segment) are handed over intact', async () => {
  await withServer(async (port, results) => {
    const s = await connect(port);
    const nonceA = Buffer.alloc(16, 7);
    s.write(encodeHello({ channel: 'tcp', cluster: 'demo', from: 'lb3', to: 'lb2', nonce: nonceA }));
    const d = new FrameDecoder({ maxFrameBytes: 1024, types: HANDSHAKE_FRAME_TYPES });
    let reply = null;
    while (reply === null) {
      const [chunk] = (await once(s, 'data')) as [Buffer];
      d.push(chunk);
      reply = d.next();
    }
    const rep = decodeReply(reply.payload);
    const t = transcript({ cluster: 'demo', initiator: 'lb3', responder: 'lb2', channel: 'tcp', nonceA, nonceB: rep.nonce });
    assert.ok(computeProof(KEY, 'resp', t).equals(rep.proof));
    const w = ByteWriter.frame(FrameType.HELLO_PROOF);
    w.bytes(computeProof(KEY, 'init', t));
    const payload = Buffer.from('PROXY-HEADER and then some application bytes');
    s.write(Buffer.concat([w.finish(), payload]));
    const theirs = await waitResult(results);
    assert.equal(theirs.r?.peerId, 'lb3');
    const got: Buffer[] = [];
    theirs.socket.on('data', (c: Buffer) => got.push(c));
    theirs.socket.resume();
    for (const until = Date.now() + 20_000; Date.now() < until && Buffer.concat(got).length < payload.length; ) await new Promise((r) => setTimeout(r, 5));
    assert.ok(Buffer.concat(got).equals(payload));
    s.destroy();
  });
});

async function expectRejected(port: number, results: Array<Promise<{ err?: HandshakeError }>>, reason: string, send: (s: Socket) => void): Promise<void> {
  const s = await connect(port);
  send(s);
  const theirs = await waitResult(results as never);
  assert.ok(theirs.err instanceof HandshakeError, `expected a failure, got ${JSON.stringify(theirs.r)}`);
  assert.equal(theirs.err.reason, reason);
  assert.ok(isTandemError(theirs.err, ErrorCodes.AUTH_FAILED));
  await once(s, 'close');
}

test('wrong secret: the dialer detects it from proofB, the responder never accepts', async () => {
  await withServer(async (port, results) => {
    const s = await connect(port);
    await assert.rejects(
      initiateHandshake(s, { authKey: deriveAuthKey('a different secret!!'), cluster: 'demo', selfId: 'lb1', peerId: 'lb2', channel: 'control', timeoutMs: 500 }),
      (e: unknown) => e instanceof HandshakeError && e.reason === 'bad-proof',
    );
    s.destroy();
    const theirs = await waitResult(results);
    assert.equal(theirs.err?.reason, 'closed');
  });
  // An attacker who answers anyway with a made-up proof.
  await withServer(async (port, results) => {
    await expectRejected(port, results, 'bad-proof', (s) => {
      s.write(encodeHello({ channel: 'control', cluster: 'demo', from: 'lb1', to: 'lb2', nonce: Buffer.alloc(16) }));
      s.once('data', () => {
        const w = ByteWriter.frame(FrameType.HELLO_PROOF);
        w.bytes(Buffer.alloc(32, 1));
        s.write(w.finish());
      });
    });
  });
});

test('wrong cluster name, unknown node, wrong target, self as dialer, bad version', async () => {
  await withServer(async (port, results) => {
    const hello = (over: Partial<Parameters<typeof encodeHello>[0]>) => (s: Socket) =>
      s.write(encodeHello({ channel: 'control', cluster: 'demo', from: 'lb1', to: 'lb2', nonce: Buffer.alloc(16), ...over }));
    await expectRejected(port, results, 'wrong-cluster', hello({ cluster: 'other' }));
    await expectRejected(port, results, 'unknown-node', hello({ from: 'mallory' }));
    await expectRejected(port, results, 'unknown-node', hello({ from: 'lb2' }));
    await expectRejected(port, results, 'wrong-target', hello({ to: 'lb3' }));
    await expectRejected(port, results, 'protocol-version', hello({ version: 9 }));
    await expectRejected(port, results, 'bad-hello', hello({ nonce: Buffer.alloc(4) }));
  });
  // The dialer's view: the peer just closed.
  await withServer(async (port) => {
    const s = await connect(port);
    await assert.rejects(
      initiateHandshake(s, { authKey: KEY, cluster: 'nope', selfId: 'lb1', peerId: 'lb2', channel: 'control', timeoutMs: 500 }),
      (e: unknown) => e instanceof HandshakeError && e.reason === 'closed',
    );
    s.destroy();
  });
});

test('garbage, oversized and silent connections are dropped', async () => {
  await withServer(async (port, results) => {
    await expectRejected(port, results, 'garbage', (s) => s.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')));
    await expectRejected(port, results, 'oversized', (s) => s.write(Buffer.from([0, 0, 0x10, 0, 1, 1])));
    await expectRejected(port, results, 'garbage', (s) => {
      const b = Buffer.from(encodeHello({ channel: 'control', cluster: 'demo', from: 'lb1', to: 'lb2', nonce: Buffer.alloc(16) }));
      b.write('XXXX', 6, 'latin1'); // bad magic
      s.write(b);
    });
    const t0 = Date.now();
    await expectRejected(port, results, 'timeout', () => {});
    assert.ok(Date.now() - t0 >= 450);
  });
});
