/**
 * The config keys of docs/deploy-ecmp.md: cluster.announce, cluster.stateDir, services[].vip.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfigText, ConfigError, formatIssue } from '../../src/config/load.js';
import { nodeStateDir } from '../../src/config/state-dir.js';
import { listenAddresses } from '../../src/proxy/listen-addresses.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-announce-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const yaml = (cluster: string, service = ''): string => `
cluster:
  name: tier
  secret: "0123456789abcdef-secret"
${cluster}
  nodes:
    - { id: lb1, host: 10.0.0.11 }
    - { id: lb2, host: 10.0.0.12 }
services:
  - name: web
    protocol: http
    port: 8080
${service}
    backends: [{ address: 10.0.1.1:80 }]
`;

function problems(text: string): string[] {
  try {
    parseConfigText(text, 'test.yaml', dir);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.issues.map(formatIssue);
  }
  return [];
}

test('announce: defaults, and absent means null', () => {
  const c = parseConfigText(yaml('  announce: { up: "birdc enable vip", down: "birdc disable vip" }'), 'test.yaml', dir);
  assert.deepEqual(c.cluster.announce, {
    up: 'birdc enable vip',
    down: 'birdc disable vip',
    checkIntervalMs: 100,
    checkTimeoutMs: 1000,
    rise: 2,
    fall: 3,
    commandTimeoutMs: 10_000,
    withdrawGraceMs: 1000,
  });
  assert.ok(Object.isFrozen(c.cluster.announce));
  assert.equal(parseConfigText(yaml(''), 'test.yaml', dir).cluster.announce, null);
});

test('announce: every problem in one run', () => {
  const p = problems(yaml('  announce: { up: "", rise: 0, checkIntervalMs: 5, witdrawGraceMs: 10 }'));
  assert.ok(p.includes('cluster.announce.up: must not be empty'), p.join('\n'));
  assert.ok(p.includes('cluster.announce.down: is required'), p.join('\n'));
  assert.ok(p.includes('cluster.announce.rise: must be an integer from 1 to 100'), p.join('\n'));
  assert.ok(p.includes('cluster.announce.checkIntervalMs: must be an integer from 10 to 60000'), p.join('\n'));
  assert.ok(p.some((x) => x.startsWith('cluster.announce.witdrawGraceMs: unknown key (did you mean "withdrawGraceMs"?)')), p.join('\n'));
});

test('announce: the grace must let the watchdog see the node not ready', () => {
  const p = problems(yaml('  announce: { up: a, down: b, checkIntervalMs: 200, fall: 3, withdrawGraceMs: 500 }'));
  assert.deepEqual(p, ['cluster.announce.withdrawGraceMs: must be at least fall × checkIntervalMs (600): the watchdog needs that long to see the node not ready']);
  assert.deepEqual(problems(yaml('  announce: { up: a, down: b, checkIntervalMs: 200, fall: 3, withdrawGraceMs: 600 }')), []);
});

test('vip: an IP literal of one unicast address', () => {
  assert.equal(parseConfigText(yaml('', '    vip: 10.99.0.1'), 'test.yaml', dir).services[0].vip, '10.99.0.1');
  assert.equal(parseConfigText(yaml('', '    vip: "2001:db8::1"'), 'test.yaml', dir).services[0].vip, '2001:db8::1');
  assert.equal(parseConfigText(yaml(''), 'test.yaml', dir).services[0].vip, undefined);
  const bad: Array<[string, string]> = [
    ['vip.example.com', '"vip.example.com" is not an IP address'],
    ['10.0.0.300', '"10.0.0.300" is not an IP address'],
    ['0.0.0.0', '"0.0.0.0" is not a unicast address'],
    ['"::"', '"::" is not a unicast address'],
    ['224.0.0.1', '"224.0.0.1" is a multicast address'],
    ['"ff02::1"', '"ff02::1" is a multicast address'],
  ];
  for (const [v, msg] of bad) assert.deepEqual(problems(yaml('', `    vip: ${v}`)), [`services[0].vip: ${msg}`], v);
  assert.deepEqual(problems(yaml('', '    vip: 7')), ['services[0].vip: must be an IP address']);
});

test('vip: the service listens on the host first, then the vip (once)', () => {
  assert.deepEqual(listenAddresses('10.0.0.11', {}), ['10.0.0.11']);
  assert.deepEqual(listenAddresses('10.0.0.11', { vip: '10.99.0.1' }), ['10.0.0.11', '10.99.0.1']);
  assert.deepEqual(listenAddresses('10.99.0.1', { vip: '10.99.0.1' }), ['10.99.0.1']);
});

test('stateDir: resolved against the config file, one subdirectory per node', () => {
  const c = parseConfigText(yaml('  stateDir: state'), 'test.yaml', dir);
  assert.equal(c.cluster.stateDir, join(dir, 'state'));
  assert.equal(nodeStateDir(c.cluster, 'lb1'), join(dir, 'state', 'lb1'));
  assert.equal(nodeStateDir(parseConfigText(yaml(''), 'test.yaml', dir).cluster, 'lb1'), null);
  assert.throws(() => nodeStateDir(c.cluster, '..'), RangeError);
  assert.throws(() => nodeStateDir(c.cluster, 'a/b'), RangeError);
});

test('stateDir: something that is not a directory is refused', () => {
  writeFileSync(join(dir, 'a-file'), 'x');
  assert.deepEqual(problems(yaml('  stateDir: a-file')), ['cluster.stateDir: not a directory: a-file']);
  assert.deepEqual(problems(yaml('  stateDir: ""')), ['cluster.stateDir: must not be empty']);
});
