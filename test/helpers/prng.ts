/** mulberry32: a tiny seeded PRNG so that randomised tests are reproducible. Returns [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random printable key of 8 to 24 characters. */
export function randomKey(rand: () => number): string {
  const n = 8 + Math.floor(rand() * 17);
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(33 + Math.floor(rand() * 94));
  return s;
}
