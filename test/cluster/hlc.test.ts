import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hlc, hlcWallMs, hlcFromWallMs, HLC_LOGICAL_PER_MS, DEFAULT_MAX_AHEAD_MS } from '../../src/cluster/hlc.js';

function fakeClock(start: number): { now: () => number; set(t: number): void } {
  let t = start;
  return { now: () => t, set: (v: number) => { t = v; } };
}

const T0 = Date.UTC(2025, 0, 1);

test('hlc: versions are strictly increasing and carry the wall clock', () => {
  const c = fakeClock(T0);
  const h = new Hlc(c.now);
  const a = h.now();
  assert.equal(a, T0 * HLC_LOGICAL_PER_MS);
  assert.equal(hlcWallMs(a), T0);
  const b = h.now();
  assert.equal(b, a + 1, 'same millisecond: the logical part ticks');
  c.set(T0 + 5);
  const d = h.now();
  assert.equal(d, hlcFromWallMs(T0 + 5), 'wall clock advanced: logical resets');
  assert.equal(h.peek(), d);
});

test('hlc: monotonic when the wall clock goes backwards or stalls', () => {
  const c = fakeClock(T0);
  const h = new Hlc(c.now);
  let last = h.now();
  for (let i = 0; i < 5000; i++) {
    // Jump backwards by up to 2 s every so often, stall otherwise.
    if (i % 97 === 0) c.set(T0 - (i % 2000));
    const v = h.now();
    assert.ok(v > last, `tick ${i}: ${v} <= ${last}`);
    assert.ok(Number.isSafeInteger(v));
    last = v;
  }
  // 5000 ticks in a stalled millisecond carry into the wall part by at most 5000 / 1024 ms.
  assert.ok(hlcWallMs(last) - T0 <= Math.ceil(5000 / HLC_LOGICAL_PER_MS));
});

test('hlc: observe moves the clock forward so the next local write orders after the remote', () => {
  const c = fakeClock(T0);
  const h = new Hlc(c.now);
  h.now();
  const remote = hlcFromWallMs(T0 + 10_000) + 7;
  assert.equal(h.observe(remote), true);
  assert.equal(h.peek(), remote);
  assert.equal(h.now(), remote + 1);
  // An older remote does not move it back.
  assert.equal(h.observe(hlcFromWallMs(T0 - 1000)), true);
  assert.equal(h.peek(), remote + 1);
});

test('hlc: remote versions too far in the future are ignored and counted', () => {
  const c = fakeClock(T0);
  const h = new Hlc(c.now);
  const before = h.now();
  assert.equal(h.observe(hlcFromWallMs(T0 + DEFAULT_MAX_AHEAD_MS + 1)), false);
  assert.equal(h.observe(hlcFromWallMs(T0 + 365 * 86_400_000)), false);
  assert.equal(h.rejectedFuture, 2);
  assert.equal(h.peek(), before, 'clock untouched');
  assert.equal(h.observe(hlcFromWallMs(T0 + DEFAULT_MAX_AHEAD_MS)), true, 'exactly at the bound is accepted');
  assert.equal(h.rejectedFuture, 2);
  const tight = new Hlc(c.now, { maxAheadMs: 100 });
  assert.equal(tight.observe(hlcFromWallMs(T0 + 101)), false);
  assert.equal(tight.rejectedFuture, 1);
});

test('hlc: non-finite and malformed remote versions are ignored', () => {
  const h = new Hlc(() => T0);
  const before = h.now();
  for (const bad of [NaN, Infinity, -Infinity, -1, 1.5, Number.MAX_SAFE_INTEGER + 2]) {
    assert.equal(h.observe(bad), false, String(bad));
  }
  assert.equal(h.rejectedInvalid, 6);
  assert.equal(h.rejectedFuture, 0);
  assert.equal(h.peek(), before);
  assert.equal(h.now(), before + 1);
});

test('hlc: a broken clock source falls back to logical ticks', () => {
  const h = new Hlc(() => NaN);
  assert.equal(h.now(), 1);
  assert.equal(h.now(), 2);
});

test('hlc: the packing stays exact until about the year 2248', () => {
  const limitMs = Math.floor(Number.MAX_SAFE_INTEGER / HLC_LOGICAL_PER_MS);
  assert.ok(new Date(limitMs).getUTCFullYear() >= 2248);
  assert.ok(Number.isSafeInteger(hlcFromWallMs(Date.UTC(2200, 0, 1)) + HLC_LOGICAL_PER_MS - 1));
  assert.ok(Number.isSafeInteger(new Hlc().now()));
});

test('hlc: clocks 10 minutes apart — every write after an observed one wins, the slow clock is dragged, nothing refused', () => {
  const MIN10 = 600_000;
  let t = T0;
  const ahead = new Hlc(() => t + MIN10);
  const behind = new Hlc(() => t - MIN10);
  // The fast node writes; the slow one observes it (accepted: 20 min is far inside 24 h) and writes after.
  const a1 = ahead.now();
  assert.equal(behind.observe(a1), true);
  const b1 = behind.now();
  assert.ok(b1 > a1, 'the slow node orders its next write after what it observed');
  assert.ok(Math.abs(behind.aheadMs() - 2 * MIN10) <= 1, `dragged ${behind.aheadMs()} ms ahead of its own clock`);
  // Real time passes on both; the slow node keeps writing: logical ticks, still monotonic.
  t += 1000;
  const b2 = behind.now();
  assert.equal(b2, b1 + 1, 'its wall clock has not caught up: logical tick');
  // The fast node observes the slow one's write and orders after it too.
  assert.equal(ahead.observe(b2), true);
  assert.ok(ahead.now() > b2);
  assert.equal(ahead.rejectedFuture + behind.rejectedFuture, 0);
  // Once the slow clock passes the drag, versions follow it again.
  t += 2 * MIN10;
  assert.equal(hlcWallMs(behind.now()), t - MIN10);
  assert.equal(behind.aheadMs(), 0);
});
