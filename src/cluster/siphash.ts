/**
 * SipHash-2-4, the keyed 64-bit pseudorandom function of J.-P. Aumasson and D. J. Bernstein,
 * "SipHash: a fast short-input PRF" (INDOCRYPT 2012); reference code and test vectors at
 * https://github.com/veorq/SipHash (vectors.h).
 *
 * Why SipHash: rendezvous scores must not be predictable by clients, or a client could craft flow
 * keys that all land on one node (hash flooding). SipHash is a PRF under a secret 128-bit key and
 * was designed for exactly this job in hash tables.
 *
 * Why 32-bit halves: every 64-bit word is held as two int32 locals (hi, lo) and operated on with
 * `+`, `^`, `<<`, `>>>`. V8 keeps these in registers as untagged int32s, whereas BigInt arithmetic
 * allocates on every operation and is one to two orders of magnitude slower. BigInt appears only in
 * the convenience functions meant for tests and tooling. The carry out of a low word is computed
 * with bit operations, (a & b | (a | b) & ~sum) >>> 31 (H. S. Warren, "Hacker's Delight", section
 * 2-16), not with a comparison: V8 compiles the comparison to a branch, which on random data
 * mispredicts about half the time and more than doubled the cost of a hash in measurements.
 *
 * Byte order follows the reference: the key is k0 = LE64(key[0..8)), k1 = LE64(key[8..16)),
 * message words are little-endian, and the result is the 64-bit integer v0^v1^v2^v3. The reference
 * vectors list that integer's little-endian bytes; siphash24Hex() prints the integer itself (most
 * significant digit first), so vector bytes `31 0e 0e dd 47 db 6f 72` read as "726fdb47dd0e0e31".
 */

/** A SipHash key unpacked into 32-bit words: [k0.lo, k0.hi, k1.lo, k1.hi]. */
export type SipKey = Int32Array;

/** Unpacks a 16-byte key once, so that hot paths do not re-read bytes on every hash. */
export function sipKey(key: Uint8Array): SipKey {
  if (key.length !== 16) throw new RangeError(`SipHash key must be 16 bytes, got ${key.length}`);
  const k = new Int32Array(4);
  for (let i = 0; i < 4; i++) {
    const o = i * 4;
    k[i] = key[o] | (key[o + 1] << 8) | (key[o + 2] << 16) | (key[o + 3] << 24);
  }
  return k;
}

/**
 * SipHash-2-4 of data[0..length) under `key`. Writes the result as out[0] = high 32 bits,
 * out[1] = low 32 bits (both unsigned) so that callers in hot loops allocate nothing.
 */
export function siphash24Into(key: SipKey, data: Uint8Array, length: number, out: Uint32Array): void {
  const k0lo = key[0], k0hi = key[1], k1lo = key[2], k1hi = key[3];
  // Initial state: the key xored with the ASCII of "somepseudorandomlygeneratedbytes".
  let v0lo = k0lo ^ 0x70736575, v0hi = k0hi ^ 0x736f6d65;
  let v1lo = k1lo ^ 0x6e646f6d, v1hi = k1hi ^ 0x646f7261;
  let v2lo = k0lo ^ 0x6e657261, v2hi = k0hi ^ 0x6c796765;
  let v3lo = k1lo ^ 0x79746573, v3hi = k1hi ^ 0x74656462;

  const fullEnd = length - (length & 7);
  let pos = 0;
  let mlo = 0, mhi = 0;
  // Phases: 0 = compress a full 8-byte word, 1 = compress the last (padded) word, 2 = finalise.
  // One loop with one copy of SipRound keeps the function small enough for V8 to inline well.
  let phase = fullEnd > 0 ? 0 : 1;
  for (;;) {
    let rounds: number;
    if (phase === 2) {
      v2lo ^= 0xff;
      rounds = 4;
    } else {
      if (phase === 0) {
        mlo = data[pos] | (data[pos + 1] << 8) | (data[pos + 2] << 16) | (data[pos + 3] << 24);
        mhi = data[pos + 4] | (data[pos + 5] << 8) | (data[pos + 6] << 16) | (data[pos + 7] << 24);
        pos += 8;
      } else {
        // Last word: the 0..7 remaining bytes, and the message length mod 256 in the top byte.
        mlo = 0;
        mhi = (length & 0xff) << 24;
        const rem = length & 7;
        for (let j = 0; j < rem; j++) {
          const b = data[pos + j];
          if (j < 4) mlo |= b << (j << 3);
          else mhi |= b << ((j - 4) << 3);
        }
      }
      v3lo ^= mlo;
      v3hi ^= mhi;
      rounds = 2;
    }
    for (let r = 0; r < rounds; r++) {
      let lo: number, hi: number;
      // v0 += v1; v1 <<<= 13; v1 ^= v0; v0 <<<= 32
      lo = (v0lo + v1lo) | 0;
      v0hi = (v0hi + v1hi + (((v0lo & v1lo) | ((v0lo | v1lo) & ~lo)) >>> 31)) | 0;
      v0lo = lo;
      hi = (v1hi << 13) | (v1lo >>> 19);
      lo = (v1lo << 13) | (v1hi >>> 19);
      v1hi = hi ^ v0hi;
      v1lo = lo ^ v0lo;
      lo = v0lo; v0lo = v0hi; v0hi = lo;
      // v2 += v3; v3 <<<= 16; v3 ^= v2
      lo = (v2lo + v3lo) | 0;
      v2hi = (v2hi + v3hi + (((v2lo & v3lo) | ((v2lo | v3lo) & ~lo)) >>> 31)) | 0;
      v2lo = lo;
      hi = (v3hi << 16) | (v3lo >>> 16);
      lo = (v3lo << 16) | (v3hi >>> 16);
      v3hi = hi ^ v2hi;
      v3lo = lo ^ v2lo;
      // v0 += v3; v3 <<<= 21; v3 ^= v0
      lo = (v0lo + v3lo) | 0;
      v0hi = (v0hi + v3hi + (((v0lo & v3lo) | ((v0lo | v3lo) & ~lo)) >>> 31)) | 0;
      v0lo = lo;
      hi = (v3hi << 21) | (v3lo >>> 11);
      lo = (v3lo << 21) | (v3hi >>> 11);
      v3hi = hi ^ v0hi;
      v3lo = lo ^ v0lo;
      // v2 += v1; v1 <<<= 17; v1 ^= v2; v2 <<<= 32
      lo = (v2lo + v1lo) | 0;
      v2hi = (v2hi + v1hi + (((v2lo & v1lo) | ((v2lo | v1lo) & ~lo)) >>> 31)) | 0;
      v2lo = lo;
      hi = (v1hi << 17) | (v1lo >>> 15);
      lo = (v1lo << 17) | (v1hi >>> 15);
      v1hi = hi ^ v2hi;
      v1lo = lo ^ v2lo;
      lo = v2lo; v2lo = v2hi; v2hi = lo;
    }
    if (phase === 2) break;
    v0lo ^= mlo;
    v0hi ^= mhi;
    if (phase === 1) phase = 2;
    else if (pos === fullEnd) phase = 1;
  }
  out[0] = v0hi ^ v1hi ^ v2hi ^ v3hi;
  out[1] = v0lo ^ v1lo ^ v2lo ^ v3lo;
}

/** Convenience for tests and tools: SipHash-2-4 as an unsigned 64-bit bigint. */
export function siphash24(key: Uint8Array, data: Uint8Array): bigint {
  const out = new Uint32Array(2);
  siphash24Into(sipKey(key), data, data.length, out);
  return (BigInt(out[0]) << 32n) | BigInt(out[1]);
}

/** Convenience for tests and tools: SipHash-2-4 as 16 lowercase hex digits, most significant first. */
export function siphash24Hex(key: Uint8Array, data: Uint8Array): string {
  return siphash24(key, data).toString(16).padStart(16, '0');
}
