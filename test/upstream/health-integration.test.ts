/**
 * Active health checks against REAL sockets: an HTTP backend on 127.0.0.1 port 0 that is stopped
 * and restarted on the same port; the pool must see it down and up again. How long that takes is
 * printed, not asserted (a busy machine delays timers): the rule "down after `fall` failed probes,
 * up after `rise` good ones" is pinned with a virtual clock in health.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSocket } from 'node:dgram';
import { createServer as createTcp } from 'node:net';
import { Registry } from 'prom-client';
import { HealthChecker } from '../../src/upstream/health.js';
import { HealthMetrics } from '../../src/upstream/health-metrics.js';
import { UpstreamPool } from '../../src/upstream/pool.js';
import { createSelector } from '../../src/balancer/index.js';
import type { HealthCheckConfig } from '../../src/config/schema.js';
import { backend, captureLogger, service } from './helpers.js';

const HOST = '127.0.0.1';
const INTERVAL = 50;
const RISE = 2;
const FALL = 3;

function listen(server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => resolve((server.address() as AddressInfo).port));
  });
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Resolves with the time the checker reported `healthy` for `address`. */
function nextChange(changes: Array<(a: string, h: boolean) => void>, address: string, healthy: boolean): Promise<number> {
  return new Promise((resolve) => {
    changes.push((a, h) => {
      if (a === address && h === healthy) resolve(performance.now());
    });
  });
}

function checkerFor(address: string, hc: Partial<HealthCheckConfig>) {
  const svc = service([backend(address)], { intervalMs: INTERVAL, timeoutMs: 40, rise: RISE, fall: FALL, ...hc });
  const pool = new UpstreamPool(svc.backends, createSelector('round-robin'));
  const listeners: Array<(a: string, h: boolean) => void> = [];
  const checker = new HealthChecker({
    service: svc,
    pool,
    logger: captureLogger('warn').logger,
    metrics: new HealthMetrics(new Registry()),
    onChange: (a, h) => listeners.forEach((l) => l(a, h)),
  });
  return { pool, checker, listeners };
}

describe('health checks over real sockets', { timeout: 60_000 }, () => {
  it('http: a stopped backend is marked down, a restarted one up again', async (t) => {
    let hits = 0;
    const handler = (_req: unknown, res: { end(s: string): void }) => {
      hits++;
      res.end('ok');
    };
    let server = createServer(handler);
    const port = await listen(server);
    const address = `${HOST}:${port}`;
    const { pool, checker, listeners } = checkerFor(address, { type: 'http', path: '/healthz' });
    checker.start();
    try {
      // Warm-up: wait until the probes reach the backend (a cold process under load is slow at first).
      for (let waited = 0; hits < 2 && waited < 30_000; waited += INTERVAL) await new Promise((r) => setTimeout(r, INTERVAL));
      assert.ok(hits >= 2, `probed ${hits} times`);
      assert.equal(pool.get(address)!.healthy, true);

      const down = nextChange(listeners, address, false);
      await close(server);
      const stoppedAt = performance.now();
      const downAt = await down;
      assert.equal(pool.usable(address), false);

      const upAgain = nextChange(listeners, address, true);
      server = createServer(handler);
      await listen(server, port);
      const startedAt = performance.now();
      const upAt = await upAgain;
      assert.equal(pool.usable(address), true);
      t.diagnostic(`down after ${(downAt - stoppedAt).toFixed(0)} ms (fall ${FALL} × ${INTERVAL} ms), up after ${(upAt - startedAt).toFixed(0)} ms (rise ${RISE} × ${INTERVAL} ms)`);
    } finally {
      checker.stop();
      await close(server);
    }
  });

  it('http: a status outside expectStatus takes the backend down', async () => {
    let status = 200;
    const server = createServer((_req, res) => res.writeHead(status).end());
    const address = `${HOST}:${await listen(server)}`;
    const { pool, checker, listeners } = checkerFor(address, { type: 'http', expectStatus: '200-299' });
    checker.start();
    try {
      const down = nextChange(listeners, address, false);
      status = 503;
      await down;
      assert.equal(pool.get(address)!.lastCheckError, 'status 503');
    } finally {
      checker.stop();
      await close(server);
    }
  });

  it('tcp: connect check follows a listener going away and coming back', async () => {
    let server = createTcp((s) => s.destroy());
    const port = await new Promise<number>((r) => server.listen(0, HOST, () => r((server.address() as AddressInfo).port)));
    const address = `${HOST}:${port}`;
    const { pool, checker, listeners } = checkerFor(address, { type: 'tcp' });
    checker.start();
    try {
      const down = nextChange(listeners, address, false);
      await new Promise<void>((r) => server.close(() => r()));
      await down;
      assert.equal(pool.usable(address), false);
      const up = nextChange(listeners, address, true);
      server = createTcp((s) => s.destroy());
      await new Promise<void>((r) => server.listen(port, HOST, () => r()));
      await up;
      assert.equal(pool.usable(address), true);
    } finally {
      checker.stop();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('udp: payload/expect check follows a server that stops answering as expected', async () => {
    let reply = 'PONG';
    const server = createSocket('udp4');
    server.on('message', (msg, rinfo) => {
      if (msg.toString() === 'PING') server.send(reply, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => server.bind(0, HOST, r));
    const address = `${HOST}:${server.address().port}`;
    const { pool, checker, listeners } = checkerFor(address, { type: 'udp', payload: 'PING', expect: 'PONG' });
    checker.start();
    try {
      const down = nextChange(listeners, address, false);
      reply = 'nope';
      await down;
      const up = nextChange(listeners, address, true);
      reply = 'PONG!';
      await up;
      assert.equal(pool.usable(address), true);
    } finally {
      checker.stop();
      server.close();
    }
  });
});
