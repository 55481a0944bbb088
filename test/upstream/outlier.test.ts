import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_OUTLIER_OPTIONS,
  OutlierState,
  eject,
  ejectionMs,
  mayEject,
  recordFailure,
  recordSuccess,
} from '../../src/upstream/outlier.js';
import { UpstreamPool, type BackendEvent } from '../../src/upstream/pool.js';
import { createSelector } from '../../src/balancer/index.js';
import { backend } from './helpers.js';

const ADDRS = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80'];
const [A, B, C] = ADDRS;

function setup(addrs = ADDRS) {
  const now = { t: 1_000_000 };
  const p = new UpstreamPool(addrs.map((a) => backend(a)), createSelector('round-robin'), { now: () => now.t });
  const events: BackendEvent[] = [];
  p.onEvent((e) => events.push(e));
  return { now, p, events };
}

describe('outlier detection: defaults and pure functions', () => {
  it('defaults: eject after 5, base 1 s doubling to 60 s', () => {
    assert.equal(DEFAULT_OUTLIER_OPTIONS.consecutiveFailures, 5);
    assert.deepEqual(
      Array.from({ length: 9 }, (_, i) => ejectionMs(i)),
      [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000],
    );
    assert.equal(ejectionMs(1e9), 60_000, 'no overflow for absurd levels');
  });

  it('a success breaks the run of failures', () => {
    const s = new OutlierState();
    for (let i = 0; i < 4; i++) assert.equal(recordFailure(s), false);
    recordSuccess(s, 0);
    for (let i = 0; i < 4; i++) assert.equal(recordFailure(s), false);
    assert.equal(recordFailure(s), true);
  });

  it('the back-off streak resets after a success period', () => {
    const s = new OutlierState();
    let now = 1_000_000;
    assert.equal(eject(s, now) - now, 1000);
    now += 1000;
    assert.equal(eject(s, now) - now, 2000);
    now += 2000 + DEFAULT_OUTLIER_OPTIONS.successResetMs - 1;
    recordSuccess(s, now);
    assert.equal(s.level, 2, 'not yet');
    now += 1;
    recordSuccess(s, now);
    assert.equal(s.level, 0);
    assert.equal(eject(s, now) - now, 1000);
  });

  it('max ejection percent, but always at least one', () => {
    assert.equal(mayEject(0, 1), true);
    assert.equal(mayEject(1, 1), false);
    assert.equal(mayEject(1, 4), true);
    assert.equal(mayEject(2, 4), false);
    assert.equal(mayEject(0, 4, { ...DEFAULT_OUTLIER_OPTIONS, maxEjectionPercent: 0 }), true);
  });
});

describe('outlier detection through the pool', () => {
  it('5 consecutive failures eject; the back-off doubles 1 s, 2 s, 4 s … up to 60 s', () => {
    const { now, p, events } = setup();
    const a = p.get(A)!;
    for (let i = 0; i < 4; i++) p.reportFailure(A, i % 2 ? '5xx' : 'connect');
    assert.equal(a.ejections, 0);
    assert.equal(p.usable(A), true);
    p.reportFailure(A, 'timeout');
    assert.equal(a.ejections, 1);
    assert.equal(p.usable(A), false);
    assert.equal(a.available, false);
    assert.deepEqual(events, [{ address: A, to: 'ejected', cause: 'timeout', ejectedForMs: 1000, ejections: 1 }]);

    const durations = [1000];
    for (let round = 0; round < 8; round++) {
      now.t = a.ejectedUntil; // the ejection ends by itself
      assert.equal(p.usable(A), true);
      for (let i = 0; i < 5; i++) p.reportFailure(A, 'connect');
      durations.push(a.ejectedUntil - now.t);
    }
    assert.deepEqual(durations, [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    assert.equal(a.ejections, 9);
    assert.equal(a.failures, 45);
  });

  it('failures while ejected count but neither extend the ejection nor start a new run', () => {
    const { now, p } = setup();
    const a = p.get(A)!;
    for (let i = 0; i < 5; i++) p.reportFailure(A, 'connect');
    const until = a.ejectedUntil;
    for (let i = 0; i < 20; i++) p.reportFailure(A, '5xx');
    assert.equal(a.ejectedUntil, until);
    assert.equal(a.ejections, 1);
    assert.equal(a.failures, 25);
    now.t = until;
    for (let i = 0; i < 4; i++) p.reportFailure(A, 'connect');
    assert.equal(p.usable(A), true, 'a fresh run of 5 is needed after an ejection');
  });

  it('successes between failures prevent ejection; a success period resets the back-off', () => {
    const { now, p } = setup();
    const a = p.get(A)!;
    for (let i = 0; i < 50; i++) {
      if (i % 4 === 3) p.reportSuccess(A);
      else p.reportFailure(A, '5xx');
    }
    assert.equal(a.ejections, 0);
    for (let r = 0; r < 3; r++) {
      for (let i = 0; i < 5; i++) p.reportFailure(A, 'connect');
      now.t = a.ejectedUntil;
    }
    assert.equal(a.outlier.level, 3);
    now.t += DEFAULT_OUTLIER_OPTIONS.successResetMs;
    p.reportSuccess(A);
    for (let i = 0; i < 5; i++) p.reportFailure(A, 'connect');
    assert.equal(a.ejectedUntil - now.t, 1000, 'back to the base ejection');
  });

  it('never ejects more than maxEjectionPercent of the pool (at least one)', () => {
    const { p } = setup();
    for (const addr of ADDRS) for (let i = 0; i < 5; i++) p.reportFailure(addr, 'connect');
    assert.deepEqual(p.backends.map((b) => b.ejections), [1, 1, 0, 0]);
    assert.equal(p.usable(C), true);
    const single = setup([A]);
    for (let i = 0; i < 5; i++) single.p.reportFailure(A, 'connect');
    assert.equal(single.p.usable(A), false);
  });

  it('tuning constants can be overridden per pool', () => {
    const now = { t: 1_000_000 };
    const p = new UpstreamPool([backend(A), backend(B)], createSelector('round-robin'), {
      now: () => now.t,
      outlier: { consecutiveFailures: 2, baseEjectionMs: 100, maxEjectionMs: 250 },
    });
    p.reportFailure(A, 'connect');
    p.reportFailure(A, 'connect');
    assert.equal(p.get(A)!.ejectedUntil - now.t, 100);
    assert.equal(p.outlierOptions.successResetMs, DEFAULT_OUTLIER_OPTIONS.successResetMs);
  });

  it('unknown addresses are ignored', () => {
    const { p, events } = setup();
    p.reportFailure('1.2.3.4:5', 'connect');
    p.reportSuccess('1.2.3.4:5');
    assert.equal(events.length, 0);
  });

  it('an ejected backend gets no new flows and its flows move', () => {
    const { p } = setup([A, B]);
    for (let i = 0; i < 5; i++) p.reportFailure(A, 'connect');
    for (let i = 0; i < 10; i++) assert.equal(p.choose(`k${i}`), B);
  });
});

describe('slow start through a policy', () => {
  it('a ramping backend receives a share in line with its effective weight', () => {
    const now = { t: 1_000_000 };
    const p = new UpstreamPool([backend(A, 10), backend(B, 10)], createSelector('round-robin'), { slowStartMs: 10_000, now: () => now.t });
    p.reportCheck(A, false, { rise: 1, fall: 1 });
    p.reportCheck(A, true, { rise: 1, fall: 1 });
    const share = () => {
      let n = 0;
      for (let i = 0; i < 1000; i++) if (p.choose(`k${i}`) === A) n++;
      return n / 1000;
    };
    now.t += 2500; // weight 2.5 of 12.5 → 20 %
    assert.ok(Math.abs(share() - 0.2) < 0.03, `${share()}`);
    now.t += 7500;
    assert.ok(Math.abs(share() - 0.5) < 0.03);
  });
});
