import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseConfigText, loadConfigFile, ConfigError, formatIssue } from '../../src/config/load.js';
import { ErrorCodes } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-config-'));
const GOOD = `
cluster:
  name: demo
  secret: "0123456789abcdef-secret"
  nodes:
    - id: lb1
      host: 127.0.0.1
    - id: lb2
      host: 127.0.0.2
      weight: 2
services:
  - name: web
    protocol: http
    port: 8080
    flowKey: header:x-session
    backends:
      - { address: 127.0.0.1:9001 }
      - { address: 127.0.0.1:9002, weight: 3 }
    healthCheck: { type: http, path: /healthz, intervalMs: 1000 }
  - name: echo
    protocol: tcp
    port: 8081
    proxyProtocol: v2
    backends: [{ address: "[::1]:9101" }]
  - name: dns
    protocol: udp
    port: 8082
    flowKey: quic-cid
    backends: [{ address: backend.example:53 }]
`;

function problems(yaml: string): string[] {
  try {
    parseConfigText(yaml, 'test.yaml', dir);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.issues.map(formatIssue);
  }
  return [];
}

/** Replace the first occurrence of `from` in GOOD. */
const mutate = (from: string, to: string) => {
  assert.ok(GOOD.includes(from), `fixture lacks ${from}`);
  return GOOD.replace(from, to);
};

test('a good config validates, gets defaults, and is frozen', () => {
  const c = parseConfigText(GOOD, 'test.yaml', dir);
  assert.equal(c.cluster.heartbeatMs, 100);
  assert.equal(c.cluster.failureTimeoutMs, 500);
  assert.equal(c.cluster.nodes[0].peerPort, 7000);
  assert.equal(c.cluster.nodes[0].adminPort, 9000);
  assert.equal(c.cluster.nodes[0].weight, 1);
  assert.equal(c.cluster.nodes[1].weight, 2);
  assert.equal(c.services[0].policy, 'round-robin');
  assert.equal(c.services[0].flowIdleTimeoutMs, 600_000);
  assert.equal(c.services[1].flowKey, 'connection');
  assert.equal(c.services[2].flowIdleTimeoutMs, 30_000);
  assert.equal(c.services[0].maxFlows, 1_000_000);
  assert.equal(c.services[2].maxFlows, 50_000);
  assert.deepEqual(c.services[1].backends[0], { address: '[::1]:9101', host: '::1', port: 9101, weight: 1 });
  assert.equal(c.services[0].backends[1].weight, 3);
  assert.equal(c.services[0].healthCheck.rise, 2);
  assert.equal(c.services[0].healthCheck.fall, 3);
  assert.equal(c.services[1].healthCheck.type, 'tcp');
  assert.equal(c.services[2].healthCheck.type, 'none');
  assert.ok(Object.isFrozen(c));
  assert.ok(Object.isFrozen(c.services[0].backends[0]));
  assert.throws(() => {
    (c.cluster as { name: string }).name = 'x';
  }, TypeError);
});

const cases: Array<[string, string, string[]]> = [
  ['port out of range', mutate('port: 8080', 'port: 70000'), ['services[0].port: must be an integer from 1 to 65535']],
  ['port not an integer', mutate('port: 8080', 'port: 80.5'), ['services[0].port: must be an integer from 1 to 65535']],
  ['short secret', mutate('"0123456789abcdef-secret"', 'short'), ['cluster.secret: must be at least 16 characters']],
  [
    'unknown key with a suggestion',
    mutate('  name: demo', '  name: demo\n  hearbeatMs: 50'),
    ['cluster.hearbeatMs: unknown key (did you mean "heartbeatMs"?)'],
  ],
  ['unknown key without a suggestion', mutate('    port: 8080', '    port: 8080\n    colour: blue'), ['services[0].colour: unknown key']],
  [
    'duplicate node id',
    mutate('    - id: lb2', '    - id: lb1'),
    ['cluster.nodes[1].id: duplicate node id "lb1" (also cluster.nodes[0].id)'],
  ],
  [
    'duplicate service name',
    mutate('  - name: echo', '  - name: web'),
    ['services[1].name: duplicate service name "web" (also services[0].name)'],
  ],
  ['two services on one port', mutate('port: 8081', 'port: 8080'), ['services[1].port: port 8080/tcp is already used by service "web"']],
  [
    'flowKey not allowed for the protocol',
    mutate('flowKey: header:x-session', 'flowKey: quic-cid'),
    ['services[0].flowKey: "quic-cid" is not allowed for protocol http (allowed: client-ip, connection, header:NAME, cookie:NAME)'],
  ],
  [
    'backend address does not parse',
    mutate('127.0.0.1:9002', '127.0.0.1'),
    ['services[0].backends[1].address: "127.0.0.1" is not "host:port" with a port from 1 to 65535'],
  ],
  ['bad protocol', mutate('protocol: udp', 'protocol: sctp'), ['services[2].protocol: must be one of http, tcp, udp']],
  [
    'bad policy',
    mutate('    flowKey: header:x-session', '    flowKey: header:x-session\n    policy: fastest'),
    ['services[0].policy: must be one of round-robin, least-connections, p2c, consistent-hash, random'],
  ],
  ['proxyProtocol on http', mutate('    flowKey: header:x-session', '    flowKey: header:x-session\n    proxyProtocol: v1'), ['services[0].proxyProtocol: only allowed for protocol tcp']],
  ['bad proxyProtocol', mutate('proxyProtocol: v2', 'proxyProtocol: v3'), ['services[1].proxyProtocol: must be v1 or v2']],
  ['missing secret', mutate('  secret: "0123456789abcdef-secret"\n', ''), ['cluster.secret: is required (or cluster.secretFile)']],
  ['missing nodes', mutate(/ {2}nodes:[\s\S]*?weight: 2\n/.exec(GOOD)![0], ''), ['cluster.nodes: is required']],
  ['no backends', mutate('    backends: [{ address: "[::1]:9101" }]', '    backends: []'), ['services[1].backends: must list at least one backend']],
  ['negative weight', mutate('weight: 3', 'weight: -1'), ['services[0].backends[1].weight: must be a number from 0 to 1000']],
  ['failure timeout below heartbeat', mutate('  name: demo', '  name: demo\n  heartbeatMs: 200\n  failureTimeoutMs: 150'), ['cluster.failureTimeoutMs: must be greater than heartbeatMs (200)']],
  ['service port on a node peer port', mutate('port: 8082', 'port: 7000'), ['services[2].port: port 7000 is the peerPort of node lb2']],
  ['udp check on http', mutate('type: http, path', 'type: udp, path'), ['services[0].healthCheck.type: udp checks are only for protocol udp', 'services[0].healthCheck.payload: is required for udp checks']],
  ['nodes is not a list', mutate(/ {2}nodes:[\s\S]*?weight: 2\n/.exec(GOOD)![0], '  nodes: lb1\n'), ['cluster.nodes: must be a list of nodes']],
  ['bad cluster name', mutate('name: demo', 'name: "my cluster!"'), ['cluster.name: must be 1-63 characters of letters, digits, ".", "_" or "-"']],
  ['bad header flow key', mutate('flowKey: header:x-session', 'flowKey: "header:"'), ['services[0].flowKey: "header:" is not allowed for protocol http (allowed: client-ip, connection, header:NAME, cookie:NAME)']],
  ['root is a list', '- a\n- b\n', ['(root): must be a mapping']],
];

for (const [name, yaml, expected] of cases) {
  test(`broken config: ${name}`, () => {
    assert.deepEqual(problems(yaml), expected);
  });
}

test('every problem is found in one run', () => {
  const yaml = mutate('port: 8080', 'port: 0')
    .replace('"0123456789abcdef-secret"', 'short')
    .replace('protocol: udp', 'protocol: sctp')
    .replace('    - id: lb2', '    - id: lb1');
  assert.deepEqual(problems(yaml).sort(), [
    'cluster.nodes[1].id: duplicate node id "lb1" (also cluster.nodes[0].id)',
    'cluster.secret: must be at least 16 characters',
    'services[0].port: must be an integer from 1 to 65535',
    'services[2].protocol: must be one of http, tcp, udp',
  ]);
});

test('file not found, not YAML and empty each have their own message and code', () => {
  const missing = join(dir, 'nope.yaml');
  assert.throws(() => loadConfigFile(missing), (e: unknown) => e instanceof ConfigError && e.code === ErrorCodes.CONFIG_NOT_FOUND && e.issues[0].message === 'file not found');
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'cluster: [unclosed\n  nodes: {');
  assert.throws(() => loadConfigFile(bad), (e: unknown) => e instanceof ConfigError && e.code === ErrorCodes.CONFIG_NOT_YAML && e.issues[0].message.startsWith('not valid YAML: '));
  const empty = join(dir, 'empty.yaml');
  writeFileSync(empty, '# only a comment\n\n');
  assert.throws(() => loadConfigFile(empty), (e: unknown) => e instanceof ConfigError && e.code === ErrorCodes.CONFIG_EMPTY && e.issues[0].message === 'file is empty');
});

test('secretFile and adminTokenFile are read relative to the config file', () => {
  writeFileSync(join(dir, 'secret.txt'), 'a-secret-from-a-file-0123\n');
  writeFileSync(join(dir, 'token.txt'), 'admin-token-0123456789\n');
  const yaml = mutate('secret: "0123456789abcdef-secret"', 'secretFile: secret.txt\n  adminTokenFile: token.txt');
  const c = parseConfigText(yaml, 'test.yaml', dir);
  assert.equal(c.cluster.secret, 'a-secret-from-a-file-0123');
  assert.equal(c.cluster.adminToken, 'admin-token-0123456789');
  assert.deepEqual(problems(mutate('secret: "0123456789abcdef-secret"', 'secretFile: missing.txt')), ['cluster.secretFile: cannot read file "missing.txt"']);
  assert.deepEqual(problems(mutate('secret: "0123456789abcdef-secret"', 'secret: "0123456789abcdef-secret"\n  secretFile: secret.txt')), [
    'cluster.secretFile: set either secret or secretFile, not both',
  ]);
});

test('tandem validate CLI: ok / exit 0, one line per problem / exit 1', () => {
  const good = join(dir, 'good.yaml');
  writeFileSync(good, GOOD);
  const bin = new URL('../../bin/tandem.js', import.meta.url).pathname;
  const ok = spawnSync(process.execPath, [bin, 'validate', '--config', good], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stdout, 'ok\n');
  const broken = join(dir, 'broken.yaml');
  writeFileSync(broken, mutate('port: 8080', 'port: 70000').replace('"0123456789abcdef-secret"', 'short'));
  const bad = spawnSync(process.execPath, [bin, 'validate', '--config', broken], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.deepEqual(bad.stderr.trim().split('\n').sort(), ['cluster.secret: must be at least 16 characters', 'services[0].port: must be an integer from 1 to 65535']);
  const none = spawnSync(process.execPath, [bin, 'validate', '--config', join(dir, 'absent.yaml')], { encoding: 'utf8' });
  assert.equal(none.status, 1);
  assert.equal(none.stderr, `${join(dir, 'absent.yaml')}: file not found\n`);
});
