/**
 * HTTP bad-input corpus against a live two-node cluster (issue 10): request smuggling attempts
 * (conflicting Content-Length and Transfer-Encoding, duplicate or malformed lengths, unknown or
 * non-final codings, obs-fold, bare LF and CR, bad chunk framing), invalid methods, targets and
 * versions, Host errors, and header injection through the flow-key header and tandem's own peer
 * fields. Each case is sent raw three times: to the client port with a session owned by the
 * receiving node (served there) and with one owned by the other node (forwarded over the peer
 * multiplexer), and straight into the owner's peer-facing parser — an authenticated multiplexer
 * stream whose OPEN carries the case's head and whose data the rest — because a smuggled request
 * could hide in either hop, and a faulty or compromised peer must not get further than a client.
 *
 * Expectations are RFC 9112's (section numbers inline), as a careful proxy applies them: refuse
 * with 4xx/5xx and close when framing is in doubt, never let a second request through, never
 * hand a backend a field value with CR, LF or NUL, never pass tandem's peer fields from a client.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { IncomingMessage } from 'node:http';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { httpBackend, type Backend } from '../helpers/backends.js';
import { assertNodesSound, assertStarted } from './helpers/metrics.js';
import { authConnect } from './helpers/peer.js';
import { PeerMux } from '../../src/proxy/mux/peer-mux.js';
import { encodePeerHead, PREFIX_BYTES, PREFIX_CLOSE } from '../../src/proxy/http/peer-head.js';

const BASE = 17820;
const PORT = BASE + 10;
let c: TestCluster;
let backend: Backend & { server: import('node:http').Server };
const seenByBackend: Array<{ method: string; url: string; headers: string[] }> = [];

before(async () => {
  backend = await httpBackend('b1');
  backend.server.prependListener('request', (req: IncomingMessage) => {
    seenByBackend.push({ method: req.method ?? '', url: req.url ?? '', headers: req.rawHeaders });
  });
  c = await startCluster({
    basePort: BASE,
    nodes: 2,
    services: [{ name: 'web', protocol: 'http', port: PORT, flowKey: 'header:x-session', backends: [{ address: backend.address }], healthCheck: { type: 'none' }, timeouts: { headerMs: 2000, requestMs: 3000 } }],
  });
  await assertStarted(c, ['lb1', 'lb2']);
});

after(async () => {
  peerMux?.close();
  await c?.stop();
  await backend?.close();
});

interface Outcome {
  statuses: number[];
  closed: boolean;
  text: string;
}

/**
 * Sends raw bytes to lb1's service port; collects responses until the server ends or goes quiet.
 * The quiet and hard limits are patience (a busy machine answers late), never a verdict.
 */
function exchange(bytes: Buffer, quietMs = 1000, maxMs = 8000): Promise<Outcome> {
  return new Promise((resolve) => {
    const s = net.connect(PORT, c.node('lb1').host);
    const chunks: Buffer[] = [];
    let closed = false;
    let quiet: NodeJS.Timeout | undefined;
    const finish = (): void => {
      clearTimeout(quiet);
      clearTimeout(hard);
      s.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const statuses = [...text.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
      resolve({ statuses, closed, text });
    };
    const hard = setTimeout(finish, maxMs);
    s.on('error', () => undefined);
    s.on('connect', () => s.write(bytes));
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      clearTimeout(quiet);
      quiet = setTimeout(finish, quietMs);
    });
    // The server's FIN: tandem ends the connection after a framing error.
    s.on('end', () => {
      closed = true;
      finish();
    });
    s.on('close', () => {
      closed = true;
      finish();
    });
  });
}

/** A test peer posing as lb1 (the secret is the cluster's): it dials lb2's peer port for the 'http' channel. */
let peerMux: PeerMux | undefined;

/**
 * Sends raw bytes into lb2's peer-facing parser: the bytes up to the first blank line (the head)
 * in the stream's OPEN, as a peer's request head travels, the rest as stream data. `closed` is the
 * owner telling the ingress to close its client connection after the answer (the prefix flag).
 */
function exchangePeer(bytes: Buffer, key: string, maxMs = 3500): Promise<Outcome> {
  const lb2 = c.node('lb2');
  peerMux ??= new PeerMux({ dial: () => authConnect({ host: lb2.host, port: lb2.peerPort, id: 'lb2' }, 'lb1', 'http') });
  const split = bytes.indexOf('\r\n\r\n');
  const head = split < 0 ? bytes : bytes.subarray(0, split + 4);
  const rest = split < 0 ? Buffer.alloc(0) : bytes.subarray(split + 4);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(hard);
      const all = Buffer.concat(chunks);
      const closed = all.length >= PREFIX_BYTES && (all[1] & PREFIX_CLOSE) !== 0;
      const text = all.subarray(PREFIX_BYTES).toString('latin1');
      const statuses = [...text.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
      resolve({ statuses, closed, text });
    };
    const hard = setTimeout(() => {
      stream.reset(3, 'test over');
      finish();
    }, maxMs);
    const stream = peerMux!.open('lb2', encodePeerHead(0, 'web', key, '127.0.0.9:4444', head.toString('latin1')), {
      onData: (d) => {
        chunks.push(d);
        stream.consumed(d.length);
      },
      onEnd: finish,
      onReset: finish,
      onDrain: () => undefined,
    });
    if (rest.length > 0) stream.write(rest);
    stream.end();
  });
}

interface Case {
  readonly name: string;
  /** The raw request(s); `KEY` is replaced by the session key. */
  readonly raw: string;
  /** Acceptable status of each response, in order; a single list applies to the first. */
  readonly expect: readonly number[];
  /** The server must close the connection after answering (framing in doubt). */
  readonly close?: boolean;
  /** How many responses at most (a smuggled second request would add one). */
  readonly maxResponses?: number;
  /** The last expected response may be replaced by the connection's close. */
  readonly lastOptional?: boolean;
  /**
   * At the owner's peer-facing parser, when it differs: the checks that belong to the receiving
   * node (the flow key, which an owner takes from the OPEN frame; a missing Host of an HTTP/1.0
   * client, which the ingress lets through with the request line rewritten to 1.1) do not apply.
   */
  readonly peerExpect?: readonly number[];
  /** At the peer-facing parser, when it differs from `close`. */
  readonly peerClose?: boolean;
}

const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n';
const head = (extra: string, method = 'GET', target = '/ok', version = 'HTTP/1.1'): string => `${method} ${target} ${version}\r\nHost: t\r\nX-Session: KEY\r\n${extra}\r\n`;

const CASES: Case[] = [
  // --- smuggling: framing conflicts (RFC 9112 section 6.1, 6.3) ---
  { name: 'CL + TE (CL.TE)', raw: head(`Content-Length: ${4 + SMUGGLED.length + 5}\r\nTransfer-Encoding: chunked\r\n`, 'POST') + `0\r\n\r\n${SMUGGLED}`, expect: [400], close: true, maxResponses: 1 },
  { name: 'TE + CL (TE.CL)', raw: head('Transfer-Encoding: chunked\r\nContent-Length: 4\r\n', 'POST') + `${(SMUGGLED.length + 2).toString(16)}\r\nxx${SMUGGLED}\r\n0\r\n\r\n`, expect: [400], close: true, maxResponses: 1 },
  { name: 'two different Content-Length', raw: head(`Content-Length: 0\r\nContent-Length: ${SMUGGLED.length}\r\n`, 'POST') + SMUGGLED, expect: [400], close: true, maxResponses: 1 },
  { name: 'Content-Length list of different values', raw: head(`Content-Length: 0, ${SMUGGLED.length}\r\n`, 'POST') + SMUGGLED, expect: [400], close: true, maxResponses: 1 },
  { name: 'Content-Length +5', raw: head('Content-Length: +5\r\n', 'POST') + 'hello', expect: [400], close: true },
  { name: 'Content-Length -1', raw: head('Content-Length: -1\r\n', 'POST'), expect: [400], close: true },
  { name: 'Content-Length 0x05', raw: head('Content-Length: 0x05\r\n', 'POST') + 'hello', expect: [400], close: true },
  { name: 'Content-Length "5 5"', raw: head('Content-Length: 5 5\r\n', 'POST') + 'hello', expect: [400], close: true },
  { name: 'Content-Length beyond 2^53', raw: head('Content-Length: 99999999999999999999\r\n', 'POST'), expect: [400, 413], close: true },
  { name: 'TE chunked twice', raw: head('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', 'POST') + '0\r\n\r\n', expect: [400], close: true },
  { name: 'TE chunked not final', raw: head('Transfer-Encoding: chunked, identity\r\n', 'POST') + `0\r\n\r\n${SMUGGLED}`, expect: [400], close: true, maxResponses: 1 },
  { name: 'TE unknown coding', raw: head('Transfer-Encoding: gzip\r\n', 'POST') + SMUGGLED, expect: [400, 501], close: true, maxResponses: 1 },
  { name: 'TE xchunked', raw: head('Transfer-Encoding: xchunked\r\n', 'POST') + `0\r\n\r\n${SMUGGLED}`, expect: [400, 501], close: true, maxResponses: 1 },
  { name: 'TE with space before colon', raw: head('Transfer-Encoding : chunked\r\n', 'POST') + `0\r\n\r\n${SMUGGLED}`, expect: [400], close: true, maxResponses: 1 },
  { name: 'TE with vertical tab', raw: head('Transfer-Encoding:\x0bchunked\r\n', 'POST') + `0\r\n\r\n${SMUGGLED}`, expect: [400], close: true, maxResponses: 1 },
  { name: 'TE in HTTP/1.0 (section 6.1: faulty framing)', raw: head('Transfer-Encoding: chunked\r\n', 'POST', '/ok', 'HTTP/1.0') + `0\r\n\r\n${SMUGGLED}`, expect: [400], close: true, maxResponses: 1 },
  { name: 'chunk size not hex', raw: head('Transfer-Encoding: chunked\r\n', 'POST') + `zz\r\nhello\r\n0\r\n\r\n${SMUGGLED}`, expect: [400], close: true, maxResponses: 1 },
  { name: 'chunk size overflow', raw: head('Transfer-Encoding: chunked\r\n', 'POST') + `ffffffffffffffffff\r\nhello\r\n0\r\n\r\n`, expect: [400], close: true, maxResponses: 1 },
  { name: 'chunk data longer than its size', raw: head('Transfer-Encoding: chunked\r\n', 'POST') + `3\r\nhello\r\n0\r\n\r\n${SMUGGLED}`, expect: [400], close: true, maxResponses: 1 },
  { name: 'chunk extension with bare LF', raw: head('Transfer-Encoding: chunked\r\n', 'POST') + `5;x\nhello\r\n0\r\n\r\n${SMUGGLED}`, expect: [400], close: true, maxResponses: 1 },
  { name: 'Content-Length body holding a request (legitimate: it is body)', raw: head(`Content-Length: ${SMUGGLED.length}\r\n`, 'POST') + SMUGGLED, expect: [200], maxResponses: 1 },
  // --- line endings and folding (sections 2.2, 5.2) ---
  { name: 'bare LF line endings', raw: `GET /ok HTTP/1.1\nHost: t\nX-Session: KEY\n\n`, expect: [400], close: true },
  { name: 'bare LF after one header', raw: `GET /ok HTTP/1.1\r\nHost: t\nX-Session: KEY\r\n\r\n`, expect: [400], close: true },
  { name: 'bare CR inside a value', raw: head('X-A: a\rb\r\n'), expect: [400], close: true },
  { name: 'obs-fold', raw: head('X-A: a\r\n b\r\n'), expect: [400], close: true },
  { name: 'obs-fold of the flow-key header', raw: `GET /ok HTTP/1.1\r\nHost: t\r\nX-Session: KEY\r\n x-injected: 1\r\n\r\n`, expect: [400], close: true },
  { name: 'line starting with whitespace before the first field', raw: `GET /ok HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: t\r\nX-Session: KEY\r\n\r\n`, expect: [400], close: true },
  { name: 'NUL in a value', raw: head('X-A: a\x00b\r\n'), expect: [400], close: true },
  { name: 'space inside a field name', raw: head('X A: b\r\n'), expect: [400], close: true },
  { name: 'space before the colon', raw: head('X-A : b\r\n'), expect: [400], close: true },
  { name: 'field name with a non-token character', raw: head('X-A(: b\r\n'), expect: [400], close: true },
  { name: 'field line without a colon', raw: head('X-A b\r\n'), expect: [400], close: true },
  // --- methods, targets, versions (sections 3, 3.2) ---
  { name: 'method with a non-token character', raw: head('', 'G@T'), expect: [400], close: true },
  { name: 'lower-case method (unknown token)', raw: head('', 'get'), expect: [400, 405, 501], close: true },
  { name: 'unknown method', raw: head('', 'FOO'), expect: [400, 405, 501], close: true },
  { name: 'method of 1000 characters', raw: head('', 'A'.repeat(1000)), expect: [400, 501], close: true },
  { name: 'tab between method and target', raw: `GET\t/ok HTTP/1.1\r\nHost: t\r\nX-Session: KEY\r\n\r\n`, expect: [400], close: true },
  { name: 'CONNECT', raw: `CONNECT t:443 HTTP/1.1\r\nHost: t:443\r\nX-Session: KEY\r\n\r\n`, expect: [405], close: true },
  { name: 'space in the target', raw: head('', 'GET', '/a b'), expect: [400], close: true },
  // Section 3 lets a recipient parse on whitespace word boundaries; tandem re-serialises the line.
  { name: 'two spaces before the target', raw: head('', 'GET', ' /ok'), expect: [400, 200] },
  { name: 'DEL in the target', raw: head('', 'GET', '/a\x7f'), expect: [400], close: true },
  { name: 'NUL in the target', raw: head('', 'GET', '/a\x00'), expect: [400], close: true },
  { name: 'raw non-ASCII in the target', raw: head('', 'GET', '/\xe9'), expect: [400], close: true },
  { name: 'asterisk-form with GET', raw: head('', 'GET', '*'), expect: [400] },
  { name: 'no target', raw: `GET HTTP/1.1\r\nHost: t\r\nX-Session: KEY\r\n\r\n`, expect: [400], close: true },
  // An owner takes heads up to 64 KB (forwarded heads carry more fields): there, the backend refuses.
  { name: 'target of 20 KB', raw: head('', 'GET', `/${'a'.repeat(20_000)}`), expect: [400, 414, 431], close: true, peerClose: false },
  { name: 'HTTP/2.0 on an HTTP/1 connection', raw: head('', 'GET', '/ok', 'HTTP/2.0'), expect: [400, 505], close: true },
  { name: 'HTTP/1.2', raw: head('', 'GET', '/ok', 'HTTP/1.2'), expect: [400, 505], close: true },
  { name: 'lower-case http/1.1', raw: head('', 'GET', '/ok', 'http/1.1'), expect: [400], close: true },
  { name: 'HTTP/1.1 with junk', raw: head('', 'GET', '/ok', 'HTTP/1.1x'), expect: [400], close: true },
  // --- Host (section 3.2) ---
  { name: 'no Host in HTTP/1.1', raw: `GET /ok HTTP/1.1\r\nX-Session: KEY\r\n\r\n`, expect: [400] },
  { name: 'two Host fields', raw: head('Host: u\r\n'), expect: [400] },
  // --- header injection via the flow key and tandem's peer fields ---
  { name: 'flow key with %0d%0a text (just text)', raw: `GET /ok HTTP/1.1\r\nHost: t\r\nX-Session: KEY%0d%0aX-Injected: 1\r\n\r\n`, expect: [200] },
  { name: 'flow key with a C0 control', raw: `GET /ok HTTP/1.1\r\nHost: t\r\nX-Session: KEY\x01x\r\n\r\n`, expect: [400] },
  { name: 'flow key with DEL', raw: `GET /ok HTTP/1.1\r\nHost: t\r\nX-Session: KEY\x7f\r\n\r\n`, expect: [400] },
  // (An owner takes the flow key from the OPEN frame: there the field is just a field.)
  { name: 'flow key with a C1 byte', raw: `GET /ok HTTP/1.1\r\nHost: t\r\nX-Session: KEY\x9bx\r\n\r\n`, expect: [400], peerExpect: [200] },
  { name: 'flow key of 300 bytes', raw: `GET /ok HTTP/1.1\r\nHost: t\r\nX-Session: ${'k'.repeat(300)}\r\n\r\n`, expect: [400], peerExpect: [200] },
  { name: 'client-sent x-tandem-* peer fields', raw: head('X-Tandem-Flow-Key: forged\r\nX-Tandem-Client: 6.6.6.6:1\r\nX-Tandem-Service: other\r\n'), expect: [200] },
  { name: 'Connection naming the flow-key header', raw: head('Connection: x-session, x-tandem-flow-key\r\n'), expect: [200] },
  // --- sizes ---
  { name: '5000 header fields', raw: head(Array.from({ length: 5000 }, (_, i) => `X-${i}: v\r\n`).join('')), expect: [431, 400], close: true, peerClose: false },
  { name: 'one field of 20 KB', raw: head(`X-Big: ${'v'.repeat(20_000)}\r\n`), expect: [431], close: true, peerClose: false },
  // --- pipelining: a good request, then a bad one ---
  // The good request is answered first (section 9.3.2: responses in request order); the bad one
  // gets its 400 or, once the first response is under way, just the close.
  { name: 'pipelined good then CL+TE', raw: head('') + head(`Content-Length: 5\r\nTransfer-Encoding: chunked\r\n`, 'POST') + `0\r\n\r\n${SMUGGLED}`, expect: [200, 400], close: true, maxResponses: 2, lastOptional: true, peerExpect: [400] },
];

/**
 * Deviations found by this corpus in the HTTP proxy (src/proxy/http, not this suite's to change),
 * reported to its owner. They run in their own `todo` test below: visible in every run, not
 * failing CI, and passing on their own once fixed.
 */
const KNOWN_PROXY_ISSUES = new Set<string>([
  // Both deviations found in the first runs (an HTTP/2.0 request line proxied as 1.1; a pipelined
  // 400 written before the earlier request's 200) were fixed in src/proxy/http; none open.
]);

/** A session key whose primary is `owner` (asked from the node's own ranking). */
async function keyOwnedBy(owner: string, prefix: string): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const key = `${prefix}${i}`;
    const r = (await c.get('lb1', `/api/ranking?key=${encodeURIComponent(key)}`)).body as { wouldOwn: { primary: string } };
    if (r.wouldOwn.primary === owner) return key;
  }
  throw new Error(`no key owned by ${owner}`);
}

async function runCorpus(cases: readonly Case[]): Promise<{ failures: string[]; tally: string[]; keys: Record<string, string> }> {
  const keys = { local: await keyOwnedBy('lb1', 'corpus-l'), forwarded: await keyOwnedBy('lb2', 'corpus-f') };
  const failures: string[] = [];
  const tally: string[] = [];
  const runs = [...Object.entries(keys), ['peer', keys.forwarded] as const].flatMap(([hop, key]) => cases.map((k) => ({ hop, key, k })));
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < runs.length) {
        const { hop, key, k: kk } = runs[next++];
        const bytes = Buffer.from(kk.raw.replaceAll('KEY', key), 'latin1');
        const peer = hop === 'peer';
        const k = peer ? { ...kk, expect: kk.peerExpect ?? kk.expect, close: kk.peerClose ?? kk.close } : kk;
        const o = peer ? await exchangePeer(bytes, key) : await exchange(bytes);
        const want = k.expect.length > 1 && (k.maxResponses ?? 1) > 1 ? k.expect : [k.expect];
        const problems: string[] = [];
        if (o.statuses.length === 0) problems.push('no response');
        if (k.maxResponses !== undefined && o.statuses.length > k.maxResponses) problems.push(`${o.statuses.length} responses (a smuggled request was answered)`);
        if ((k.maxResponses ?? 1) > 1) {
          const want = k.lastOptional && o.statuses.length === k.expect.length - 1 ? k.expect.slice(0, -1) : k.expect;
          want.forEach((s, i) => o.statuses[i] !== s && problems.push(`response ${i + 1}: ${o.statuses[i]} instead of ${s}`));
        } else if (o.statuses.length > 0 && !(want[0] as readonly number[]).includes(o.statuses[0])) {
          problems.push(`status ${o.statuses[0]} instead of ${k.expect.join('|')}`);
        }
        if (k.close && !o.closed) problems.push('connection left open after a framing error (section 9.6 / 6.3)');
        if (problems.length) failures.push(`[${hop}] ${k.name}: ${problems.join('; ')} — ${JSON.stringify(o.text.slice(0, 120))}`);
        tally.push(`${o.statuses.join('+') || 'none'}`);
      }
    }),
  );
  return { failures, tally, keys: { ...keys } };
}

test('HTTP bad-input corpus: each case refused as RFC 9112 asks, locally, through the peer hop and at the peer-facing parser; nothing smuggled', async (t) => {
  const cases = CASES.filter((k) => !KNOWN_PROXY_ISSUES.has(k.name));
  const { failures, tally, keys } = await runCorpus(cases);
  // What the backend saw, over the whole corpus.
  const smuggled = seenByBackend.filter((r) => r.url.includes('smuggled'));
  const peerFields = seenByBackend.flatMap((r) => r.headers.filter((_, i) => i % 2 === 0 && /^x-tandem-/i.test(r.headers[i])));
  const injected = seenByBackend.flatMap((r) => r.headers.filter((h, i) => (i % 2 === 0 && /^x-injected$/i.test(h)) || /[\r\n\0]/.test(h)));
  const forged = seenByBackend.filter((r) => r.headers.some((h) => h.includes('6.6.6.6')) && r.headers.some((h, i) => /^x-forwarded-for$/i.test(r.headers[i - 1] ?? '') && h.includes('6.6.6.6')));
  const counts = new Map<string, number>();
  for (const s of tally) counts.set(s, (counts.get(s) ?? 0) + 1);
  t.diagnostic(`${tally.length} exchanges (${cases.length} cases × local, forwarded and peer-facing): responses ${JSON.stringify(Object.fromEntries(counts))}; backend saw ${seenByBackend.length} requests`);
  if (failures.length) t.diagnostic(`deviations:\n${failures.join('\n')}`);
  assert.deepEqual(smuggled.map((r) => r.url), [], 'no smuggled request reached the backend');
  assert.deepEqual(peerFields, [], 'no client-sent x-tandem-* field reached the backend');
  assert.deepEqual(injected, [], 'no injected field, no CR/LF/NUL in any field the backend got');
  assert.deepEqual(forged.length, 0, 'a forged x-tandem-client never became the client address');
  assert.deepEqual(failures, [], 'every case answered as expected');
  // And the node serves normally afterwards, on both paths.
  for (const key of Object.values(keys)) {
    const o = await exchange(Buffer.from(head('Connection: close\r\n').replace('KEY', key)));
    assert.deepEqual(o.statuses, [200]);
  }
  await assertNodesSound(c, ['lb1', 'lb2']);
});

test('HTTP corpus, known proxy deviations (reported; todo until src/proxy/http is fixed)', { todo: KNOWN_PROXY_ISSUES.size > 0 ? [...KNOWN_PROXY_ISSUES].join('; ') : false, skip: KNOWN_PROXY_ISSUES.size === 0 ? 'no known deviation open' : false }, async (t) => {
  const { failures } = await runCorpus(CASES.filter((k) => KNOWN_PROXY_ISSUES.has(k.name)));
  if (failures.length) t.diagnostic(failures.join('\n'));
  assert.deepEqual(failures, []);
});
