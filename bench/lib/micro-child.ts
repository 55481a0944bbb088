// Runs one micro-benchmark from bench/micro/ in its own process and prints its figures as one
// line `MICRO_RESULT {json}` (the module may print what it likes besides).
// Usage: node --import tsx bench/lib/micro-child.ts MODULE EXPORT
const [mod, fn] = process.argv.slice(2);
if (!mod || !fn) {
  process.stderr.write('usage: micro-child.ts MODULE EXPORT\n');
  process.exit(2);
}
const m = (await import(new URL(`../micro/${mod}.ts`, import.meta.url).href)) as Record<string, unknown>;
const f = m[fn];
if (typeof f !== 'function') {
  process.stderr.write(`bench/micro/${mod}.ts exports no function ${fn}\n`);
  process.exit(3);
}
const t0 = performance.now();
const figures: unknown = await (f as () => unknown)();
const elapsedMs = performance.now() - t0;
process.stdout.write(`\nMICRO_RESULT ${JSON.stringify({ figures, elapsedMs })}\n`);
process.exit(0);
