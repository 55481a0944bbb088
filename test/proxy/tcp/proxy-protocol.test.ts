import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo } from 'node:net';
import {
  PROXY_V2_SIGNATURE,
  encodeProxyV1,
  encodeProxyV2,
  encodeProxyV2Local,
  encodeProxyHeader,
  parseProxyHeader,
  readProxyHeader,
  ipv6Bytes,
  formatIpv6,
} from '../../../src/proxy/tcp/proxy-protocol.js';
import { isTandemError } from '../../../src/errors.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('proxy v1: the example line of haproxy doc/proxy-protocol.txt section 2.1, byte for byte', () => {
  const b = encodeProxyV1({ address: '192.168.0.1', port: 56324 }, { address: '192.168.0.11', port: 443 });
  assert.equal(b.toString('latin1'), 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
});

test('proxy v1: TCP6 with RFC 5952 text; the longest line fits 104 bytes', () => {
  const b = encodeProxyV1({ address: '2001:DB8:0:0:0:0:0:1', port: 1 }, { address: '::1', port: 65535 });
  assert.equal(b.toString('latin1'), 'PROXY TCP6 2001:db8::1 ::1 1 65535\r\n');
  const f = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
  assert.equal(encodeProxyV1({ address: f, port: 65535 }, { address: f, port: 65535 }).length, 104);
  assert.equal(encodeProxyV1({ address: '255.255.255.255', port: 65535 }, { address: '255.255.255.255', port: 65535 }).length, 56);
});

test('proxy v1/v2: IPv4-mapped IPv6 from a dual-stack socket is sent as TCP4; mixed families as TCP6', () => {
  assert.equal(
    encodeProxyV1({ address: '::ffff:10.0.0.1', port: 5 }, { address: '10.0.0.2', port: 6 }).toString('latin1'),
    'PROXY TCP4 10.0.0.1 10.0.0.2 5 6\r\n',
  );
  assert.equal(
    encodeProxyV1({ address: '10.0.0.1', port: 5 }, { address: 'fe80::1%eth0', port: 6 }).toString('latin1'),
    'PROXY TCP6 ::ffff:a00:1 fe80::1 5 6\r\n',
  );
  const v2 = encodeProxyV2({ address: '10.0.0.1', port: 5 }, { address: '::1', port: 6 });
  assert.equal(v2[13], 0x21);
  assert.deepEqual(v2.subarray(16, 32), hex('00000000000000000000ffff0a000001'));
});

test('proxy v2: TCP4 is signature, 0x21, 0x11, length 12, addresses, ports (section 2.2)', () => {
  const b = encodeProxyV2({ address: '192.168.0.1', port: 56324 }, { address: '192.168.0.11', port: 443 });
  assert.deepEqual(b, hex('0d0a0d0a000d0a515549540a 21 11 000c c0a80001 c0a8000b dc04 01bb'));
  assert.deepEqual(b.subarray(0, 12), PROXY_V2_SIGNATURE);
  assert.equal(PROXY_V2_SIGNATURE.toString('latin1'), '\r\n\r\n\0\r\nQUIT\n');
});

test('proxy v2: TCP6 is 0x21 0x21, length 36', () => {
  const b = encodeProxyV2({ address: '2001:db8::1', port: 1 }, { address: '::1', port: 2 });
  assert.deepEqual(
    b,
    hex('0d0a0d0a000d0a515549540a 21 21 0024 20010db8000000000000000000000001 00000000000000000000000000000001 0001 0002'),
  );
  assert.equal(b.length, 16 + 36);
});

test('proxy v2: LOCAL command with UNSPEC family and no address', () => {
  assert.deepEqual(encodeProxyV2Local(), hex('0d0a0d0a000d0a515549540a 20 00 0000'));
  const h = parseProxyHeader(encodeProxyV2Local());
  assert.equal(h?.command, 'local');
  assert.equal(h?.source, null);
});

test('proxy: parse round-trips both versions and both families', () => {
  for (const v of ['v1', 'v2'] as const) {
    for (const [s, d] of [
      ['127.0.0.3', '127.0.0.1'],
      ['2001:db8:1::5', 'fe80::a'],
    ] as const) {
      const buf = Buffer.concat([encodeProxyHeader(v, { address: s, port: 40000 }, { address: d, port: 17300 }), Buffer.from('payload')]);
      const h = parseProxyHeader(buf);
      assert.ok(h);
      assert.equal(h.version, v === 'v1' ? 1 : 2);
      assert.equal(h.command, 'proxy');
      assert.deepEqual(h.source, { address: s, port: 40000 });
      assert.deepEqual(h.destination, { address: d, port: 17300 });
      assert.equal(buf.subarray(h.length).toString(), 'payload');
    }
  }
});

test('proxy: the parser waits for a partial header and refuses anything that does not match exactly', () => {
  const v1 = encodeProxyV1({ address: '1.2.3.4', port: 1 }, { address: '5.6.7.8', port: 2 });
  const v2 = encodeProxyV2({ address: '1.2.3.4', port: 1 }, { address: '5.6.7.8', port: 2 });
  for (const full of [v1, v2]) for (let i = 0; i < full.length; i++) assert.equal(parseProxyHeader(full.subarray(0, i)), null, `prefix ${i}`);
  const bad = [
    'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', // LF without CR
    'PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n', // leading zero
    'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n',
    'PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n', // two spaces
    'PROXY TCP4 ::1 ::1 1 2\r\n', // family mismatch
    'PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n',
    'GET / HTTP/1.1\r\n',
    'PROXY ' + 'x'.repeat(120),
  ];
  for (const s of bad) assert.throws(() => parseProxyHeader(Buffer.from(s, 'latin1')), (e) => isTandemError(e), s);
  const wrongVersion = Buffer.from(v2);
  wrongVersion[12] = 0x11;
  assert.throws(() => parseProxyHeader(wrongVersion));
  const wrongCmd = Buffer.from(v2);
  wrongCmd[12] = 0x22;
  assert.throws(() => parseProxyHeader(wrongCmd));
  const shortAddr = Buffer.from(v2);
  shortAddr.writeUInt16BE(8, 14);
  assert.throws(() => parseProxyHeader(shortAddr));
  const unknown = parseProxyHeader(Buffer.from('PROXY UNKNOWN whatever\r\n'));
  assert.equal(unknown?.command, 'unknown');
});

test('proxy v2: TLVs after the addresses are returned', () => {
  const base = encodeProxyV2({ address: '1.2.3.4', port: 1 }, { address: '5.6.7.8', port: 2 });
  const tlv = hex('04 0003 616263'); // PP2_TYPE_NOOP "abc"
  const b = Buffer.concat([base, tlv]);
  b.writeUInt16BE(12 + tlv.length, 14);
  const h = parseProxyHeader(b);
  assert.deepEqual(h?.tlvs, [{ type: 4, value: Buffer.from('abc') }]);
  b.writeUInt16BE(12 + tlv.length - 1, 14);
  assert.throws(() => parseProxyHeader(b), /TLV/);
});

test('proxy: IPv6 text ↔ bytes', () => {
  assert.equal(formatIpv6(ipv6Bytes('2001:db8:0:0:1:0:0:1')!), '2001:db8::1:0:0:1');
  assert.equal(formatIpv6(ipv6Bytes('0:0:0:0:0:0:0:0')!), '::');
  assert.equal(formatIpv6(ipv6Bytes('1:0:2:3:4:5:6:7')!), '1:0:2:3:4:5:6:7');
  assert.equal(formatIpv6(ipv6Bytes('::ffff:1.2.3.4')!), '::ffff:102:304');
  assert.equal(ipv6Bytes('1.2.3.4'), null);
});

test('proxy: readProxyHeader leaves the payload in the socket, even when split across segments', async () => {
  const server = createServer((s) => {
    readProxyHeader(s).then(
      (h) => {
        s.write(`${h.source!.address}:${h.source!.port}|`);
        s.pipe(s);
        s.resume();
      },
      () => s.destroy(),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const c = connect(port, '127.0.0.1');
  const hdr = encodeProxyV2({ address: '9.8.7.6', port: 1234 }, { address: '127.0.0.1', port });
  c.write(hdr.subarray(0, 5));
  await new Promise((r) => setTimeout(r, 20));
  c.write(Buffer.concat([hdr.subarray(5), Buffer.from('hello')]));
  c.end();
  let out = '';
  for await (const chunk of c) out += String(chunk);
  assert.equal(out, '9.8.7.6:1234|hello');
  server.close();
});
