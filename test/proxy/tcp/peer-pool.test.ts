import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { PeerPool } from '../../../src/proxy/tcp/peer-pool.js';
import { waitFor } from '../../helpers/wait.js';


test('peer pool: fills, hands out pooled streams, drops streams the peer closes, refills', async () => {
  const accepted = new Set<Socket>();
  const server = createServer((s) => {
    accepted.add(s);
    s.on('close', () => accepted.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const dial = (): Promise<Duplex> =>
    new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
  const pool = new PeerPool(dial, () => ['p'], { size: 3, tickMs: 20 });
  pool.start();
  await waitFor(() => pool.idle('p') === 3, "pool.idle('p') === 3");
  const { stream, pooled } = await pool.take('p');
  assert.equal(pooled, true);
  await waitFor(() => pool.idle('p') === 3, 'the pool refilled after the take');
  // The peer closes every stream (e.g. it restarted): idle ones are dropped, then replaced.
  for (const s of accepted) s.destroy();
  await waitFor(() => accepted.size >= 3 && pool.idle('p') === 3, "accepted.size >= 3 && pool.idle('p') === 3");
  pool.close();
  assert.equal(pool.idle('p'), 0);
  stream.destroy();
  await waitFor(() => accepted.size === 0, 'accepted.size === 0');
  server.close();
});

test('peer pool: a failing peer is retried after the back-off, not in a loop; dead peers are not kept warm', async () => {
  let dials = 0;
  let peers = ['p'];
  const pool = new PeerPool(
    () => {
      dials++;
      return Promise.reject(new Error('refused'));
    },
    () => peers,
    { size: 4, tickMs: 10, retryMs: 200 },
  );
  pool.start();
  await new Promise((r) => setTimeout(r, 150));
  assert.ok(dials <= 2, `${dials} dials within the back-off`);
  await assert.rejects(pool.take('p'), /refused/);
  peers = [];
  const before = dials;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(dials, before, 'no dial to a peer that is not wanted');
  pool.close();
});

test('peer pool: takes that find no stream grow the peer\'s target; quiet ticks shrink it back', async () => {
  const server = createServer((s) => s.on('error', () => {}));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const dial = (): Promise<Duplex> =>
    new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
  const pool = new PeerPool(dial, () => ['p'], { size: 2, maxSize: 16, tickMs: 20, maxIdleMs: 60_000 });
  pool.start();
  await waitFor(() => pool.idle('p') === 2, "pool.idle('p') === 2");
  // A burst: more takes than the pool holds.
  const taken = await Promise.all(Array.from({ length: 8 }, () => pool.take('p')));
  assert.ok(taken.some((t) => !t.pooled), 'the burst outran the pool');
  assert.ok(pool.target('p') > 2, `target grew to ${pool.target('p')}`);
  await waitFor(() => pool.idle('p') > 2, 'the pool grown');
  // No more misses: the target decays to the configured size.
  await waitFor(() => pool.target('p') === 2, 'the pool shrunk back');
  pool.close();
  for (const t of taken) t.stream.destroy();
  server.close();
});
