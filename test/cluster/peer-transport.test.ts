import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import net, { type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { computeProof, decodeReply, deriveAuthKey, encodeHello, transcript } from '../../src/cluster/handshake.js';
import { ByteWriter, FrameDecoder, FrameType, HANDSHAKE_FRAME_TYPES } from '../../src/cluster/frame.js';
import { ErrorCodes, isTandemError } from '../../src/errors.js';
import { SECRET, makeNode, metric, settingsFor, startAll, stopAll, type TestNode } from './fixtures/cluster-harness.js';

const BASE = 17100;

test('data-plane channels: dial + onChannel, bytes right after the handshake, http.Server hand-off', async (t) => {
  const settings = settingsFor(BASE, 3);
  const nodes: TestNode[] = ['lb1', 'lb2'].map((id) => makeNode(settings, id));
  const [a, b] = nodes;
  const server = http.createServer((req, res) => {
    res.setHeader('x-served-by', 'lb2');
    res.end(`hello ${req.url} from ${(req.socket as Socket & { peerId?: string }).peerId}`);
  });
  try {
    let sessionKeys: Buffer[] = [];
    b.cluster.onChannel('tcp', (socket, peerId, session) => {
      sessionKeys.push(session.key);
      // Echo with the authenticated peer id in front.
      socket.write(`${peerId}:`);
      socket.pipe(socket);
    });
    b.cluster.onChannel('http', (socket, peerId) => {
      // The documented hand-off: emit 'connection', then resume.
      (socket as Socket & { peerId?: string }).peerId = peerId;
      server.emit('connection', socket);
      socket.resume();
    });
    await startAll(nodes);

    await t.test('tcp: an echo with the peer id, written immediately after dial', async () => {
      const s = await a.cluster.dial('lb2', 'tcp');
      s.write('ping');
      let got = '';
      s.on('data', (c: Buffer) => (got += c.toString()));
      for (const until = Date.now() + 20_000; Date.now() < until && got !== 'lb1:ping'; ) await new Promise((r) => setTimeout(r, 5));
      assert.equal(got, 'lb1:ping');
      s.destroy();
      assert.equal(sessionKeys.length, 1);
      assert.equal(sessionKeys[0].length, 32);
      sessionKeys = [];
    });

    await t.test('http: a request over an authenticated peer connection', async () => {
      const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
        const req = http.request({
          path: '/x',
          createConnection: (_opts, cb) => {
            a.cluster.dial('lb2', 'http').then((sock) => cb(null, sock), (err: Error) => cb(err, undefined as never));
            return undefined;
          },
        });
        req.on('error', reject);
        req.on('response', resolve);
        req.end();
      });
      let body = '';
      for await (const c of res) body += c;
      assert.equal(res.headers['x-served-by'], 'lb2');
      assert.equal(body, 'hello /x from lb1');
    });

    await t.test('http: request bytes in the same segment as the proof reach the http.Server', async () => {
      const s = net.connect(settings.nodes[1].peerPort, '127.0.0.2');
      s.on('error', () => {});
      await once(s, 'connect');
      const nonceA = randomBytes(16);
      s.write(encodeHello({ channel: 'http', cluster: 'test', from: 'lb1', to: 'lb2', nonce: nonceA }));
      const d = new FrameDecoder({ maxFrameBytes: 1024, types: HANDSHAKE_FRAME_TYPES });
      let f = null;
      while (f === null) {
        d.push(((await once(s, 'data')) as [Buffer])[0]);
        f = d.next();
      }
      const rep = decodeReply(f.payload);
      const key = deriveAuthKey(SECRET);
      const tr = transcript({ cluster: 'test', initiator: 'lb1', responder: 'lb2', channel: 'http', nonceA, nonceB: rep.nonce });
      const w = ByteWriter.frame(FrameType.HELLO_PROOF);
      w.bytes(computeProof(key, 'init', tr));
      s.write(Buffer.concat([w.finish(), Buffer.from('GET /same-segment HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')]));
      let text = '';
      s.on('data', (c: Buffer) => (text += c.toString()));
      await once(s, 'end');
      assert.match(text, /^HTTP\/1.1 200/);
      assert.match(text, /hello \/same-segment from lb1/);
      s.destroy();
    });

    await t.test('dial errors: unknown node, self, unreachable, no handler', async () => {
      await assert.rejects(a.cluster.dial('nobody', 'tcp'), (e: unknown) => isTandemError(e, ErrorCodes.UNKNOWN_NODE));
      await assert.rejects(a.cluster.dial('lb1', 'tcp'), (e: unknown) => isTandemError(e, ErrorCodes.UNKNOWN_NODE));
      // Refused at once by the kernel, not given up after the connect timeout.
      await assert.rejects(a.cluster.dial('lb3', 'tcp'), (e: unknown) => isTandemError(e, ErrorCodes.PEER_UNAVAILABLE) && /ECONNREFUSED/.test((e as Error).message));
      // lb1 registered no 'udp' handler: it closes the connection once it has verified the proof.
      // (dial() resolves as soon as the peer proved itself: bytes may follow the proof at once.)
      const s = await b.cluster.dial('lb1', 'udp');
      await once(s, 'close');
      assert.equal(await metric(a.registry, 'tandem_peer_auth_failures_total', { reason: 'no-handler' }), 1);
      assert.throws(() => a.cluster.onChannel('control' as never, () => {}), TypeError);
    });
  } finally {
    await stopAll(nodes);
    server.close();
    await once(server, 'close').catch(() => {});
  }
});
