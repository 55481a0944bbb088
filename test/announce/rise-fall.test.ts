import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RiseFall, type Verdict } from '../../src/announce/rise-fall.js';

/** Feeds a string of checks ("+" ready, "-" not) and returns the verdict changes, "." for none. */
function run(rise: number, fall: number, checks: string): string {
  const rf = new RiseFall(rise, fall);
  return [...checks].map((c) => ({ up: 'U', down: 'D' })[rf.observe(c === '+') as Verdict] ?? '.').join('');
}

test('rise/fall: golden sequences (rise 2, fall 3)', () => {
  const cases: Array<[string, string]> = [
    ['++', '.U'], // unknown → up after rise successes
    ['---', '..D'], // unknown → down after fall failures: a stale announcement is withdrawn
    ['+-+-+-', '......'], // flapping never settles
    ['++--+---', '.U.....D'], // a success resets the run of failures
    ['++---++', '.U..D.U'],
    ['++++', '.U..'], // no repeated verdicts
    ['---+-++', '..D...U'],
  ];
  for (const [checks, want] of cases) assert.equal(run(2, 3, checks), want, checks);
});

test('rise/fall: rise 1 and fall 1 follow every change', () => {
  assert.equal(run(1, 1, '+-+-'), 'UDUD');
  assert.equal(run(1, 1, '--++'), 'D.U.');
});

test('rise/fall: the verdict is kept and readable', () => {
  const rf = new RiseFall(2, 2);
  assert.equal(rf.verdict, null);
  rf.observe(true);
  rf.observe(true);
  assert.equal(rf.verdict, 'up');
  rf.observe(false);
  assert.equal(rf.verdict, 'up');
  rf.observe(false);
  assert.equal(rf.verdict, 'down');
});

test('rise/fall: refuses thresholds below 1', () => {
  assert.throws(() => new RiseFall(0, 3), RangeError);
  assert.throws(() => new RiseFall(2, 1.5), RangeError);
});
