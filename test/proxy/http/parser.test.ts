/**
 * The llhttp wrapper (src/proxy/http/parser.ts) on its own: heads in one read and split over
 * many, more fields than the binding hands over at once, pipelining, bodies (length and chunked),
 * upgrades, responses to HEAD and delimited by the close, strict refusals, the head size limit, and
 * parser reuse. The smuggling corpus runs through it end to end in test/reliability/http-corpus.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { acquireParser, releaseParser, SKIP_BODY, type HttpParser, type ParserSink } from '../../../src/proxy/http/parser.js';

interface Msg {
  method: string;
  url: string;
  status: number;
  version: string;
  headers: string[];
  keepAlive: boolean;
  upgrade: boolean;
  body: string;
  complete: boolean;
}

class Collect implements ParserSink {
  readonly msgs: Msg[] = [];
  skip = false;
  onHead(p: HttpParser): number {
    this.msgs.push({ method: p.method, url: p.url, status: p.statusCode, version: `${p.versionMajor}.${p.versionMinor}`, headers: [...p.headers], keepAlive: p.keepAlive, upgrade: p.upgrade, body: '', complete: false });
    return this.skip ? SKIP_BODY : 0;
  }
  onBody(chunk: Buffer): void {
    this.msgs[this.msgs.length - 1].body += chunk.toString('latin1');
  }
  onMessageEnd(): void {
    this.msgs[this.msgs.length - 1].complete = true;
  }
}

function parse(kind: 'request' | 'response', pieces: readonly string[], max = 16 * 1024): { sink: Collect; results: number[]; p: HttpParser } {
  const sink = new Collect();
  const p = acquireParser(kind, sink, max);
  const results = pieces.map((s) => p.execute(Buffer.from(s, 'latin1')));
  return { sink, results, p };
}

test('a request head in one read, and the same head one byte at a time', () => {
  const raw = 'GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n';
  for (const pieces of [[raw], raw.split('')]) {
    const { sink, results, p } = parse('request', pieces);
    assert.ok(results.every((r, i) => r === pieces[i].length));
    assert.deepEqual(sink.msgs, [{ method: 'GET', url: '/a?b=1', status: 0, version: '1.1', headers: ['Host', 'x', 'X-A', '1'], keepAlive: true, upgrade: false, body: '', complete: true }]);
    releaseParser(p);
  }
});

test('more fields than the binding passes at once (its slow path) arrive whole and in order', () => {
  const names = Array.from({ length: 100 }, (_, i) => `X-F${i}`);
  const raw = `PUT /${'u'.repeat(300)} HTTP/1.1\r\nHost: x\r\n${names.map((n, i) => `${n}: v${i}\r\n`).join('')}\r\n`;
  const { sink, p } = parse('request', [raw.slice(0, 700), raw.slice(700)]);
  const m = sink.msgs[0];
  assert.equal(m.method, 'PUT');
  assert.equal(m.url, `/${'u'.repeat(300)}`);
  assert.equal(m.headers.length, 2 + names.length * 2);
  assert.deepEqual(m.headers.slice(-2), ['X-F99', 'v99']);
  releaseParser(p);
});

test('pipelined requests, bodies by length and by chunks; trailers are not fields', () => {
  const raw =
    'POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello' +
    'POST /2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n' +
    'GET /3 HTTP/1.0\r\n\r\n';
  const { sink, p } = parse('request', [raw]);
  assert.deepEqual(sink.msgs.map((m) => [m.url, m.body, m.complete, m.keepAlive, m.version]), [
    ['/1', 'hello', true, true, '1.1'],
    ['/2', 'abcde', true, true, '1.1'],
    ['/3', '', true, false, '1.0'],
  ]);
  assert.deepEqual(sink.msgs[1].headers, ['Host', 'x', 'Transfer-Encoding', 'chunked']);
  releaseParser(p);
});

test('strict: the smuggling shapes are refused with llhttp codes', () => {
  const cases: Array<[string, string]> = [
    ['POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'HPE_INVALID_TRANSFER_ENCODING'],
    ['POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', 'HPE_UNEXPECTED_CONTENT_LENGTH'],
    ['GET / HTTP/1.1\nHost: x\n\n', ''],
    ['GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n', ''],
    ['POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'HPE_INVALID_CHUNK_SIZE'],
  ];
  for (const [raw, code] of cases) {
    const { results, p } = parse('request', [raw]);
    assert.equal(results[0], -1, JSON.stringify(raw));
    assert.match(p.errorCode, /^HPE_/);
    if (code) assert.equal(p.errorCode, code);
    releaseParser(p);
  }
});

test('a head over the limit is HPE_HEADER_OVERFLOW', () => {
  const { results, p } = parse('request', [`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(2000)}\r\n\r\n`], 1024);
  assert.equal(results[0], -1);
  assert.equal(p.errorCode, 'HPE_HEADER_OVERFLOW');
  releaseParser(p);
});

test('an upgrade stops the parse at the end of its head: the rest is the new protocol', () => {
  const head = 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';
  const { sink, results, p } = parse('request', [`${head}RAW-BYTES`]);
  assert.equal(results[0], head.length);
  assert.equal(sink.msgs[0].upgrade, true);
  releaseParser(p);
});

test('responses: 1xx then the real one, a HEAD response without its body, a body until the close', () => {
  const r1 = parse('response', ['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok']);
  assert.deepEqual(r1.sink.msgs.map((m) => [m.status, m.body, m.complete]), [[100, '', true], [200, 'ok', true]]);
  releaseParser(r1.p);
  const sink = new Collect();
  sink.skip = true;
  const p = acquireParser('response', sink, 16 * 1024);
  const two = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n');
  assert.equal(p.execute(two), two.length);
  assert.deepEqual(sink.msgs.map((m) => [m.status, m.complete]), [[200, true], [204, true]]);
  releaseParser(p);
  const r3 = parse('response', ['HTTP/1.0 200 OK\r\n\r\nuntil ', 'the close']);
  assert.equal(r3.sink.msgs[0].complete, false);
  assert.equal(r3.p.finish(), 0);
  assert.deepEqual([r3.sink.msgs[0].body, r3.sink.msgs[0].complete, r3.sink.msgs[0].keepAlive], ['until the close', true, false]);
  releaseParser(r3.p);
  const r4 = parse('response', ['HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort']);
  assert.equal(r4.p.finish(), -1, 'a body cut short by the close is an error');
  releaseParser(r4.p);
});

test('parsers are reused, clean', () => {
  const a = new Collect();
  const p1 = acquireParser('request', a, 1024);
  p1.execute(Buffer.from('GET /half HTTP/1.1\r\nHost: x\r\nX-'));
  releaseParser(p1);
  const b = new Collect();
  const p2 = acquireParser('request', b, 1024);
  assert.equal(p2, p1, 'the same parser from the free list');
  const fresh = Buffer.from('GET /new HTTP/1.1\r\nHost: y\r\n\r\n');
  assert.equal(p2.execute(fresh), fresh.length);
  assert.deepEqual(b.msgs.map((m) => [m.url, m.headers]), [['/new', ['Host', 'y']]]);
  assert.equal(a.msgs.length, 0);
  releaseParser(p2);
});

test('every method Node knows is named, QUERY too', () => {
  for (const m of ['GET', 'DELETE', 'PATCH', 'PURGE', 'M-SEARCH', 'QUERY', 'SOURCE']) {
    const { sink, p } = parse('request', [`${m} / HTTP/1.1\r\nHost: x\r\n\r\n`]);
    assert.equal(sink.msgs[0]?.method, m);
    releaseParser(p);
  }
});

test('without the binding, start-up fails with ParserUnavailableError', () => {
  const script = `
    const Module = require('node:module');
    const load = Module._load;
    Module._load = function (request, ...rest) {
      if (request === '_http_common') throw new Error('no such module');
      return load.call(this, request, ...rest);
    };
    import(${JSON.stringify(new URL('../../../src/proxy/http/parser.ts', import.meta.url).href)}).then((m) => {
      try { m.ensureParser(); console.log('loaded'); }
      catch (e) { console.log(e.name, e.code, e.message); }
    });`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8', cwd: new URL('../../..', import.meta.url).pathname });
  assert.match(r.stdout, /^ParserUnavailableError TANDEM_HTTP_PARSER_UNAVAILABLE llhttp binding not available in Node v\d+/, r.stderr);
});
