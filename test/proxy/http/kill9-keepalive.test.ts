/**
 * kill -9 of a primary under keep-alive load, with real node processes: 50 client connections
 * held open for the whole run (each sends its GETs one after the other on the same socket, as a
 * browser or a connection-pooling client does) against the two nodes that stay, for 5 s; the
 * primary of a third of the sessions is killed 1.5 s in. Every GET must be answered 200 and every
 * session keep its backend. Bounded by count and time; asserts outcomes, never rates.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startCluster, sleep, type TestCluster } from '../../helpers/cluster.js';
import { httpBackend, type Backend } from '../../helpers/backends.js';

const BASE = 20200;
const PORT = BASE + 90;
const CONNECTIONS = 50;
const RUN_MS = 5000;
/** Per connection: a bound on requests, so the load ends by count as well as by time. */
const MAX_PER_CONNECTION = 5000;

let c: TestCluster;
let backends: Backend[];

before(async () => {
  backends = await Promise.all(['k1', 'k2', 'k3'].map((id) => httpBackend(id)));
  c = await startCluster({
    basePort: BASE,
    services: [{ name: 'web', protocol: 'http', port: PORT, flowKey: 'header:x-session', backends: backends.map((b) => ({ address: b.address })), healthCheck: { type: 'none' } }],
  });
});

after(async () => {
  await c?.stop();
  await Promise.all((backends ?? []).map((b) => b.close()));
});

/**
 * One keep-alive client connection: GET after GET on the same socket. Responses are read by their
 * Content-Length (every answer on this path has one). Resolves with what each GET got.
 */
class KeepAliveClient {
  readonly #s: net.Socket;
  #buf: Buffer = Buffer.alloc(0);
  #want: ((r: { status: number; body: string } | Error) => void) | null = null;
  closed = false;

  constructor(host: string) {
    this.#s = net.connect({ host, port: PORT, noDelay: true });
    this.#s.on('data', (d: Buffer) => {
      this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d]);
      this.#parse();
    });
    this.#s.on('error', () => undefined);
    this.#s.on('close', () => {
      this.closed = true;
      this.#want?.(new Error('connection closed'));
      this.#want = null;
    });
  }

  get(session: string): Promise<{ status: number; body: string } | Error> {
    if (this.closed) return Promise.resolve(new Error('connection closed'));
    return new Promise((resolve) => {
      this.#want = resolve;
      this.#s.write(`GET /ka HTTP/1.1\r\nHost: t\r\nx-session: ${session}\r\n\r\n`);
    });
  }

  close(): void {
    this.#s.destroy();
  }

  #parse(): void {
    const end = this.#buf.indexOf('\r\n\r\n');
    if (end < 0 || this.#want === null) return;
    const head = this.#buf.toString('latin1', 0, end);
    const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? '-1');
    if (len < 0) {
      this.#want(new Error(`no content-length: ${head.slice(0, 80)}`));
      this.#want = null;
      return this.close();
    }
    if (this.#buf.length < end + 4 + len) return;
    const status = Number(head.slice(9, 12));
    const body = this.#buf.toString('utf8', end + 4, end + 4 + len);
    this.#buf = this.#buf.subarray(end + 4 + len);
    const w = this.#want;
    this.#want = null;
    w({ status, body });
  }
}

test('kill -9 of a primary under 50 keep-alive connections for 5 s: 0 failed requests, 0 sessions moved', async (t) => {
  const sessions = Array.from({ length: 150 }, (_, i) => `ka-${i}`);
  const home = new Map<string, string>();
  const warm = new KeepAliveClient(c.node('lb1').host);
  for (const s of sessions) {
    const r = await warm.get(s);
    assert.ok(!(r instanceof Error) && r.status === 200, `warm-up ${s}: ${String(r instanceof Error ? r.message : r.status)}`);
    home.set(s, (JSON.parse(r.body) as { id: string }).id);
  }
  warm.close();
  await sleep(100);
  const owners = await Promise.all(sessions.map((s) => c.flow('lb1', 'web', s)));
  const victim = 'lb3';
  const victims = sessions.filter((_, i) => owners[i]!.primary === victim);
  assert.ok(victims.length > 20, `${victims.length} sessions with ${victim} as primary`);

  let ok = 0;
  let moved = 0;
  const failures: string[] = [];
  const stopAt = Date.now() + RUN_MS;
  const clients = Array.from({ length: CONNECTIONS }, (_, i) => new KeepAliveClient(c.node(i % 2 === 0 ? 'lb1' : 'lb2').host));
  const load = clients.map(async (client, w) => {
    for (let i = 0; i < MAX_PER_CONNECTION && Date.now() < stopAt; i++) {
      const s = sessions[(w * 7 + i) % sessions.length];
      const r = await client.get(s);
      if (r instanceof Error || r.status !== 200) {
        failures.push(`${s}: ${r instanceof Error ? r.message : `${r.status} ${r.body}`}`);
        if (r instanceof Error) return;
        continue;
      }
      ok++;
      if ((JSON.parse(r.body) as { id: string }).id !== home.get(s)) moved++;
    }
  });
  await sleep(1500);
  await c.kill(victim);
  await Promise.all(load);
  for (const client of clients) client.close();
  t.diagnostic(`${ok} GETs on ${CONNECTIONS} keep-alive connections around a kill -9 of ${victim} (primary of ${victims.length}/150 sessions): ${failures.length} failed, ${moved} moved`);
  assert.deepEqual(failures.slice(0, 10), []);
  assert.equal(moved, 0);
  assert.ok(ok > CONNECTIONS, 'the load ran');
  // The survivors agree on the victims' flows and kept their backends.
  for (const s of victims.slice(0, 10)) {
    const [a, b] = await Promise.all([c.flow('lb1', 'web', s), c.flow('lb2', 'web', s)]);
    assert.equal(a!.backend, b!.backend);
    assert.notEqual(a!.primary, victim);
  }
});
