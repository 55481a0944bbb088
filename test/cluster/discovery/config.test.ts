import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, formatIssue, loadConfigFile, parseConfigText, validateConfig } from '../../../src/config/load.js';
import { applyLayers, rawServices, withNodes } from '../../../src/config/layers.js';
import { parseSelfFlags } from '../../../src/cli/start.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-discovery-config-'));

const BASE = `
cluster:
  name: prod
  secret: "0123456789abcdef-secret"
  discovery:
    etcd: { endpoints: ["http://127.0.0.1:2379"], ttlMs: 3000 }
services:
  - { name: web, protocol: http, port: 8080, backends: [{ address: 127.0.0.1:9001 }] }
`;

function problems(text: string): string[] {
  try {
    parseConfigText(text, 't.yaml', dir);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map(formatIssue).sort();
  }
}

test('discovery: nodes may be absent or empty; defaults resolved', () => {
  assert.deepEqual(problems(BASE), []);
  assert.deepEqual(problems(BASE.replace('  discovery:', '  nodes: []\n  discovery:')), []);
  const c = parseConfigText(BASE, 't.yaml', dir);
  assert.deepEqual(c.cluster.nodes, []);
  assert.deepEqual(c.cluster.discovery, {
    etcd: { endpoints: ['http://127.0.0.1:2379'], prefix: '/tandem/prod/', ttlMs: 3000, dialTimeoutMs: 2000, auth: null, tls: null },
  });
  const p = parseConfigText(BASE.replace('ttlMs: 3000', 'ttlMs: 3000, prefix: /lb'), 't.yaml', dir);
  assert.equal(p.cluster.discovery?.etcd.prefix, '/lb/');
});

test('without discovery the nodes are still required', () => {
  const noDiscovery = BASE.replace(/ {2}discovery:\n.*\n/, '');
  assert.deepEqual(problems(noDiscovery), ['cluster.nodes: is required']);
  assert.deepEqual(problems(noDiscovery.replace('cluster:\n', 'cluster:\n  nodes: []\n')), ['cluster.nodes: must list at least one node']);
});

test('discovery problems, each as <path>: <problem>', () => {
  const etcd = (inner: string) => BASE.replace('etcd: { endpoints: ["http://127.0.0.1:2379"], ttlMs: 3000 }', `etcd: ${inner}`);
  assert.deepEqual(problems(etcd('{ endpoints: [] }')), ['cluster.discovery.etcd.endpoints: must list at least one endpoint']);
  assert.deepEqual(problems(etcd('{ endpoints: ["127.0.0.1:2379", "ftp://x:1", "http://h:1/path"] }')), [
    'cluster.discovery.etcd.endpoints[0]: "127.0.0.1:2379" is not an http:// or https:// URL of the form scheme://host:port',
    'cluster.discovery.etcd.endpoints[1]: "ftp://x:1" is not an http:// or https:// URL of the form scheme://host:port',
    'cluster.discovery.etcd.endpoints[2]: "http://h:1/path" is not an http:// or https:// URL of the form scheme://host:port',
  ]);
  assert.deepEqual(problems(etcd('{ endpoints: ["http://h:1"], ttlMs: 10, prefix: "no-slash", hosts: [] }')), [
    'cluster.discovery.etcd.hosts: unknown key',
    'cluster.discovery.etcd.prefix: must start with "/"',
    'cluster.discovery.etcd.ttlMs: must be an integer from 1000 to 600000',
  ]);
  assert.deepEqual(problems(etcd('{ endpoints: ["http://h:1"], auth: { username: tandem } }')), ['cluster.discovery.etcd.auth.password: is required (or passwordFile)']);
  assert.deepEqual(problems(etcd('{ endpoints: ["http://h:1"], auth: { username: tandem, password: a, passwordFile: b } }')), [
    'cluster.discovery.etcd.auth.passwordFile: set either password or passwordFile, not both',
  ]);
  assert.deepEqual(problems(etcd('{ endpoints: ["https://h:1"], tls: { ca: /nonexistent/ca.pem, cert: /nonexistent/c.pem } }')), [
    'cluster.discovery.etcd.tls.ca: file not found: /nonexistent/ca.pem',
    'cluster.discovery.etcd.tls.cert: file not found: /nonexistent/c.pem',
    'cluster.discovery.etcd.tls.key: is required with tls.cert (a client certificate needs both)',
  ]);
  assert.deepEqual(problems(etcd('{ endpoints: ["http://h:1"], auth: { username: tandem, passwordFile: missing.txt } }')), [
    'cluster.discovery.etcd.auth.passwordFile: cannot read file "missing.txt"',
  ]);
});

test('auth and tls are resolved: password from its file, paths absolute', () => {
  writeFileSync(join(dir, 'etcd-pass'), 'pa55word\n');
  for (const f of ['ca.pem', 'c.pem', 'k.pem']) writeFileSync(join(dir, f), 'x');
  const c = parseConfigText(
    BASE.replace('ttlMs: 3000 }', 'ttlMs: 3000, auth: { username: tandem, passwordFile: etcd-pass }, tls: { ca: ca.pem, cert: c.pem, key: k.pem } }'),
    't.yaml',
    dir,
  );
  assert.deepEqual(c.cluster.discovery?.etcd.auth, { username: 'tandem', password: 'pa55word' });
  assert.deepEqual(c.cluster.discovery?.etcd.tls, { ca: join(dir, 'ca.pem'), cert: join(dir, 'c.pem'), key: join(dir, 'k.pem') });
});

test('layers: the command-line node is added, or overrides the file; pushed services replace the file\'s', () => {
  const raw = { cluster: { name: 'x', nodes: [{ id: 'lb1', host: '10.0.0.1' }] }, services: [{ name: 'a' }] };
  const frozen = JSON.stringify(raw);
  const added = applyLayers(raw, { self: { id: 'lb4', host: '10.0.0.4', peerPort: 7004 } }) as typeof raw;
  assert.deepEqual(added.cluster.nodes, [{ id: 'lb1', host: '10.0.0.1' }, { id: 'lb4', host: '10.0.0.4', peerPort: 7004 }]);
  const over = applyLayers(raw, { self: { id: 'lb1', weight: 3 } }) as typeof raw;
  assert.deepEqual(over.cluster.nodes, [{ id: 'lb1', host: '10.0.0.1', weight: 3 }]);
  const unknown = applyLayers(raw, { self: { id: 'lb9' } }) as typeof raw;
  assert.deepEqual(unknown.cluster.nodes, raw.cluster.nodes, 'no host: nothing to add (start reports it)');
  const pushed = applyLayers(raw, { services: [{ name: 'b' }] }) as typeof raw;
  assert.deepEqual(pushed.services, [{ name: 'b' }]);
  assert.equal(JSON.stringify(raw), frozen, 'the input is not modified');
  assert.deepEqual(rawServices(raw), [{ name: 'a' }]);
  assert.deepEqual(rawServices('x'), []);
});

test('a layered file validates whole: a pushed port that clashes with this node is refused here', () => {
  const file = join(dir, 'layered.yaml');
  writeFileSync(file, BASE);
  const self = { id: 'lb4', host: '127.0.0.4', adminPort: 9004 };
  const ok = loadConfigFile(file, (raw) => applyLayers(raw, { self }));
  assert.deepEqual(ok.cluster.nodes, [{ id: 'lb4', host: '127.0.0.4', peerPort: 7000, adminPort: 9004, weight: 1 }]);
  assert.throws(
    () => loadConfigFile(file, (raw) => applyLayers(raw, { self, services: [{ name: 'web', protocol: 'http', port: 9004, backends: [{ address: '127.0.0.1:1' }] }] })),
    (err: unknown) => err instanceof ConfigError && err.issues.map(formatIssue).join('\n') === 'services[0].port: port 9004 is the adminPort of node lb4',
  );
});

test('withNodes swaps the member list, keeps the rest, stays frozen', () => {
  const c = validateConfig({ cluster: { name: 'x', secret: '0123456789abcdef-x', nodes: [{ id: 'lb1', host: '127.0.0.1' }] }, services: [] });
  const nodes = [...c.cluster.nodes, { id: 'lb2', host: '127.0.0.2', peerPort: 7000, adminPort: 9000, weight: 1 }];
  const w = withNodes(c, nodes);
  assert.deepEqual(w.cluster.nodes.map((n) => n.id), ['lb1', 'lb2']);
  assert.equal(w.services, c.services);
  assert.equal(w.cluster.secret, c.cluster.secret);
  assert.ok(Object.isFrozen(w) && Object.isFrozen(w.cluster) && Object.isFrozen(w.cluster.nodes));
  assert.equal(withNodes(c, c.cluster.nodes), c);
});

test('start flags: validated, absent flags leave the file alone', () => {
  assert.equal(parseSelfFlags('lb1', {}), undefined);
  assert.deepEqual(parseSelfFlags('lb4', { host: '127.0.0.4', peerPort: '7004', adminPort: '9004', weight: '2' }), { id: 'lb4', host: '127.0.0.4', peerPort: 7004, adminPort: 9004, weight: 2 });
  assert.equal(parseSelfFlags('lb4', { host: '127.0.0.4', peerPort: '70000' }), '--peer-port must be an integer from 1 to 65535');
  assert.equal(parseSelfFlags('lb4', { adminPort: 'x' }), '--admin-port must be an integer from 1 to 65535');
  assert.equal(parseSelfFlags('lb4', { weight: '-1' }), '--weight must be a number from 0 to 1000');
  assert.equal(parseSelfFlags('lb4', { host: ' ' }), '--host must not be empty');
});
