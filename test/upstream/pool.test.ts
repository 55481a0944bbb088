import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { UpstreamPool, BackendState, SLOW_START_MIN_FACTOR, type BackendEvent } from '../../src/upstream/pool.js';
import { createSelector } from '../../src/balancer/index.js';
import { backend } from './helpers.js';

const A = '10.0.0.1:80';
const B = '10.0.0.2:80';
const C = '10.0.0.3:80';

function pool(now: { t: number }, slowStartMs = 0, addrs = [A, B, C]): UpstreamPool {
  return new UpstreamPool(addrs.map((a) => backend(a)), createSelector('round-robin'), { slowStartMs, now: () => now.t, random: () => 0.5 });
}

describe('UpstreamPool: usable() and available', () => {
  it('unhealthy → not usable; ejected → not usable; draining → usable but not available', () => {
    const now = { t: 1_000_000 };
    const p = pool(now);
    const a = p.get(A)!;
    assert.equal(p.usable(A), true);
    a.healthy = false;
    assert.equal(p.usable(A), false);
    assert.equal(a.available, false);
    a.healthy = true;
    a.ejectedUntil = now.t + 1000;
    assert.equal(p.usable(A), false);
    assert.equal(a.available, false);
    now.t += 1000;
    assert.equal(p.usable(A), true, 'an ejection ends by itself when its time has passed');
    a.draining = true;
    assert.equal(p.usable(A), true, 'draining keeps existing flows');
    assert.equal(a.available, false, 'draining takes no new flows');
    assert.equal(p.usable('10.9.9.9:1'), false, 'unknown backend');
  });

  it('weight 0 in the config drains; choose() never picks unavailable backends', () => {
    const now = { t: 1_000_000 };
    const p = new UpstreamPool([backend(A, 0), backend(B), backend(C)], createSelector('round-robin'), { now: () => now.t });
    assert.equal(p.get(A)!.draining, true);
    assert.equal(p.usable(A), true);
    p.get(B)!.healthy = false;
    for (let i = 0; i < 20; i++) assert.equal(p.choose(`k${i}`), C);
    p.get(C)!.ejectedUntil = now.t + 5;
    assert.equal(p.choose('k'), null);
  });

  it('acquire/release count active and total', () => {
    const p = pool({ t: 1_000_000 });
    const b = p.acquire(A);
    p.acquire(A);
    assert.equal(p.get(A)!.active, 2);
    p.release(b);
    p.release(b);
    p.release(b);
    assert.equal(p.get(A)!.active, 0);
    assert.equal(p.get(A)!.total, 2);
    assert.equal(p.acquire('nope:1'), undefined);
  });
});

describe('UpstreamPool: a reload keeps runtime state', () => {
  it('kept backends keep counters, health, ejection, drain and check counters; removed ones go', () => {
    const now = { t: 1_000_000 };
    const p = pool(now);
    const a = p.get(A)!;
    p.acquire(A);
    p.acquire(A);
    for (let i = 0; i < 5; i++) p.reportFailure(A, 'connect');
    assert.equal(a.ejections, 1);
    p.reportCheck(B, false, { rise: 2, fall: 3 }, 'status 503');
    p.get(C)!.draining = true;
    p.update([backend(A, 3), backend(B), backend(C)], createSelector('least-connections'), 0);
    assert.equal(p.get(A), a, 'same state object');
    assert.equal(a.configWeight, 3);
    assert.equal(a.active, 2);
    assert.equal(a.total, 2);
    assert.equal(a.ejections, 1);
    assert.ok(a.ejectedUntil > now.t);
    assert.equal(a.failures, 5);
    assert.equal(p.get(B)!.checkFailures, 1);
    assert.equal(p.get(C)!.draining, true);
    p.update([backend(B)], createSelector('round-robin'), 0);
    assert.equal(p.get(A), undefined);
    assert.equal(p.usable(A), false, 'a flow on a removed backend moves');
    assert.deepEqual(p.backends.map((b) => b.address), [B]);
    p.update([backend(A), backend(B)], createSelector('round-robin'), 0);
    assert.notEqual(p.get(A), a, 'a backend removed and added again starts afresh');
    assert.equal(p.get(A)!.ejections, 0);
  });
});

describe('UpstreamPool: active health (rise/fall)', () => {
  it('down after `fall` failures in a row, up after `rise` passes in a row; flapping does not flip', () => {
    const now = { t: 1_000_000 };
    const p = pool(now);
    const events: BackendEvent[] = [];
    p.onEvent((e) => events.push(e));
    const t = { rise: 2, fall: 3 };
    assert.equal(p.reportCheck(A, false, t, 'x'), null);
    assert.equal(p.reportCheck(A, false, t, 'x'), null);
    assert.equal(p.reportCheck(A, true, t), null, 'a pass breaks the run');
    assert.equal(p.reportCheck(A, false, t), null);
    assert.equal(p.reportCheck(A, false, t), null);
    assert.equal(p.get(A)!.healthy, true);
    assert.equal(p.reportCheck(A, false, t, 'ECONNREFUSED'), 'down');
    assert.equal(p.get(A)!.healthy, false);
    assert.equal(p.usable(A), false);
    assert.equal(p.reportCheck(A, false, t), null, 'already down: no second event');
    // Flapping: pass, fail, pass, fail … never reaches rise = 2.
    for (let i = 0; i < 10; i++) assert.equal(p.reportCheck(A, i % 2 === 0, t), null);
    assert.equal(p.reportCheck(A, true, t), null);
    assert.equal(p.reportCheck(A, true, t), 'up');
    assert.equal(p.get(A)!.healthy, true);
    assert.deepEqual(events, [
      { address: A, to: 'down', cause: 'check', reason: 'ECONNREFUSED' },
      { address: A, to: 'up', cause: 'check' },
    ]);
  });

  it('resetHealth brings every down backend back', () => {
    const p = pool({ t: 1_000_000 });
    for (let i = 0; i < 3; i++) p.reportCheck(B, false, { rise: 2, fall: 3 });
    assert.equal(p.get(B)!.healthy, false);
    p.resetHealth();
    assert.equal(p.get(B)!.healthy, true);
    assert.equal(p.get(B)!.checkFailures, 0);
  });
});

describe('UpstreamPool: slow start', () => {
  it('a backend that comes up ramps its weight linearly over slowStartMs (floor 10 %, 5 % steps)', () => {
    const now = { t: 1_000_000 };
    const p = new UpstreamPool([backend(A, 10), backend(B, 10)], createSelector('round-robin'), { slowStartMs: 10_000, now: () => now.t });
    const a = p.get(A)!;
    assert.equal(a.weight, 10, 'the first config serves at full weight at once');
    const t = { rise: 1, fall: 1 };
    p.reportCheck(A, false, t);
    now.t += 5000;
    p.reportCheck(A, true, t);
    assert.equal(a.weight, 10 * SLOW_START_MIN_FACTOR);
    now.t += 500;
    assert.equal(a.weight, 10 * SLOW_START_MIN_FACTOR, '5 % of the window is below the floor');
    now.t += 2000; // 25 %
    assert.equal(a.weight, 2.5);
    now.t += 5000; // 75 %
    assert.equal(a.weight, 7.5);
    now.t += 400; // 79 %: the ramp climbs in 5 % steps
    assert.equal(a.weight, 7.5);
    now.t += 100;
    assert.equal(a.weight, 8);
    now.t += 2000;
    assert.equal(a.weight, 10);
    now.t += 99_999;
    assert.equal(a.weight, 10);
    assert.equal(p.get(B)!.weight, 10);
  });

  it('a backend added by a reload ramps; slowStartMs 0 never ramps', () => {
    const now = { t: 1_000_000 };
    const p = new UpstreamPool([backend(A)], createSelector('round-robin'), { slowStartMs: 1000, now: () => now.t });
    p.update([backend(A), backend(B, 4)], createSelector('round-robin'), 1000);
    now.t += 500;
    assert.equal(p.get(B)!.weight, 2);
    assert.equal(p.get(A)!.weight, 1);
    p.update([backend(A), backend(B, 4), backend(C, 4)], createSelector('round-robin'), 0);
    assert.equal(p.get(C)!.weight, 4);
    assert.equal(p.get(B)!.weight, 4);
  });

  it('BackendState defaults to the real clock', () => {
    const b = new BackendState(backend(A));
    b.ejectedUntil = Date.now() + 60_000;
    assert.equal(b.serving, false);
  });
});
