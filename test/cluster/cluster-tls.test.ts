import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { allAlive, makeNode, metric, settingsFor, startAll, stopAll, waitFor, write, type TestNode } from './fixtures/cluster-harness.js';

const BASE = 17150;

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A CA, a node certificate it signs, and a rogue CA with its own client certificate. */
function makePki(dir: string): void {
  const run = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'rogue-ca']) run('req', '-x509', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '2', '-subj', `/CN=tandem test ${ca}`);
  for (const [name, ca] of [['node', 'ca'], ['rogue', 'rogue-ca']]) {
    run('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2');
  }
}

test('TLS peer links: mutual certificates plus the challenge-response', { skip: hasOpenssl() ? false : 'openssl not found: TLS test skipped' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-tls-'));
  makePki(dir);
  const settings = settingsFor(BASE, 3, { tls: { cert: join(dir, 'node.crt'), key: join(dir, 'node.key'), ca: join(dir, 'ca.crt') } });
  const nodes: TestNode[] = ['lb1', 'lb2', 'lb3'].map((id) => makeNode(settings, id));
  const [a, b] = nodes;
  const port = settings.nodes[0].peerPort;
  try {
    b.cluster.onChannel('tcp', (socket, peerId) => {
      socket.write(`${peerId}|${socket instanceof tls.TLSSocket}|`);
      socket.pipe(socket);
    });
    await startAll(nodes);
    await waitFor(() => allAlive(nodes), 3000, 'all alive over TLS');
    await waitFor(() => nodes.every((n) => n.cluster.ready), 2000, 'ready');
    const e = write(a);
    await waitFor(() => nodes.every((n) => n.table.getAny(e.service, e.key) !== undefined), 1000, 'replicated over TLS');

    const s = await a.cluster.dial('lb2', 'tcp');
    assert.ok(s instanceof tls.TLSSocket);
    s.write('x');
    let got = '';
    s.on('data', (c: Buffer) => (got += c.toString()));
    await waitFor(() => got === 'lb1|true|x', 1000, 'echo over TLS');
    s.destroy();

    const failures = (): Promise<number> => metric(a.registry, 'tandem_peer_auth_failures_total', { reason: 'tls' });
    const refused = async (connect: () => net.Socket): Promise<void> => {
      const before = await failures();
      const c = connect();
      c.on('error', () => {});
      // Not events.once(): it rejects on the 'error' the refused client sees first.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 20_000);
        c.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      assert.ok(c.destroyed, 'connection dropped');
      for (const until = Date.now() + 20_000; Date.now() < until && (await failures()) === before; ) await new Promise((r) => setTimeout(r, 10));
      assert.ok((await failures()) > before, 'counted as a TLS auth failure');
    };
    await t.test('no client certificate', () =>
      refused(() => tls.connect({ host: '127.0.0.1', port, ca: readFileSync(join(dir, 'ca.crt')), checkServerIdentity: () => undefined })),
    );
    await t.test('a client certificate from another CA', () =>
      refused(() =>
        tls.connect({
          host: '127.0.0.1',
          port,
          ca: readFileSync(join(dir, 'ca.crt')),
          cert: readFileSync(join(dir, 'rogue.crt')),
          key: readFileSync(join(dir, 'rogue.key')),
          checkServerIdentity: () => undefined,
        }),
      ),
    );
    await t.test('plain TCP to a TLS peer port', () =>
      refused(() => {
        const c = net.connect(port, '127.0.0.1');
        c.on('connect', () => c.write('TNDM plain text, not a TLS ClientHello'));
        return c;
      }),
    );
    assert.equal(a.cluster.stateOf('lb2'), 'alive');
  } finally {
    await stopAll(nodes);
    rmSync(dir, { recursive: true, force: true });
  }
});
