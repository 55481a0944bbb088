/**
 * ACME against a real ACME server (Debian's pebble, with dnsmasq resolving the test names to the
 * nodes' addresses): one order for the tier, HTTP-01 answered by whichever node pebble reaches,
 * the certificate on every node and in every state directory, forced renewal, an ACME server
 * that errors or is down, restarts, and the order owner killed mid-order.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { statSync, readdirSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { TestCluster, TEST_SECRET, sleep } from '../helpers/cluster.js';
import { Pebble, havePebble } from '../helpers/pebble.js';
import { Rendezvous } from '../../src/cluster/rendezvous.js';
import { certificateId } from '../../src/acme/spec.js';

const PEBBLE_HOST = '127.0.0.60';
const PEBBLE_PORT = 27010;
const CHALLENGE_PORT = 27080;
const DIRECTORY = `https://${PEBBLE_HOST}:${PEBBLE_PORT}/dir`;
const NAMES_A = ['a.acme.test', 'b.acme.test'];
const NAMES_B = ['c.acme.test'];
/** Validated through an http service of tandem's own on the challenge port (no ChallengeServer). */
const NAMES_C = ['d.acme.test'];
const HOSTS: Record<string, string> = { lb1: '127.0.0.1', lb2: '127.0.0.2', lb3: '127.0.0.3' };

interface Cert { id: string; state: string; owner: string; issuer: string | null; fingerprint: string | null; attempts: number; lastError: string | null }

const rdv = new Rendezvous(TEST_SECRET);
const nodes = ['lb1', 'lb2', 'lb3'].map((id) => ({ id, weight: 1 }));
const ownersOf = (names: string[]) => rdv.owners(`acme:${certificateId(DIRECTORY, names)}`, nodes);
const ownerA = ownersOf(NAMES_A).primary;
const otherA = ['lb1', 'lb2', 'lb3'].find((n) => n !== ownerA)!;
const backupB = ownersOf(NAMES_B).backup!;

/** The SHA-256 fingerprint of the certificate a node presents for `name` in a real handshake. */
function servedFingerprint(host: string, port: number, name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host, port, servername: name, rejectUnauthorized: false }, () => {
      const fp = s.getPeerCertificate().fingerprint256.replace(/:/g, '').toLowerCase();
      s.destroy();
      resolve(fp);
    });
    s.once('error', reject);
  });
}

async function certs(c: TestCluster, id: string): Promise<Cert[]> {
  return ((await c.get(id, '/api/certificates')).body as { certificates: Cert[] }).certificates;
}

async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what} ${last instanceof Error ? last.message : ''}`);
}

/** The fingerprint every listed node serves, once they all agree on a valid certificate (not `not`). */
async function converged(c: TestCluster, ids: string[], not: string | null = null): Promise<string> {
  return waitFor(`one certificate on ${ids.join(',')}`, async () => {
    const fps = await Promise.all(ids.map(async (id) => (await certs(c, id))[0]));
    const fp = fps[0]?.fingerprint;
    return fps.every((x) => x?.state === 'valid' && x.fingerprint === fp && fp !== not) ? fp : null;
  });
}

function service(names: string[], pebble: Pebble): Record<string, unknown> {
  return {
    name: 'web', protocol: 'http', port: 27090,
    tls: { acme: { directory: DIRECTORY, email: 'ops@acme.test', domains: names, caFile: pebble.caFile, challengePort: CHALLENGE_PORT } },
    backends: [{ address: '127.0.0.1:27999' }],
  };
}

describe('ACME against pebble', { skip: havePebble() ? false : 'pebble or dnsmasq not installed', timeout: 120_000 }, () => {
  let pebble: Pebble;
  let a: TestCluster | null = null;
  let b: TestCluster | null = null;

  before(async () => {
    pebble = new Pebble({ host: PEBBLE_HOST, port: PEBBLE_PORT, httpPort: CHALLENGE_PORT, names: { [NAMES_A[0]]: HOSTS[ownerA], [NAMES_A[1]]: HOSTS[otherA], [NAMES_B[0]]: HOSTS[backupB], [NAMES_C[0]]: HOSTS.lb3 } });
    await pebble.start();
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await pebble.stop();
  });

  it('one order for the tier; every node gets the certificate; a node that did not order answers a challenge', async () => {
    a = new TestCluster({ basePort: 27100, cluster: { stateDir: 'state' }, services: [service(NAMES_A, pebble)], logLevel: 'info' });
    a.writeConfig();
    // Until the certificate is there: the self-signed fallback, said in the readiness detail.
    // All three at once: a node started alone becomes ready on its sync timeout, judges the
    // others dead and is then rightly the owner itself; the test names the owner of three.
    await Promise.all([a.start('lb1'), a.start('lb2'), a.start('lb3')]);
    const early = (await a.get('lb1', '/readyz')).body as { selfSignedCertificate?: string[] };
    const fp = await converged(a, ['lb1', 'lb2', 'lb3']);
    const listing = await certs(a, 'lb2');
    assert.match(listing[0].issuer ?? '', /Pebble/);
    assert.deepEqual(early.selfSignedCertificate ?? ['web'], ['web']);
    assert.equal(((await a.get('lb2', '/readyz')).body as { selfSignedCertificate?: string[] }).selfSignedCertificate, undefined);
    // Exactly one order was issued in the tier, by the owner.
    const issued = await Promise.all(['lb1', 'lb2', 'lb3'].map((id) => a!.metric(id, 'tandem_acme_orders_total', { result: 'issued' })));
    assert.equal(issued.reduce((x, y) => x + y, 0), 1, `issued per node ${issued.join(',')}`);
    const orderer = ['lb1', 'lb2', 'lb3'][issued.indexOf(1)];
    assert.equal(orderer, ownerA);
    // b.acme.test resolves to another node: that node answered pebble's validation.
    assert.ok((await a.metric(otherA, 'tandem_acme_challenges_answered_total', { result: 'answered' })) >= 1);
    // Kept on disk by every node, mode 0600.
    for (const id of ['lb1', 'lb2', 'lb3']) {
      const dir = join(a.dir, 'state', id, 'acme');
      const f = readdirSync(dir).find((x) => x.endsWith('.json'))!;
      assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600);
    }
    assert.ok(fp);
  });

  it('forced renewal (asked of any node) replaces the certificate on all nodes', async () => {
    const before = (await certs(a!, 'lb1'))[0].fingerprint;
    const asker = otherA;
    // Bad input: a malformed body, an unknown certificate, no token.
    assert.equal((await a!.post(asker, '/api/certificates/renew', { certificates: 5 })).status, 400);
    assert.equal((await a!.post(asker, '/api/certificates/renew', { certificates: ['nope'] })).status, 404);
    assert.equal((await a!.post(asker, '/api/certificates/renew', {}, null)).status, 401);
    // The challenge listener answers only known tokens.
    const unknown = await fetch(`http://${HOSTS[asker]}:${CHALLENGE_PORT}/.well-known/acme-challenge/nope`);
    assert.equal(unknown.status, 404);
    // A keep-alive TLS connection opened before the renewal: it must stay open and serve after.
    const kept = tlsConnect({ host: HOSTS.lb1, port: 27090, servername: NAMES_A[0], rejectUnauthorized: false });
    let keptClosed = false;
    kept.on('close', () => (keptClosed = true));
    kept.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      kept.once('secureConnect', () => resolve());
      kept.once('error', reject);
    });
    const keptFp = kept.getPeerCertificate().fingerprint256;
    const r = await a!.post(asker, '/api/certificates/renew', {});
    assert.equal(r.status, 202);
    const fp = await converged(a!, ['lb1', 'lb2', 'lb3'], before);
    assert.notEqual(fp, before);
    assert.equal(keptClosed, false, 'the keep-alive connection survived the renewal');
    const answer = new Promise<string>((resolve) => {
      let text = '';
      kept.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        if (text.includes('\r\n\r\n')) resolve(text);
      });
    });
    kept.write(`GET / HTTP/1.1\r\nHost: ${NAMES_A[0]}\r\n\r\n`);
    assert.match(await answer, /^HTTP\/1\.1 \d{3} /, 'it still answers (the backend of this test is absent: any status)');
    assert.equal(kept.getPeerCertificate().fingerprint256, keptFp, 'an open connection keeps its certificate');
    kept.destroy();
    // New connections get the new one.
    assert.equal(await servedFingerprint(HOSTS.lb1, 27090, NAMES_A[0]), fp.replace(/:/g, '').toLowerCase());
  });

  it('an ACME server that errors, then one that is down: bounded retries, the certificate stays, nothing crashes', async () => {
    const kept = (await certs(a!, 'lb1'))[0].fingerprint;
    // Every nonce refused: every request fails with badNonce problem documents.
    await pebble.stopPebble();
    await pebble.start({ PEBBLE_WFE_NONCEREJECT: '100' });
    assert.equal((await a!.post('lb1', '/api/certificates/renew', {})).status, 202);
    const failed = await waitFor('a failed attempt', async () => ((await certs(a!, ownerA))[0].attempts >= 1 ? (await certs(a!, ownerA))[0] : null));
    assert.ok(failed.lastError);
    // Down: connection refused.
    await pebble.stopPebble();
    const t0 = Date.now();
    await sleep(6000);
    const c = (await certs(a!, ownerA))[0];
    // Back-off: 5 s doubling (halved at most by jitter) allows at most 3 attempts since t0 − ε.
    assert.ok(c.attempts <= 4, `attempts ${c.attempts} in ${Date.now() - t0} ms`);
    assert.ok((await a!.metric(ownerA, 'tandem_acme_errors_total')) >= 1);
    for (const id of ['lb1', 'lb2', 'lb3']) {
      const x = (await certs(a!, id))[0];
      assert.equal(x.fingerprint, kept, `${id} keeps the certificate`);
      assert.equal((await a!.get(id, '/healthz')).status, 200);
    }
  });

  it('a restarted node serves the certificate from its state directory before its peers are back', async () => {
    const kept = (await certs(a!, 'lb1'))[0].fingerprint;
    await Promise.all(['lb1', 'lb2', 'lb3'].map((id) => a!.kill(id)));
    await a!.start('lb2');
    const c = (await certs(a!, 'lb2'))[0];
    assert.equal(c.fingerprint, kept);
    assert.equal(c.state === 'valid' || c.state === 'renewing', true, c.state);
    assert.equal(((await a!.get('lb2', '/readyz')).body as { selfSignedCertificate?: string[] }).selfSignedCertificate, undefined);
    await a!.stop();
    a = null;
  });

  it('kill -9 of the ordering node mid-order: the backup completes it; one certificate on every node', async () => {
    await pebble.start();
    b = new TestCluster({ basePort: 27200, cluster: { stateDir: 'state' }, services: [service(NAMES_B, pebble)], logLevel: 'info' });
    b.writeConfig();
    await Promise.all(['lb1', 'lb2', 'lb3'].map((id) => b!.start(id)));
    const victim = await waitFor('an order in progress', async () => {
      for (const id of ['lb1', 'lb2', 'lb3']) if ((await certs(b!, id))[0].state === 'ordering') return id;
      return null;
    }, 20_000);
    await b.kill(victim);
    const rest = ['lb1', 'lb2', 'lb3'].filter((x) => x !== victim);
    const fp = await converged(b, rest);
    const issuedBy = await Promise.all(rest.map((id) => b!.metric(id, 'tandem_acme_orders_total', { result: 'issued' })));
    assert.equal(issuedBy.reduce((x, y) => x + y, 0), 1);
    // The killed node comes back and serves that same certificate.
    await b.start(victim);
    assert.equal(await converged(b, ['lb1', 'lb2', 'lb3']), fp);
  });
  it('an http service on the challenge port answers HTTP-01 itself; every node presents the certificate in its handshake', async () => {
    await b?.stop();
    b = null;
    const backend: Server = createServer((req, res) => res.end(`backend ${req.url}`));
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const bport = (backend.address() as AddressInfo).port;
    const h = new TestCluster({
      basePort: 27300,
      cluster: { stateDir: 'state' },
      services: [
        { ...service(NAMES_C, pebble), backends: [{ address: `127.0.0.1:${bport}` }] },
        // Plain HTTP on the port pebble validates on: the engine answers tokens, proxies the rest.
        { name: 'plain', protocol: 'http', port: CHALLENGE_PORT, backends: [{ address: `127.0.0.1:${bport}` }], healthCheck: { type: 'none' } },
      ],
      logLevel: 'info',
    });
    try {
      h.writeConfig();
      await Promise.all(['lb1', 'lb2', 'lb3'].map((id) => h.start(id)));
      const fp = await converged(h, ['lb1', 'lb2', 'lb3']);
      const answered = await Promise.all(['lb1', 'lb2', 'lb3'].map((id) => h.metric(id, 'tandem_acme_challenges_answered_total', { result: 'answered' })));
      assert.ok(answered[2] >= 1, `pebble reached lb3 (d.acme.test): answered ${answered.join(',')}`);
      for (const id of ['lb1', 'lb2', 'lb3']) {
        assert.equal(await servedFingerprint(HOSTS[id], 27090, NAMES_C[0]), fp.replace(/:/g, '').toLowerCase(), `${id} presents the issued certificate`);
        // Everything else on the challenge port is the backend's, an unknown token included.
        const other = await fetch(`http://${HOSTS[id]}:${CHALLENGE_PORT}/.well-known/acme-challenge/not-ours`);
        assert.equal(await other.text(), 'backend /.well-known/acme-challenge/not-ours');
        assert.equal(await (await fetch(`http://${HOSTS[id]}:${CHALLENGE_PORT}/x`)).text(), 'backend /x');
      }
    } finally {
      await h.stop();
      await new Promise((r) => backend.close(r));
    }
  });
  it('an ACME server that accepts and never answers: each attempt ends at the request timeout, retries are bounded, every node serves its fallback', async (t) => {
    // The slowest ACME server there is: it takes the TCP connection and never says a word.
    const held = new Set<Socket>();
    const hole = createTcpServer((s) => {
      held.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => hole.listen(27011, '127.0.0.61', r));
    const h = new TestCluster({
      basePort: 27400,
      services: [{
        name: 'web', protocol: 'http', port: 27490, backends: [{ address: '127.0.0.1:27999' }], healthCheck: { type: 'none' },
        tls: { acme: { directory: 'https://127.0.0.61:27011/dir', email: 'ops@acme.test', domains: ['e.acme.test'], caFile: pebble.caFile, challengePort: 27480 } },
      }],
      logLevel: 'info',
    });
    try {
      h.writeConfig();
      await Promise.all(['lb1', 'lb2', 'lb3'].map((id) => h.start(id)));
      const t0 = Date.now();
      const failed = await waitFor('an attempt that timed out', async () => {
        for (const id of ['lb1', 'lb2', 'lb3']) {
          const c = (await certs(h, id))[0];
          if (c.attempts >= 1 && c.lastError) return c;
        }
        return null;
      }, 60_000);
      const elapsed = Date.now() - t0;
      assert.match(failed.lastError ?? '', /no response from the ACME server within \d+ ms/);
      t.diagnostic(`first failed attempt after ${elapsed} ms (attempts ${failed.attempts}): ${failed.lastError}`);
      // One attempt per request timeout (10 s) at most, then the back-off (5 s doubling): bounded.
      assert.ok(failed.attempts <= 1 + Math.ceil(elapsed / 5000), `${failed.attempts} attempts in ${elapsed} ms`);
      for (const id of ['lb1', 'lb2', 'lb3']) {
        assert.equal((await h.get(id, '/healthz')).status, 200, `${id} keeps serving`);
        assert.deepEqual(((await h.get(id, '/readyz')).body as { selfSignedCertificate?: string[] }).selfSignedCertificate, ['web'], `${id} says it is on its fallback`);
        assert.match(await servedFingerprint(HOSTS[id], 27490, 'e.acme.test'), /^[0-9a-f]{64}$/, `${id} still completes handshakes`);
      }
    } finally {
      await h.stop();
      for (const s of held) s.destroy();
      await new Promise((r) => hole.close(r));
    }
  });
});
