import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { FlowSockets, RecentClients, type UdpFlow } from '../../../src/proxy/udp/flows.js';
import { echoBackend, waitFor } from './harness.js';

let b1: Awaited<ReturnType<typeof echoBackend>>;
let b2: Awaited<ReturnType<typeof echoBackend>>;
const target = (b: { address: string }) => {
  const [host, port] = b.address.split(':');
  return { address: b.address, host: host, port: Number(port) };
};
const CLIENT = { address: '10.0.0.1', port: 1000 };

before(async () => {
  b1 = await echoBackend('b1');
  b2 = await echoBackend('b2');
});
after(async () => {
  await b1.close();
  await b2.close();
});

function harness(opts: { maxFlows: number; idleMs?: number; maxPending?: number; now?: () => number }) {
  const replies: Array<{ id: string; text: string }> = [];
  const closed: Array<{ id: string; reason: string }> = [];
  const drops: string[] = [];
  const flows = new FlowSockets({
    maxFlows: opts.maxFlows,
    idleMs: opts.idleMs ?? 30_000,
    maxPending: opts.maxPending,
    now: opts.now,
    onReply: (f: UdpFlow, msg) => replies.push({ id: f.id, text: msg.toString() }),
    onClose: (f, reason) => closed.push({ id: f.id, reason }),
    onDrop: (r) => drops.push(r),
  });
  return { flows, replies, closed, drops };
}

test('flows: each flow has its own connected socket; replies are matched to their flow', async () => {
  const h = harness({ maxFlows: 10 });
  for (let i = 0; i < 5; i++) h.flows.send(`f${i}`, `f${i}`, target(b1), CLIENT, 'lb1', Buffer.from(`m${i}`));
  await waitFor(() => h.replies.length === 5);
  for (const r of h.replies) assert.equal(r.text, `b1:m${r.id.slice(1)}`);
  assert.equal(h.flows.size, 5);
  const ports = new Set([0, 1, 2, 3, 4].map((i) => h.flows.get(`f${i}`)!.socket.address().port));
  assert.equal(ports.size, 5, 'one local port per flow');
  h.flows.closeAll();
  assert.equal(h.flows.size, 0);
  assert.deepEqual(new Set(h.closed.map((c) => c.reason)), new Set(['stop']));
});

test('flows: the count is bounded by maxFlows; the least recently used flow is evicted and counted', async () => {
  const h = harness({ maxFlows: 3 });
  const send = (id: string) => h.flows.send(id, id, target(b1), CLIENT, 'lb1', Buffer.from(id));
  send('a');
  send('b');
  send('c');
  send('a'); // a is now the most recent; b is the LRU
  send('d');
  assert.equal(h.flows.size, 3);
  assert.deepEqual(h.closed, [{ id: 'b', reason: 'lru' }]);
  send('e');
  assert.deepEqual(h.closed.map((c) => c.id), ['b', 'c']);
  assert.ok(h.flows.get('a') && h.flows.get('d') && h.flows.get('e'));
  for (let i = 0; i < 200; i++) send(`x${i}`);
  assert.equal(h.flows.size, 3);
  assert.equal(h.closed.filter((c) => c.reason === 'lru').length, 202);
  h.flows.closeAll();
});

test('flows: idle flows expire after idleMs; activity in either direction keeps a flow', async () => {
  let now = 1_000_000;
  const h = harness({ maxFlows: 10, idleMs: 1000, now: () => now });
  h.flows.send('a', 'a', target(b1), CLIENT, 'lb1', Buffer.from('a'));
  h.flows.send('b', 'b', target(b1), CLIENT, 'lb1', Buffer.from('b'));
  await waitFor(() => h.replies.length === 2);
  now += 600;
  h.flows.send('a', 'a', target(b1), CLIENT, 'lb1', Buffer.from('a2'));
  await waitFor(() => h.replies.length === 3);
  now += 500;
  assert.equal(h.flows.sweep(), 1);
  assert.deepEqual(h.closed, [{ id: 'b', reason: 'idle' }]);
  assert.ok(h.flows.get('a'));
  now += 1000;
  assert.equal(h.flows.sweep(), 1);
  assert.equal(h.flows.size, 0);
  h.flows.closeAll();
});

test('flows: a changed backend replaces the socket; datagrams waiting for connect are bounded', async () => {
  const h = harness({ maxFlows: 10, maxPending: 2 });
  for (let i = 0; i < 5; i++) h.flows.send('a', 'a', target(b1), CLIENT, 'lb1', Buffer.from(`p${i}`));
  assert.deepEqual(h.drops, ['pending-full', 'pending-full', 'pending-full']);
  await waitFor(() => h.replies.length === 2);
  assert.deepEqual(h.replies.map((r) => r.text), ['b1:p0', 'b1:p1']);
  h.flows.send('a', 'a', target(b2), CLIENT, 'lb1', Buffer.from('moved'));
  await waitFor(() => h.replies.length === 3);
  assert.equal(h.replies[2].text, 'b2:moved');
  assert.deepEqual(h.closed, [{ id: 'a', reason: 'replaced' }]);
  assert.equal(h.flows.get('a')!.backend, b2.address);
  h.flows.closeAll();
});

test('recent clients: latest address per key, bounded, idle-expired', () => {
  let now = 0;
  const m = new RecentClients(2, 100, () => now);
  m.set('k1', { address: '1.1.1.1', port: 1 });
  m.set('k1', { address: '2.2.2.2', port: 2 });
  assert.deepEqual(m.get('k1'), { address: '2.2.2.2', port: 2 });
  m.set('k2', { address: '3.3.3.3', port: 3 });
  m.set('k3', { address: '4.4.4.4', port: 4 });
  assert.equal(m.size, 2);
  assert.equal(m.get('k1'), undefined);
  now = 150;
  assert.equal(m.get('k2'), undefined);
  assert.equal(m.sweep(), 1);
  assert.equal(m.size, 0);
});
