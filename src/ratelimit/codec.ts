/**
 * The binary form of one sync period's rate-limit counts, as sent over the control links (pure).
 *
 *   u16 limiters, then per limiter: u16 name length, name (UTF-8: "SERVICE" or "SERVICE/ROUTE"),
 *   u32 keys, then per key: u16 key length, key (UTF-8), u32 admitted, u32 seen.
 *
 * Decoding checks every length against what is left and against the bounds below, and throws a
 * TandemError(BAD_FRAME) on anything else: a bad peer frame is refused whole and counted.
 */
import { ErrorCodes, TandemError } from '../errors.js';
import type { KeyCounts } from './limiter.js';

export const MAX_LIMITERS = 4096;
export const MAX_KEYS_PER_BATCH = 1_000_000;
const MAX_NAME = 1024;
const MAX_KEY = 4096;

export type CountsBatch = ReadonlyMap<string, readonly KeyCounts[]>;

export function encodeCounts(batch: CountsBatch): Buffer {
  let size = 2;
  const parts: Array<{ name: Buffer; keys: Array<{ key: Buffer; admitted: number; seen: number }> }> = [];
  for (const [name, counts] of batch) {
    if (counts.length === 0) continue;
    const n = Buffer.from(name, 'utf8');
    const keys = counts.map((c) => ({ key: Buffer.from(c.key, 'utf8'), admitted: c.admitted, seen: c.seen }));
    size += 2 + n.length + 4;
    for (const k of keys) size += 2 + k.key.length + 8;
    parts.push({ name: n, keys });
  }
  const buf = Buffer.allocUnsafe(size);
  let off = buf.writeUInt16BE(parts.length, 0);
  for (const p of parts) {
    off = buf.writeUInt16BE(p.name.length, off);
    off += p.name.copy(buf, off);
    off = buf.writeUInt32BE(p.keys.length, off);
    for (const k of p.keys) {
      off = buf.writeUInt16BE(k.key.length, off);
      off += k.key.copy(buf, off);
      off = buf.writeUInt32BE(Math.min(k.admitted, 0xffff_ffff), off);
      off = buf.writeUInt32BE(Math.min(k.seen, 0xffff_ffff), off);
    }
  }
  return buf;
}

function bad(msg: string): never {
  throw new TandemError(ErrorCodes.FRAME_MALFORMED, `rate-limit counts: ${msg}`);
}

export function decodeCounts(buf: Buffer): Map<string, KeyCounts[]> {
  const out = new Map<string, KeyCounts[]>();
  let off = 0;
  const need = (n: number) => {
    if (buf.length - off < n) bad('truncated');
  };
  need(2);
  const limiters = buf.readUInt16BE(off);
  off += 2;
  if (limiters > MAX_LIMITERS) bad(`${limiters} limiters`);
  let totalKeys = 0;
  for (let i = 0; i < limiters; i++) {
    need(2);
    const nl = buf.readUInt16BE(off);
    off += 2;
    if (nl === 0 || nl > MAX_NAME) bad(`name of ${nl} bytes`);
    need(nl + 4);
    const name = buf.toString('utf8', off, off + nl);
    off += nl;
    const keys = buf.readUInt32BE(off);
    off += 4;
    totalKeys += keys;
    if (totalKeys > MAX_KEYS_PER_BATCH) bad(`more than ${MAX_KEYS_PER_BATCH} keys`);
    const list: KeyCounts[] = [];
    for (let k = 0; k < keys; k++) {
      need(2);
      const kl = buf.readUInt16BE(off);
      off += 2;
      if (kl > MAX_KEY) bad(`key of ${kl} bytes`);
      need(kl + 8);
      const key = buf.toString('utf8', off, off + kl);
      off += kl;
      list.push({ key, admitted: buf.readUInt32BE(off), seen: buf.readUInt32BE(off + 4) });
      off += 8;
    }
    out.set(name, list);
  }
  if (off !== buf.length) bad(`${buf.length - off} trailing bytes`);
  return out;
}
