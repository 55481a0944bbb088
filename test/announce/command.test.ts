import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCommand } from '../../src/announce/command.js';

const env = { TANDEM_NODE: 'lb1', TANDEM_HOST: '127.0.0.1', TANDEM_VIPS: '10.99.0.1 10.99.0.2', TANDEM_ANNOUNCE: 'up' };

test('runCommand: sh -c with the announce environment', async () => {
  const r = await runCommand('echo "$TANDEM_ANNOUNCE $TANDEM_NODE $TANDEM_HOST [$TANDEM_VIPS]"', env, 5000);
  assert.equal(r.ok, true);
  assert.equal(r.code, 0);
  assert.equal(r.output, 'up lb1 127.0.0.1 [10.99.0.1 10.99.0.2]');
});

test('runCommand: a non-zero exit is a failure, with its output', async () => {
  const r = await runCommand('echo "no socket" >&2; exit 3', env, 5000);
  assert.equal(r.ok, false);
  assert.equal(r.code, 3);
  assert.equal(r.timedOut, false);
  assert.equal(r.output, 'no socket');
});

test('runCommand: a command past its deadline is killed with its children', async () => {
  // The child of sh holds the pipes open: only killing the whole group ends it.
  const r = await runCommand('sleep 30 & sleep 30', env, 200);
  assert.equal(r.ok, false);
  assert.equal(r.timedOut, true);
  assert.equal(r.code, null);
});

test('runCommand: output is bounded', async () => {
  const r = await runCommand('yes x | head -c 100000', env, 5000);
  assert.equal(r.ok, true);
  assert.ok(r.output.length <= 2048, `${r.output.length}`);
});
