/**
 * HTTP/2 abuse, written as raw frames over TLS with ALPN h2, against a real node process: rapid
 * reset (CVE-2023-44487), SETTINGS and PING floods, an HPACK bomb, a CONTINUATION flood
 * (CVE-2024-27316 class), too many concurrent streams, a stream that never sends its body. Each
 * time: the abuser is bounded (GOAWAY, or the stream refused or answered 408), it is counted in
 * tandem_http2_abuse_total{service,kind}, and a well-behaved HTTP/2 client of the same node is
 * served meanwhile.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClientHttp2Session } from 'node:http2';
import { startCluster, waitUntil, type TestCluster } from '../../helpers/cluster.js';
import { httpBackend, type Backend } from '../../helpers/backends.js';
import { FLAG, FRAME, frame, getBlock, h2Request, h2Session, hpackIndexed, hpackInt, hpackLiteral, rawH2, writeAll, type RawH2 } from './h2-clients.js';

const FIXTURES = new URL('../../tls/fixtures/', import.meta.url).pathname;
const PORT = 29210;
const ENHANCE_YOUR_CALM = 0x0b;
/**
 * Frames of a SETTINGS or PING flood: 3 times the budget, in one write, so that the node reads
 * them all before it closes and its GOAWAY can be checked. A node that closes a connection with
 * input still unread sends a TCP reset, which may destroy the GOAWAY before the client reads it:
 * against the endless floods below the test accepts either (`cutOff`).
 */
const FLOOD = 60;
let c: TestCluster;
let backend: Backend;
let dir: string;
let host: string;
const opened: ClientHttp2Session[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-h2-abuse-'));
  for (const f of ['a.crt', 'a.key']) copyFileSync(join(FIXTURES, f), join(dir, f));
  backend = await httpBackend('alpha');
  c = await startCluster({
    basePort: 29200,
    nodes: 1,
    services: [
      {
        name: 'web',
        port: PORT,
        protocol: 'http',
        backends: [{ address: backend.address }],
        healthCheck: { type: 'none' },
        timeouts: { requestMs: 1500 },
        tls: { certificates: [{ cert: join(dir, 'a.crt'), key: join(dir, 'a.key') }] },
      },
    ],
  });
  host = c.nodes[0].host;
});

after(async () => {
  for (const s of opened) s.destroy();
  await c?.stop();
  await backend?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const abuse = (kind: string): Promise<number> => c.metric('lb1', 'tandem_http2_abuse_total', { service: 'web', kind });

/**
 * A well-behaved client, on its own connection, making requests one after another while `during`
 * runs (at least `min` of them); every answer must be 200.
 */
async function servedMeanwhile(during: Promise<unknown>, min = 5): Promise<number> {
  const s = await h2Session('a.test', host, PORT);
  opened.push(s);
  let done = false;
  void during.finally(() => (done = true));
  let n = 0;
  while (!done || n < min) {
    const r = await h2Request(s, { ':method': 'GET', ':path': `/good/${n}` });
    assert.equal(r.status, 200, `good request ${n}`);
    n++;
    if (n >= 10_000) break;
  }
  await during;
  s.close();
  return n;
}

/** The abuser was cut: GOAWAY with `code` (any error: 'error'), or a reset that may have destroyed it on the way. */
function cutOff(g: { code: number } | undefined, code: number | 'error'): void {
  if (g === undefined) return;
  if (code === 'error') assert.notEqual(g.code, 0, `GOAWAY ${JSON.stringify(g)}`);
  else assert.equal(g.code, code, `GOAWAY ${JSON.stringify(g)}`);
}

/** Waits until the server closed the raw connection; returns its GOAWAY, if one came. */
async function cut(raw: RawH2): Promise<{ code: number } | undefined> {
  let closed = false;
  void raw.closed.then(() => (closed = true));
  await waitUntil(() => closed, 20_000, 'the abuser cut');
  return raw.goaway();
}

test('rapid reset: HEADERS + RST_STREAM over and over gets GOAWAY ENHANCE_YOUR_CALM, bounded work, others served', async (t) => {
  const before = await abuse('rapid-reset');
  const servedBefore = backend.count();
  const raw = await rawH2('a.test', host, PORT);
  const N = 5000;
  const attack = (async () => {
    const frames = function* () {
      for (let i = 0; i < N; i++) {
        const id = 1 + 2 * i;
        yield frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, getBlock('a.test'));
        yield frame(FRAME.RST_STREAM, 0, id, Buffer.from([0, 0, 0, 8])); // CANCEL
      }
    };
    await writeAll(raw.socket, frames());
    return cut(raw);
  })();
  const good = await servedMeanwhile(attack);
  cutOff(await attack, ENHANCE_YOUR_CALM);
  assert.ok((await abuse('rapid-reset')) > before);
  const reached = backend.count() - servedBefore - good;
  t.diagnostic(`${N} streams opened and reset; ${reached} reached the backend before the GOAWAY; ${good} good requests served meanwhile`);
  assert.ok(reached < N / 2, `the backend saw ${reached} of ${N} reset streams`);
});

test('SETTINGS flood: GOAWAY ENHANCE_YOUR_CALM, counted, others served', async () => {
  const before = await abuse('settings-flood');
  const raw = await rawH2('a.test', host, PORT);
  const attack = (async () => {
    await writeAll(raw.socket, (function* () {
      for (let i = 0; i < FLOOD; i++) yield frame(FRAME.SETTINGS, 0, 0, Buffer.from([0, 4, 0, 1, 0, 0])); // INITIAL_WINDOW_SIZE 65536
    })(), FLOOD);
    return cut(raw);
  })();
  await servedMeanwhile(attack);
  assert.equal((await attack)?.code, ENHANCE_YOUR_CALM);
  assert.ok((await abuse('settings-flood')) > before);
});

test('PING flood: GOAWAY ENHANCE_YOUR_CALM, counted, others served', async () => {
  const before = await abuse('ping-flood');
  const raw = await rawH2('a.test', host, PORT);
  const attack = (async () => {
    await writeAll(raw.socket, (function* () {
      for (let i = 0; i < FLOOD; i++) yield frame(FRAME.PING, 0, 0, Buffer.alloc(8, i & 0xff));
    })(), FLOOD);
    return cut(raw);
  })();
  await servedMeanwhile(attack);
  assert.equal((await attack)?.code, ENHANCE_YOUR_CALM);
  assert.ok((await abuse('ping-flood')) > before);
});

/** Stream 1 puts a ~4 KB field into the dynamic table (index 62) and references it 40 times: 160 KB decoded from 4 KB sent; every later stream is 40 bytes on the wire for the same. */
function* bomb(streams: number): Generator<Buffer> {
  const ref = hpackInt(62, 7, 0x80);
  const refs = Buffer.concat(Array.from({ length: 40 }, () => ref));
  yield frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, getBlock('a.test', [hpackIndexed('x-bomb', 'b'.repeat(4000)), refs]));
  for (let i = 1; i < streams; i++) yield frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1 + 2 * i, getBlock('a.test', [refs]));
}

for (const when of ['right after the preface', 'after the SETTINGS ACK'] as const) {
  test(`HPACK bomb ${when}: heads far over the header list limit never reach a backend; GOAWAY, counted, others served`, async () => {
    // Before the ACK tandem measures the heads (431 each, then GOAWAY); after it node:http2 refuses
    // the streams (RST_STREAM) and tandem counts the refusals — unless node:http2 ends the session
    // first on its own bound (maxSessionInvalidFrames: protocol-error, without GOAWAY).
    const kinds = when === 'after the SETTINGS ACK' ? ['refused-streams', 'protocol-error'] : ['oversized-headers'];
    const counted = async () => (await Promise.all(kinds.map(abuse))).reduce((a, b) => a + b, 0);
    const before = await counted();
    const servedBefore = backend.count();
    const raw = await rawH2('a.test', host, PORT);
    // After the ACK node:http2 holds SETTINGS_MAX_HEADER_LIST_SIZE itself (RST_STREAM); before it, tandem answers 431.
    if (when === 'after the SETTINGS ACK') await waitUntil(() => raw.frames.some((f) => f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) !== 0), 20_000, 'SETTINGS exchanged');
    const attack = (async () => {
      await writeAll(raw.socket, bomb(2000));
      return cut(raw);
    })();
    const good = await servedMeanwhile(attack);
    const g = await attack;
    if (when === 'right after the preface') cutOff(g, ENHANCE_YOUR_CALM);
    else cutOff(g, 'error');
    assert.ok((await counted()) > before, kinds.join(' or '));
    assert.equal(backend.count() - servedBefore, good, 'no bombed request reached the backend');
  });
}

test('CONTINUATION flood: a header block that never ends is cut by nghttp2, counted, others served', async () => {
  const before = await abuse('continuation-flood');
  const raw = await rawH2('a.test', host, PORT);
  const attack = (async () => {
    await writeAll(raw.socket, (function* () {
      yield frame(FRAME.HEADERS, FLAG.END_STREAM, 1, getBlock('a.test'));
      for (let i = 0; i < 10_000; i++) yield frame(FRAME.CONTINUATION, 0, 1, hpackLiteral(`x-c${i}`, 'v'));
    })());
    return cut(raw);
  })();
  await servedMeanwhile(attack);
  // node:http2 ends the session on nghttp2's verdict (an error code, INTERNAL_ERROR on Node 20).
  cutOff(await attack, 'error');
  assert.ok((await abuse('continuation-flood')) > before);
});

test('over 100 concurrent streams: the extra ones are refused, the first 100 and other clients are served', async () => {
  const raw = await rawH2('a.test', host, PORT);
  // POST without END_STREAM and without a body yet: each stream stays open.
  const post = Buffer.from([0x83, 0x87, 0x84]); // :method POST, :scheme https, :path /
  const block = Buffer.concat([post, Buffer.from([0x41, 6]), Buffer.from('a.test')]);
  await writeAll(raw.socket, (function* () {
    for (let i = 0; i < 150; i++) yield frame(FRAME.HEADERS, FLAG.END_HEADERS, 1 + 2 * i, block);
  })());
  await waitUntil(() => raw.frames.filter((f) => f.type === FRAME.RST_STREAM).length >= 50, 20_000, 'the streams over the limit refused');
  const refused = raw.frames.filter((f) => f.type === FRAME.RST_STREAM);
  assert.ok(refused.every((f) => f.stream > 2 * 100 - 1), `refused: ${refused.map((f) => f.stream).join(',')}`);
  await servedMeanwhile(Promise.resolve(), 5);
  // The open streams end their bodies: the first 100 are answered.
  await writeAll(raw.socket, (function* () {
    for (let i = 0; i < 100; i++) yield frame(FRAME.DATA, FLAG.END_STREAM, 1 + 2 * i, Buffer.from('x'));
  })());
  await waitUntil(() => raw.frames.filter((f) => f.type === FRAME.HEADERS).length >= 100, 20_000, '100 answers');
  raw.socket.destroy();
});

test('a stream that never sends its body is answered 408 after requestMs; the connection serves on', async () => {
  const before = await abuse('stream-timeout');
  const s = await h2Session('a.test', host, PORT);
  opened.push(s);
  const stalled = await new Promise<{ status: number; error: string | undefined }>((resolve, reject) => {
    const req = s.request({ ':method': 'POST', ':path': '/stall', 'content-length': '100' }, { endStream: false });
    req.write('only-part');
    req.on('response', (h) => resolve({ status: Number(h[':status']), error: h['tandem-error'] as string | undefined }));
    req.on('error', reject);
  });
  assert.equal(stalled.status, 408);
  assert.equal(stalled.error, 'request-timeout');
  assert.ok((await abuse('stream-timeout')) > before);
  assert.equal((await h2Request(s, { ':method': 'GET', ':path': '/after' })).status, 200);
});

test('through all of it the node logged no uncaught exception', () => {
  assert.doesNotMatch(readFileSync(c.node('lb1').logFile, 'utf8'), /uncaught exception/);
});
