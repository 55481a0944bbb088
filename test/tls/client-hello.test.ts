import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientHelloReader } from '../../src/tls/client-hello.js';
import { GOLDEN_HELLOS, buildHello, chunks, extension, reRecord, sniExtension } from './hello-fixtures.js';

function feed(parts: Buffer[], max?: number): ClientHelloReader {
  const r = new ClientHelloReader(max);
  for (const p of parts) if (r.push(p) !== 'need-more') break;
  return r;
}

function summary(r: ClientHelloReader): unknown {
  const i = r.info;
  return i === null
    ? { status: r.status, problem: r.problem }
    : { status: r.status, serverName: i.serverName, ticketKeyName: i.ticketKeyName?.toString('hex') ?? null, fragmented: i.fragmented };
}

test('golden ClientHellos of real clients: server name and ticket key name', () => {
  assert.ok(GOLDEN_HELLOS.length >= 9);
  for (const g of GOLDEN_HELLOS) {
    const bytes = Buffer.from(g.hex, 'hex');
    const r = feed([bytes]);
    assert.deepEqual(summary(r), { status: 'done', ...g.expect }, g.name);
    assert.equal(r.info?.bytes, bytes.length, `${g.name}: consumed the whole first flight`);
    assert.equal(r.info?.serverNameInvalid, false);
  }
});

test('golden ClientHellos split into two segments at every position, and byte by byte', () => {
  for (const g of GOLDEN_HELLOS) {
    const bytes = Buffer.from(g.hex, 'hex');
    const want = { status: 'done', ...g.expect };
    for (let cut = 1; cut < bytes.length; cut++) {
      const r = new ClientHelloReader();
      assert.equal(r.push(bytes.subarray(0, cut)), 'need-more', `${g.name} cut ${cut}`);
      r.push(bytes.subarray(cut));
      assert.deepEqual(summary(r), want, `${g.name} cut ${cut}`);
    }
    assert.deepEqual(summary(feed(chunks(bytes, 1))), want, `${g.name} byte by byte`);
    // What was pushed is kept intact, for the caller to pass on untouched.
    const r = feed(chunks(bytes, 7));
    assert.ok(r.buffered.equals(bytes));
  }
});

test('golden ClientHellos re-fragmented into many records (and segments) are read the same', () => {
  for (const g of GOLDEN_HELLOS) {
    const bytes = Buffer.from(g.hex, 'hex');
    for (const size of [1, 3, 64, 200]) {
      const rec = reRecord(bytes, size);
      const want = { status: 'done', ...g.expect, fragmented: rec.length > bytes.length };
      assert.deepEqual(summary(feed([rec])), want, `${g.name} records of ${size}`);
      assert.deepEqual(summary(feed(chunks(rec, 13))), want, `${g.name} records of ${size}, segments of 13`);
    }
  }
});

test('plain HTTP and other protocols on a TLS port', () => {
  const cases: Array<[string, string]> = [
    ['GET / HTTP/1.1\r\nHost: a\r\n\r\n', 'plain-http'],
    ['POST /x HTTP/1.1\r\n', 'plain-http'],
    ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'plain-http'],
    ['SSH-2.0-OpenSSH_9.2\r\n', 'not-tls'],
    ['\x00\x01\x02junk', 'not-tls'],
    ['get / http/1.1\r\n', 'not-tls'],
  ];
  for (const [text, problem] of cases) {
    assert.deepEqual(summary(feed([Buffer.from(text, 'latin1')])), { status: 'invalid', problem }, JSON.stringify(text));
  }
  // A method split across segments is told once its space arrives.
  const r = new ClientHelloReader();
  assert.equal(r.push(Buffer.from('GE')), 'need-more');
  assert.equal(r.push(Buffer.from('T /')), 'invalid');
  assert.equal(r.problem, 'plain-http');
  // An SSLv2-style hello (high bit set) is not accepted.
  assert.equal(feed([Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01])]).problem, 'not-tls');
});

test('oversized: refused as soon as a header announces too much, and at the byte bound', () => {
  // A handshake header announcing 1 MiB.
  const big = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x10, 0x00, 0x00]);
  assert.deepEqual(summary(feed([big])), { status: 'invalid', problem: 'oversized' });
  // Many small records that add up past the bound, without ever completing.
  const hello = buildHello([extension(0xff01, Buffer.alloc(20_000 - 100, 1))]);
  const r = feed(chunks(reRecord(hello, 1000), 1500), 16 * 1024);
  assert.deepEqual(summary(r), { status: 'invalid', problem: 'oversized' });
  assert.ok(r.buffered.length <= 16 * 1024 + 1500, 'never buffers much past the bound');
  // A smaller bound applies to a real hello too.
  const chrome = GOLDEN_HELLOS.find((g) => g.name === 'chromium');
  assert.ok(chrome);
  assert.equal(feed([Buffer.from(chrome.hex, 'hex')], 1024).problem, 'oversized');
  // A hello of exactly the bound's size is fine.
  const hex = Buffer.from(chrome.hex, 'hex');
  assert.equal(feed([hex], hex.length).status, 'done');
});

test('malformed ClientHellos', () => {
  const good = buildHello([sniExtension('a.test')]);
  assert.equal(feed([good]).info?.serverName, 'a.test');
  const bad: Array<[string, Buffer]> = [
    ['zero-length record', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])],
    ['record over 2^14', Buffer.from([0x16, 0x03, 0x01, 0x40, 0x01])],
    ['record version 2', Buffer.concat([Buffer.from([0x16, 0x02, 0x00]), good.subarray(3)])],
    ['not a client_hello', Buffer.concat([good.subarray(0, 5), Buffer.from([2]), good.subarray(6)])],
    ['duplicate extension', buildHello([sniExtension('a.test'), sniExtension('b.test')])],
    ['two host names', buildHello([sniExtension('a.test', 'b.test')])],
    ['empty host name', buildHello([sniExtension('')])],
    ['session id over 32', buildHello(null, { sessionId: 33 })],
    ['extension past the end', buildHello([Buffer.from([0x00, 0x10, 0x00, 0x40, 0x00])])],
    ['alert record between fragments', Buffer.concat([reRecord(good, 10).subarray(0, 15), Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])])],
  ];
  for (const [what, bytes] of bad) assert.deepEqual(summary(feed([bytes])), { status: 'invalid', problem: 'malformed' }, what);
  // Truncated: not malformed yet, just incomplete.
  assert.equal(feed([good.subarray(0, good.length - 1)]).status, 'need-more');
});

test('server names: normalised, or flagged when they are not DNS names', () => {
  const name = (n: string | Buffer) => {
    const r = feed([buildHello([sniExtension(n)])]);
    assert.equal(r.status, 'done');
    return { name: r.info?.serverName, invalid: r.info?.serverNameInvalid };
  };
  assert.deepEqual(name('A.Test.'), { name: 'a.test', invalid: false });
  assert.deepEqual(name('xn--bcher-kva.example'), { name: 'xn--bcher-kva.example', invalid: false });
  assert.deepEqual(name('127.0.0.1'), { name: null, invalid: true });
  assert.deepEqual(name('a b.test'), { name: null, invalid: true });
  assert.deepEqual(name(Buffer.from('bücher.test', 'utf8')), { name: null, invalid: true });
  assert.deepEqual(name('a..test'), { name: null, invalid: true });
  assert.deepEqual(name('x'.repeat(64) + '.test'), { name: null, invalid: true });
  // No extensions block at all (allowed before TLS 1.3).
  const r = feed([buildHello(null)]);
  assert.equal(r.status, 'done');
  assert.equal(r.info?.serverName, null);
  // A non-host_name entry is skipped.
  const other = extension(0, Buffer.from([0, 6, 1, 0, 3, 0x61, 0x62, 0x63]));
  assert.equal(feed([buildHello([other])]).info?.serverName, null);
});

test('ticket key names from the TLS 1.2 SessionTicket and the TLS 1.3 PSK identity', () => {
  const name = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  const ticket = Buffer.concat([name, Buffer.alloc(100, 9)]);
  const tls12 = feed([buildHello([extension(35, ticket)])]);
  assert.equal(tls12.info?.ticketKeyName?.toString('hex'), name.toString('hex'));
  // An empty SessionTicket extension asks for a ticket: no name.
  assert.equal(feed([buildHello([extension(35, Buffer.alloc(0))])]).info?.ticketKeyName, null);
  const pskId = Buffer.concat([name.map((b) => b ^ 0xff), Buffer.alloc(50, 3)]);
  const identities = Buffer.concat([Buffer.from([0, pskId.length]), pskId, Buffer.alloc(4)]);
  const psk = extension(41, Buffer.concat([Buffer.from([0, identities.length]), identities, Buffer.from([0, 33, 32]), Buffer.alloc(32)]));
  // The PSK (TLS 1.3) wins over a SessionTicket (TLS 1.2) offered beside it.
  const both = feed([buildHello([extension(35, ticket), psk])]);
  assert.equal(both.info?.ticketKeyName?.toString('hex'), Buffer.from(name.map((b) => b ^ 0xff)).toString('hex'));
  const badPsk = extension(41, Buffer.from([0, 3, 0, 9, 1]));
  assert.equal(feed([buildHello([badPsk])]).problem, 'malformed');
});

test('bytes after the ClientHello (early data) do not disturb it', () => {
  const g = GOLDEN_HELLOS[0];
  const bytes = Buffer.concat([Buffer.from(g.hex, 'hex'), Buffer.from([0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5])]);
  const r = feed([bytes]);
  assert.equal(r.status, 'done');
  assert.equal(r.info?.bytes, bytes.length - 10);
  assert.equal(r.buffered.length, bytes.length);
});
