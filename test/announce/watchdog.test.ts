/**
 * The watchdog's behaviour with its I/O replaced: scripted readiness answers, recorded commands.
 * Everything is asserted on the sequence of commands, never on how long they took.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Watchdog } from '../../src/announce/watchdog.js';
import type { CheckResult } from '../../src/announce/readiness.js';
import type { CommandResult } from '../../src/announce/command.js';
import type { AnnounceConfig } from '../../src/config/schema.js';

const cfg: AnnounceConfig = { up: 'UP', down: 'DOWN', checkIntervalMs: 10, checkTimeoutMs: 100, rise: 2, fall: 3, commandTimeoutMs: 1000, withdrawGraceMs: 1000 };
const target = { node: 'lb1', host: '127.0.0.1', adminPort: 9000, vips: ['10.99.0.1'] };
const logger = pino({ level: 'silent' });

interface Harness {
  readonly dog: Watchdog;
  readonly registry: Registry;
  readonly commands: Array<{ command: string; env: Record<string, string> }>;
  ready: boolean;
  /** Commands for which this returns false fail. */
  succeed: (command: string, n: number) => boolean;
  running: number;
  maxRunning: number;
}

const made: Watchdog[] = [];
after(async () => {
  for (const d of made) await d.stop(false);
});

function harness(over: Partial<AnnounceConfig> = {}): Harness {
  const registry = new Registry();
  const h: Harness = {
    dog: undefined as unknown as Watchdog,
    registry,
    commands: [],
    ready: false,
    succeed: () => true,
    running: 0,
    maxRunning: 0,
  };
  const check = async (): Promise<CheckResult> => (h.ready ? { ok: true, detail: '200' } : { ok: false, detail: 'ECONNREFUSED' });
  const run = async (command: string, env: Readonly<Record<string, string>>): Promise<CommandResult> => {
    h.running++;
    h.maxRunning = Math.max(h.maxRunning, h.running);
    h.commands.push({ command, env: { ...env } });
    await new Promise((r) => setTimeout(r, 5));
    h.running--;
    const ok = h.succeed(command, h.commands.length);
    return { ok, code: ok ? 0 : 1, timedOut: false, durationMs: 5, output: ok ? '' : 'failed' };
  };
  (h as { dog: Watchdog }).dog = new Watchdog(target, { ...cfg, ...over }, { logger, registry, check, run });
  made.push(h.dog);
  return h;
}

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values ?? []).filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((s, v) => s + v.value, 0);
}

test('watchdog: withdraws at start when the node is not ready, announces once it is', async () => {
  const h = harness();
  h.dog.start();
  await until('down', () => h.commands.length === 1);
  assert.equal(h.commands[0].command, 'DOWN');
  assert.deepEqual(h.commands[0].env, { TANDEM_NODE: 'lb1', TANDEM_HOST: '127.0.0.1', TANDEM_VIPS: '10.99.0.1', TANDEM_ANNOUNCE: 'down' });
  await until('down applied', () => h.dog.status().applied === 'down');
  h.ready = true;
  await until('up applied', () => h.dog.status().applied === 'up');
  assert.equal(h.commands.length, 2);
  assert.equal(h.commands[1].command, 'UP');
  // Steady: no repeated commands while the verdict stands.
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(h.commands.length, 2);
  h.ready = false;
  await until('down again', () => h.commands.length === 3 && h.dog.status().applied === 'down');
  assert.equal(h.commands[2].command, 'DOWN');
  await h.dog.stop(false);
  assert.equal(await metric(h.registry, 'tandem_announce_commands_total', { command: 'up', outcome: 'ok' }), 1);
  assert.equal(await metric(h.registry, 'tandem_announce_commands_total', { command: 'down', outcome: 'ok' }), 2);
  assert.equal(await metric(h.registry, 'tandem_announce_announced'), 0);
  assert.ok((await metric(h.registry, 'tandem_announce_checks_total', { result: 'ready' })) >= 2);
});

test('watchdog: a failing command is counted and retried until it succeeds', async () => {
  const h = harness();
  h.ready = true;
  h.succeed = (command, n) => !(command === 'UP' && n <= 3);
  h.dog.start();
  await until('up succeeded', () => h.dog.status().applied === 'up');
  assert.deepEqual(
    h.commands.map((c) => c.command),
    ['UP', 'UP', 'UP', 'UP'],
  );
  assert.equal(await metric(h.registry, 'tandem_announce_commands_total', { command: 'up', outcome: 'failed' }), 3);
  assert.equal(await metric(h.registry, 'tandem_announce_commands_total', { command: 'up', outcome: 'ok' }), 1);
  assert.equal(h.dog.status().failuresInRow, 0);
  await h.dog.stop(false);
});

test('watchdog: a newer verdict replaces a failing one; commands never overlap', async () => {
  const h = harness();
  h.ready = true;
  h.succeed = (command) => command !== 'UP';
  h.dog.start();
  await until('up failing', () => h.commands.length >= 2);
  h.ready = false;
  await until('down applied', () => h.dog.status().applied === 'down');
  const n = h.commands.length;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(h.commands.length, n, 'no more retries of up once the node is not ready');
  assert.equal(h.commands.at(-1)?.command, 'DOWN');
  assert.equal(h.maxRunning, 1);
  await h.dog.stop(false);
});

test('watchdog: stop(withdraw) runs down once more, whatever the state', async () => {
  const h = harness();
  h.ready = true;
  h.dog.start();
  await until('up', () => h.dog.status().applied === 'up');
  const r = await h.dog.stop(true);
  assert.equal(r?.ok, true);
  assert.deepEqual(
    h.commands.map((c) => c.command),
    ['UP', 'DOWN'],
  );
  await new Promise((r2) => setTimeout(r2, 50));
  assert.equal(h.commands.length, 2, 'no checks or commands after stop');
});

test('watchdog: rise and fall thresholds are honoured', async () => {
  const h = harness({ rise: 5, fall: 1 });
  h.dog.start();
  await until('down after one failure', () => h.dog.status().applied === 'down');
  h.ready = true;
  await until('up after five successes', () => h.commands.length === 2);
  assert.ok((await metric(h.registry, 'tandem_announce_checks_total', { result: 'ready' })) >= 5);
  await h.dog.stop(false);
});
