import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { HealthChecker } from '../../src/upstream/health.js';
import { HealthMetrics } from '../../src/upstream/health-metrics.js';
import { UpstreamPool } from '../../src/upstream/pool.js';
import { createSelector } from '../../src/balancer/index.js';
import type { Probe, ProbeResult } from '../../src/upstream/probes.js';
import type { HealthCheckConfig } from '../../src/config/schema.js';
import { FakeClock, flush } from './fake-clock.js';
import { backend, captureLogger, service } from './helpers.js';
import { prng } from '../helpers/prng.js';

const A = '10.0.0.1:80';
const B = '10.0.0.2:80';
const C = '10.0.0.3:80';

/** A fake probe: each address answers per `up` (default up); every call is recorded with its time. */
function fakeProbe(clock: FakeClock) {
  const up = new Map<string, boolean>();
  const calls: Array<{ address: string; at: number; signal: AbortSignal }> = [];
  const probe: Probe = async (t, _check, signal) => {
    calls.push({ address: t.address, at: clock.now(), signal });
    const r: ProbeResult = up.get(t.address) === false ? { ok: false, reason: 'ECONNREFUSED', timeout: false } : { ok: true };
    return r;
  };
  return { probe, up, calls };
}

function setup(hc: Partial<HealthCheckConfig> = {}, addrs = [A, B], opts: { seed?: number; level?: string } = {}) {
  const clock = new FakeClock();
  const svc = service(addrs.map((a) => backend(a)), hc);
  const pool = new UpstreamPool(svc.backends, createSelector('round-robin'), { now: () => clock.now() });
  const registry = new Registry();
  const metrics = new HealthMetrics(registry);
  const { logger, lines } = captureLogger(opts.level ?? 'debug');
  const fake = fakeProbe(clock);
  const changes: Array<{ address: string; healthy: boolean; at: number }> = [];
  const checker = new HealthChecker({
    service: svc,
    pool,
    logger,
    metrics,
    random: prng(opts.seed ?? 7),
    clock,
    probe: fake.probe,
    onChange: (address, healthy) => changes.push({ address, healthy, at: clock.now() }),
  });
  return { clock, svc, pool, registry, metrics, lines, checker, changes, ...fake };
}

describe('HealthChecker: rise and fall', () => {
  it('marks a backend down after `fall` failed probes and up after `rise` good ones', async () => {
    const { clock, pool, checker, changes, up } = setup({ intervalMs: 1000, fall: 3, rise: 2 });
    checker.start();
    await clock.advance(1000); // every backend probed once (first offsets are within the interval)
    assert.equal(pool.get(A)!.healthy, true);
    const failFrom = clock.now();
    up.set(A, false);
    await clock.advance(2000);
    assert.equal(pool.get(A)!.healthy, true, 'two failures are not enough');
    await clock.advance(1000);
    assert.equal(pool.get(A)!.healthy, false);
    assert.equal(pool.usable(A), false);
    assert.equal(changes.length, 1);
    assert.ok(changes[0].at - failFrom <= 3 * 1000, `down after ${changes[0].at - failFrom} ms`);
    const okFrom = clock.now();
    up.set(A, true);
    await clock.advance(1000);
    assert.equal(pool.get(A)!.healthy, false, 'one good probe is not enough');
    await clock.advance(1000);
    assert.equal(pool.get(A)!.healthy, true);
    assert.ok(changes[1].at - okFrom <= 2 * 1000);
    assert.deepEqual(changes.map((c) => [c.address, c.healthy]), [[A, false], [A, true]]);
    assert.equal(pool.get(B)!.healthy, true);
    checker.stop();
  });

  it('a flapping backend does not flap the pool', async () => {
    const { clock, pool, checker, changes, up } = setup({ intervalMs: 100, fall: 3, rise: 2 }, [A]);
    checker.start();
    for (let i = 0; i < 40; i++) {
      up.set(A, i % 2 === 0);
      await clock.advance(100);
    }
    assert.equal(changes.length, 0);
    assert.equal(pool.get(A)!.healthy, true);
    checker.stop();
  });
});

describe('HealthChecker: scheduling and jitter', () => {
  it('first probe offset is random within the interval (seeded), then exactly every interval', async () => {
    const addrs = Array.from({ length: 8 }, (_, i) => `10.0.1.${i}:80`);
    const { clock, checker, calls } = setup({ intervalMs: 1000 }, addrs, { seed: 42 });
    checker.start();
    const r = prng(42);
    const expected = addrs.map(() => Math.floor(r() * 1000));
    assert.deepEqual(clock.delays, expected, 'offsets come from the injected random, one per backend');
    assert.ok(expected.every((d) => d >= 0 && d < 1000));
    assert.ok(new Set(expected).size > 4, 'spread, not lockstep');
    await clock.advance(5000);
    for (const a of addrs) {
      const times = calls.filter((c) => c.address === a).map((c) => c.at);
      assert.equal(times.length, 5);
      for (let i = 1; i < times.length; i++) assert.equal(times[i] - times[i - 1], 1000);
    }
    checker.stop();
  });

  it('two nodes (two seeds) do not probe a backend in lockstep', () => {
    const one = setup({ intervalMs: 1000 }, [A], { seed: 1 });
    const two = setup({ intervalMs: 1000 }, [A], { seed: 2 });
    one.checker.start();
    two.checker.start();
    assert.notEqual(one.clock.delays[0], two.clock.delays[0]);
    one.checker.stop();
    two.checker.stop();
  });

  it('never overlaps probes of one backend; the period is measured from the probe start', async () => {
    const clock = new FakeClock();
    const svc = service([backend(A)], { intervalMs: 100 });
    const pool = new UpstreamPool(svc.backends, createSelector('round-robin'), { now: () => clock.now() });
    const starts: number[] = [];
    let release: (() => void) | null = null;
    const probe: Probe = (_t, _c, _s) => {
      starts.push(clock.now());
      return new Promise((resolve) => {
        release = () => resolve({ ok: true });
      });
    };
    const checker = new HealthChecker({ service: svc, pool, logger: captureLogger().logger, metrics: new HealthMetrics(new Registry()), random: () => 0, clock, probe });
    checker.start();
    await clock.advance(1000);
    assert.deepEqual(starts, [clock.now() - 1000], 'a hanging probe blocks the next one');
    await clock.advance(30);
    release!();
    await flush();
    // Started at t0, ended at t0 + 1030 (> interval): the next starts at once.
    assert.deepEqual(clock.delays.slice(-1), [0]);
    await clock.advance(0);
    assert.equal(starts.length, 2);
    await clock.advance(40);
    release!();
    await flush();
    assert.deepEqual(clock.delays.slice(-1), [60], 'a 40 ms probe leaves 60 ms to the next start');
    checker.stop();
  });
});

describe('HealthChecker: reload, none, stop', () => {
  it('update keeps the state of kept backends, probes new ones, forgets removed ones', async () => {
    const { clock, pool, checker, up, calls, svc } = setup({ intervalMs: 1000, fall: 3 }, [A, B]);
    checker.start();
    up.set(A, false);
    await clock.advance(2000); // two failures of A
    assert.equal(pool.get(A)!.checkFailures, 2);
    const next = service([backend(A), backend(C)], { intervalMs: 1000, fall: 3 });
    pool.update(next.backends, createSelector('round-robin'), 0);
    checker.update(next);
    assert.deepEqual([...checker.targets].sort(), [A, C]);
    await clock.advance(1000);
    assert.equal(pool.get(A)!.healthy, false, 'the third failure after the reload counts with the two before');
    const bCalls = calls.filter((c) => c.address === B).length;
    await clock.advance(3000);
    assert.equal(calls.filter((c) => c.address === B).length, bCalls, 'B is no longer probed');
    assert.ok(calls.some((c) => c.address === C));
    assert.equal(svc.backends.length, 2);
    checker.stop();
  });

  it('a new interval re-offsets the probes within it', async () => {
    const { clock, checker, calls } = setup({ intervalMs: 1000 }, [A]);
    checker.start();
    await clock.advance(1500);
    checker.update(service([backend(A)], { intervalMs: 100 }));
    const n = calls.length;
    await clock.advance(1000);
    assert.ok(calls.length - n >= 9 && calls.length - n <= 10, `${calls.length - n} probes in 1 s at 100 ms`);
    checker.stop();
  });

  it('type none: no probes; turning checks off brings down backends back up', async () => {
    const off = setup({ type: 'none' });
    off.checker.start();
    assert.equal(off.clock.pending, 0);
    assert.deepEqual(off.checker.targets, []);
    off.checker.stop();

    const { clock, pool, checker, up, changes } = setup({ intervalMs: 100, fall: 1 }, [A, B]);
    checker.start();
    up.set(A, false);
    await clock.advance(100);
    assert.equal(pool.get(A)!.healthy, false);
    checker.update(service([backend(A), backend(B)], { type: 'none' }));
    assert.equal(clock.pending, 0);
    assert.equal(pool.get(A)!.healthy, true);
    assert.deepEqual(changes.map((c) => c.healthy), [false, true]);
    checker.update(service([backend(A), backend(B)], { intervalMs: 100, fall: 1 }));
    await clock.advance(100);
    assert.equal(pool.get(A)!.healthy, false, 'checks back on');
    checker.stop();
  });

  it('stop clears every timer and aborts the probes in flight', async () => {
    const clock = new FakeClock();
    const svc = service([backend(A), backend(B)], { intervalMs: 100 });
    const pool = new UpstreamPool(svc.backends, createSelector('round-robin'), { now: () => clock.now() });
    const signals: AbortSignal[] = [];
    const probe: Probe = (_t, _c, signal) => {
      signals.push(signal);
      return new Promise((resolve) => signal.addEventListener('abort', () => resolve({ ok: false, reason: 'aborted', timeout: false })));
    };
    const checker = new HealthChecker({ service: svc, pool, logger: captureLogger().logger, metrics: new HealthMetrics(new Registry()), random: () => 0.5, clock, probe });
    checker.start();
    await clock.advance(60);
    assert.equal(signals.length, 2);
    checker.stop();
    assert.equal(clock.pending, 0);
    assert.ok(signals.every((s) => s.aborted));
    await flush();
    assert.equal(clock.pending, 0, 'an aborted probe schedules nothing');
    assert.equal(pool.get(A)!.checkFailures, 0, 'and reports nothing');
    assert.equal(checker.running, false);
  });
});

describe('HealthChecker: logs and metrics', () => {
  it('a state change is logged once; single probe failures only at debug', async () => {
    const { clock, checker, up, lines } = setup({ intervalMs: 100, fall: 3, rise: 2 }, [A]);
    checker.start();
    up.set(A, false);
    await clock.advance(1000);
    up.set(A, true);
    await clock.advance(1000);
    const atInfo = lines.filter((l) => (l.level as number) >= 30);
    assert.deepEqual(atInfo.map((l) => [l.level, l.backend, l.service]), [[40, A, 'web'], [30, A, 'web']]);
    assert.match(String(atInfo[0].msg), /backend down/);
    assert.equal(atInfo[0].reason, 'ECONNREFUSED');
    assert.match(String(atInfo[1].msg), /backend up/);
    assert.equal(lines.filter((l) => l.level === 20).length, 10, 'each failed probe at debug');
    checker.stop();
  });

  it('exports up, active, checks, ejections and state changes; one registry serves many checkers', async () => {
    const one = setup({ intervalMs: 100, fall: 1 }, [A, B]);
    const { clock, pool, checker, up, registry, metrics, lines } = one;
    const other = new HealthChecker({
      service: service([backend(C)], { type: 'none' }, 'api'),
      pool: new UpstreamPool([backend(C)], createSelector('round-robin')),
      logger: captureLogger().logger,
      metrics,
    });
    checker.start();
    other.start();
    up.set(A, false);
    pool.acquire(B);
    for (let i = 0; i < 5; i++) pool.reportFailure(B, '5xx');
    await clock.advance(200);
    const text = await registry.metrics();
    const has = (line: string) => assert.ok(text.includes(line), `missing: ${line}\n${text}`);
    has(`tandem_backend_up{service="web",backend="${A}"} 0`);
    has(`tandem_backend_up{service="web",backend="${B}"} 0`);
    has(`tandem_backend_up{service="api",backend="${C}"} 1`);
    has(`tandem_backend_active{service="web",backend="${B}"} 1`);
    has(`tandem_backend_ejections_total{service="web",backend="${B}"} 1`);
    has(`tandem_backend_ejections_total{service="web",backend="${A}"} 0`);
    has('tandem_health_checks_total{service="web",result="fail"} 2');
    has('tandem_health_checks_total{service="web",result="ok"} 2');
    has(`tandem_backend_state_changes_total{service="web",backend="${A}",to="down"} 1`);
    has(`tandem_backend_state_changes_total{service="web",backend="${B}",to="ejected"} 1`);
    const ejected = lines.filter((l) => String(l.msg).includes('ejected'));
    assert.equal(ejected.length, 1);
    assert.equal(ejected[0].level, 40);
    assert.equal(ejected[0].ejectedForMs, 1000);
    checker.stop();
    other.stop();
    const after = await registry.metrics();
    assert.ok(!after.includes(`tandem_backend_up{service="web"`), 'a stopped checker no longer reports its pool');
  });
});
