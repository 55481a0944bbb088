import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SniReader, sniFlowKey, type SniResult } from '../../src/flowkey/sni.js';
import { GOLDEN_HELLOS, buildHello, chunks, reRecord, sniExtension } from '../tls/hello-fixtures.js';

function read(parts: Buffer[]): { result: SniResult; bytes: Buffer } {
  const r = new SniReader();
  for (const p of parts) if (r.push(p).kind !== 'need-more') break;
  return { result: r.result, bytes: r.bytes };
}

test('golden ClientHellos of real clients: the name (or none), whole, split and fragmented', () => {
  for (const g of GOLDEN_HELLOS) {
    const bytes = Buffer.from(g.hex, 'hex');
    const want: SniResult = g.expect.serverName === null ? { kind: 'none' } : { kind: 'name', name: g.expect.serverName };
    for (const parts of [[bytes], chunks(bytes, 1), chunks(bytes, 100), chunks(reRecord(bytes, 50), 9)]) {
      const r = read(parts);
      assert.deepEqual(r.result, want, g.name);
      assert.ok(r.bytes.equals(Buffer.concat(parts)), `${g.name}: bytes passed through untouched`);
    }
  }
});

test('need-more until complete; later chunks are ignored once decided', () => {
  const hello = buildHello([sniExtension('Shop.Example.')]);
  const r = new SniReader();
  assert.deepEqual(r.push(hello.subarray(0, 10)), { kind: 'need-more' });
  assert.deepEqual(r.push(hello.subarray(10)), { kind: 'name', name: 'shop.example' });
  assert.deepEqual(r.push(Buffer.from('more bytes')), { kind: 'name', name: 'shop.example' });
  assert.equal(r.bytes.length, hello.length, 'bytes after the decision are the caller\'s to pass on');
});

test('invalid input: not TLS, plain HTTP, malformed, oversized, a server name that is not a DNS name', () => {
  assert.deepEqual(read([Buffer.from('GET / HTTP/1.1\r\n')]).result, { kind: 'invalid', problem: 'plain-http' });
  assert.deepEqual(read([Buffer.from('SSH-2.0-x\r\n')]).result, { kind: 'invalid', problem: 'not-tls' });
  assert.deepEqual(read([buildHello([sniExtension('a.test', 'b.test')])]).result, { kind: 'invalid', problem: 'malformed' });
  assert.deepEqual(read([Buffer.from([0x16, 3, 1, 0, 4, 1, 0x7f, 0, 0])]).result, { kind: 'invalid', problem: 'oversized' });
  assert.deepEqual(read([buildHello([sniExtension('10.0.0.1')])]).result, { kind: 'invalid', problem: 'bad-name' });
  // Bounded: a tiny limit refuses a real hello.
  const r = new SniReader(100);
  assert.deepEqual(r.push(Buffer.from(GOLDEN_HELLOS[0].hex, 'hex')), { kind: 'invalid', problem: 'oversized' });
});

test('sniFlowKey: the name, else the client address (client-ip)', () => {
  assert.equal(sniFlowKey({ kind: 'name', name: 'a.test' }, '10.1.2.3'), 'a.test');
  assert.equal(sniFlowKey({ kind: 'none' }, '10.1.2.3'), '10.1.2.3');
  assert.equal(sniFlowKey({ kind: 'invalid', problem: 'not-tls' }, '::ffff:10.1.2.3'), '10.1.2.3');
  assert.equal(sniFlowKey(null, '2001:db8::1'), '2001:db8::1');
});
