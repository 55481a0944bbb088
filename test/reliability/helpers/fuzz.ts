/**
 * Seeded input generators for the fuzz tests. Everything comes from one PRNG (test/helpers/prng.ts)
 * so that a failing case is reproduced by its seed and index alone; each mutation also returns a
 * short description for the failure message.
 */

export type Rand = () => number;

export function int(rand: Rand, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

export function pick<T>(rand: Rand, xs: readonly T[]): T {
  return xs[Math.floor(rand() * xs.length)];
}

export function bytes(rand: Rand, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

/** Values that tend to sit on boundaries of length and count fields. */
const INTERESTING_U8 = [0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff];
const INTERESTING_U32 = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x3ff, 0x400, 0xffff, 0x10000, 0x100000, 0x100001, 0x7fffffff, 0x80000000, 0xffffffff];

/**
 * One to three random mutations of `src` (which is not modified): bit flips, byte sets to
 * boundary values, 32-bit boundary values over any offset (lengths, counts), truncation,
 * extension, insertion, deletion and duplication of ranges.
 */
export function mutate(rand: Rand, src: Buffer): { out: Buffer; what: string } {
  let b = Buffer.from(src);
  const what: string[] = [];
  const n = int(rand, 1, 3);
  for (let k = 0; k < n; k++) {
    const op = int(rand, 0, 8);
    const at = b.length === 0 ? 0 : int(rand, 0, b.length - 1);
    switch (op) {
      case 0:
        if (b.length === 0) break;
        b[at] ^= 1 << int(rand, 0, 7);
        what.push(`flip@${at}`);
        break;
      case 1:
        if (b.length === 0) break;
        b[at] = pick(rand, INTERESTING_U8);
        what.push(`u8@${at}=${b[at]}`);
        break;
      case 2: {
        if (b.length < 4) break;
        const o = int(rand, 0, b.length - 4);
        const v = pick(rand, INTERESTING_U32);
        b.writeUInt32BE(v >>> 0, o);
        what.push(`u32@${o}=${v}`);
        break;
      }
      case 3: {
        const len = int(rand, 0, b.length);
        b = b.subarray(0, len);
        what.push(`truncate@${len}`);
        break;
      }
      case 4: {
        const extra = bytes(rand, int(rand, 1, 32));
        b = Buffer.concat([b, extra]);
        what.push(`append${extra.length}`);
        break;
      }
      case 5: {
        const ins = bytes(rand, int(rand, 1, 8));
        b = Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
        what.push(`insert${ins.length}@${at}`);
        break;
      }
      case 6: {
        const len = int(rand, 1, Math.max(1, Math.min(16, b.length - at)));
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
        what.push(`delete${len}@${at}`);
        break;
      }
      case 7: {
        const len = int(rand, 1, Math.max(1, Math.min(16, b.length - at)));
        const part = b.subarray(at, at + len);
        b = Buffer.concat([b.subarray(0, at + len), part, b.subarray(at + len)]);
        what.push(`dup${len}@${at}`);
        break;
      }
      default:
        if (b.length === 0) break;
        b[at] = Math.floor(rand() * 256);
        what.push(`rand@${at}`);
    }
  }
  return { out: b, what: what.join(',') || 'noop' };
}
