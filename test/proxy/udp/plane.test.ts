import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { EncapType, deriveUdpKey, encodeEncap, parseEncap, verifyEncap, type EncapFields } from '../../../src/proxy/udp/encap.js';
import { SECRET, echoBackend, fakeCluster, incarnationOf, metricValue, udpService, waitFor, type FakeCluster } from './harness.js';

// Ports 17410-17419 (this file). lb1 is a real node; lb2 is played by a raw socket on its address.
const PEER_BASE = 17410;
const KEY = deriveUdpKey(SECRET);
let counter = 0n;
const next = (): bigint => ++counter;
// lb2 → lb1, as the control links agreed (harness.ts: incarnationOf).
const EPOCHS = { sender: incarnationOf('lb2'), receiver: incarnationOf('lb1') };
const OLD_LB2 = { sender: Buffer.alloc(8, 0x77), receiver: incarnationOf('lb1') };
const OLD_LB1 = { sender: incarnationOf('lb2'), receiver: Buffer.alloc(8, 0x66) };

let cluster: FakeCluster;
let backend: Awaited<ReturnType<typeof echoBackend>>;
let fake: Socket;
const got: Buffer[] = [];
const LB1 = { host: '127.0.0.1', port: PEER_BASE };

function datagram(over: Partial<EncapFields> = {}, payload = 'hello', epochs = EPOCHS, counter = next(), key = KEY): Buffer {
  const f: EncapFields = {
    type: EncapType.FORWARD,
    sender: 'lb2',
    service: 'u',
    key: '10.9.9.9:4000',
    client: { address: '10.9.9.9', port: 4000 },
    ingress: 'lb2',
    ...over,
  };
  return encodeEncap(key, f, epochs, counter, Buffer.from(payload))!;
}

function sendFrom(sock: Socket, buf: Buffer): Promise<void> {
  return new Promise((r) => sock.send(buf, LB1.port, LB1.host, () => r()));
}

const rejected = (reason: string) => metricValue(cluster.node('lb1').registry, 'tandem_udp_rejected_total', { reason });

before(async () => {
  backend = await echoBackend('b1');
  cluster = await fakeCluster({ ids: ['lb1', 'lb2'], peerBase: PEER_BASE, service: udpService('u', 17415, [backend.address]) });
  await cluster.crash('lb2');
  fake = createSocket('udp4');
  fake.on('message', (m) => got.push(m));
  await new Promise<void>((r) => fake.bind(PEER_BASE + 1, '127.0.0.2', r));
});

after(async () => {
  await cluster.close();
  await backend.close();
  await new Promise<void>((r) => fake.close(() => r()));
});

test('plane: an authenticated forward is served and the reply comes back encapsulated to the ingress node', async () => {
  await sendFrom(fake, datagram());
  await waitFor(() => got.length === 1, 'encapsulated reply');
  const p = parseEncap(got[0])!;
  assert.ok(p && verifyEncap(KEY, p));
  assert.equal(p.type, EncapType.REPLY);
  assert.equal(p.sender, 'lb1');
  assert.equal(p.ingress, 'lb2');
  assert.equal(p.key, '10.9.9.9:4000');
  assert.deepEqual(p.client, { address: '10.9.9.9', port: 4000 });
  assert.equal(p.payload.toString(), 'b1:hello');
  assert.equal(backend.count(), 1);
  assert.equal(cluster.node('lb1').proxy.flowCount(), 1);
});

test('plane: a replayed datagram is dropped and counted, the backend never sees it', async () => {
  const buf = datagram({}, 'once');
  await sendFrom(fake, buf);
  await waitFor(() => backend.count() === 2, 'first copy');
  await sendFrom(fake, buf);
  await sendFrom(fake, buf);
  await waitFor(() => cluster.node('lb1').plane.stats.rejected >= 2);
  assert.equal(await rejected('replay'), 2);
  assert.equal(backend.count(), 2);
});

test('plane: forged, unauthenticated or misdirected datagrams are dropped, each under its reason', async () => {
  const before = backend.count();
  const stranger = createSocket('udp4');
  await new Promise<void>((r) => stranger.bind(0, '127.0.0.2', r));
  try {
    await sendFrom(fake, Buffer.from('not a tandem datagram at all, just bytes'));
    await sendFrom(fake, datagram({}, 'x', EPOCHS, next(), deriveUdpKey('the-wrong-secret-0123456789'))); // mac
    const flipped = datagram({}, 'flip');
    flipped[flipped.length - 20] ^= 0x40;
    await sendFrom(fake, flipped); // mac
    await sendFrom(fake, datagram({ sender: 'lb9', ingress: 'lb9' })); // unknown-sender
    await sendFrom(fake, datagram({ sender: 'lb1', ingress: 'lb1' })); // claims to be the receiver itself
    await sendFrom(stranger, datagram()); // right key, right sender id, wrong source port
    await sendFrom(fake, datagram({}, 'old', OLD_LB2)); // stale: an earlier incarnation of the sender
    await sendFrom(fake, datagram({}, 'old', OLD_LB1)); // stale: for an earlier incarnation of the receiver
    await sendFrom(fake, datagram({ type: EncapType.REPLY, ingress: 'lb3' })); // reply not for lb1
    await sendFrom(fake, datagram({ ingress: 'lb1' })); // forward claiming another ingress
    await waitFor(() => cluster.node('lb1').plane.stats.rejected >= 12, 'rejections');
  } finally {
    await new Promise<void>((r) => stranger.close(() => r()));
  }
  assert.equal(await rejected('malformed'), 1);
  assert.equal(await rejected('mac'), 2);
  assert.equal(await rejected('unknown-sender'), 2);
  assert.equal(await rejected('source-mismatch'), 1);
  assert.equal(await rejected('stale'), 2);
  assert.equal(await rejected('misrouted'), 2);
  assert.equal(backend.count(), before, 'nothing forged reached the backend');
});

test('plane: a forward for an unknown service is counted as a drop', async () => {
  await sendFrom(fake, datagram({ service: 'nope' }));
  await waitFor(() => cluster.node('lb1').plane.stats.received >= 3);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(await metricValue(cluster.node('lb1').registry, 'tandem_udp_drops_total', { service: 'nope', reason: 'unknown-service' }), 1);
});
