import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeAddress, formatHostPort, connectionKey } from '../../src/flowkey/address.js';

describe('address normalisation', () => {
  it('turns IPv4-mapped IPv6 into IPv4', () => {
    assert.equal(normalizeAddress('::ffff:1.2.3.4'), '1.2.3.4');
    assert.equal(normalizeAddress('::FFFF:10.0.0.1'), '10.0.0.1');
    assert.equal(normalizeAddress('1.2.3.4'), '1.2.3.4');
  });

  it('keeps real IPv6 (lower-cased) and does not unmap look-alikes', () => {
    assert.equal(normalizeAddress('::1'), '::1');
    assert.equal(normalizeAddress('2001:DB8::1'), '2001:db8::1');
    assert.equal(normalizeAddress('::ffff:abcd'), '::ffff:abcd');
    assert.equal(normalizeAddress('64:ff9b::1.2.3.4'), '64:ff9b::1.2.3.4');
  });

  it('formats host:port with brackets for IPv6', () => {
    assert.equal(formatHostPort('1.2.3.4', 5555), '1.2.3.4:5555');
    assert.equal(formatHostPort('::1', 5555), '[::1]:5555');
    assert.equal(connectionKey('::ffff:1.2.3.4', 80), '1.2.3.4:80');
    assert.equal(connectionKey('fe80::1', 443), '[fe80::1]:443');
  });
});
