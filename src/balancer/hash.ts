/**
 * Fast non-cryptographic string hashing for the consistent-hash policy. No keyed or collision-
 * resistant hash is needed here: flow keys were validated (length-capped, no control characters,
 * src/flowkey/validate.ts) before they reach a policy, and a client that crafts keys to collide can
 * at worst pile its own flows onto one backend, which choosing those keys already allows. (The
 * cluster's owner ranking, which must resist that, uses a keyed hash: docs/design.md §2.)
 *
 * FNV-1a 32 (Fowler/Noll/Vo, draft-eastlake-fnv) over the UTF-8 bytes, then MurmurHash3's fmix32
 * finaliser (Appleby, smhasher) because FNV-1a alone mixes poorly into the high bits for keys that
 * differ only in their last byte ("user-1", "user-2", ...).
 */

/** FNV-1a 32 offset basis. */
export const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** MurmurHash3 fmix32: full avalanche of a 32-bit value. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a 32 of the UTF-8 encoding of `s`, encoded on the fly (no Buffer allocation). */
export function fnv1a32(s: string, basis: number = FNV_OFFSET_BASIS): number {
  let h = basis >>> 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, FNV_PRIME);
      continue;
    }
    if (c >= 0xd800 && c < 0xe000) {
      // A surrogate pair is one code point; a lone surrogate becomes U+FFFD, as Buffer and
      // TextEncoder encode it, so that the hash equals FNV-1a of Buffer.from(s, 'utf8').
      const lo = c < 0xdc00 && i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (lo >= 0xdc00 && lo < 0xe000) {
        c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
        i++;
      } else {
        c = 0xfffd;
      }
    }
    if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >> 6)), FNV_PRIME);
    } else if (c < 0x10000) {
      h = Math.imul(h ^ (0xe0 | (c >> 12)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), FNV_PRIME);
    } else {
      h = Math.imul(h ^ (0xf0 | (c >> 18)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | ((c >> 12) & 0x3f)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), FNV_PRIME);
    }
    h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
  }
  return h >>> 0;
}

/** The hash the consistent-hash policy applies to a flow key. */
export function keyHash(key: string): number {
  return fmix32(fnv1a32(key));
}
