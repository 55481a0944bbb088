#!/usr/bin/env node
// Builds the dashboard page (docs/dashboard.md) into dist/dashboard/: type-checks the browser code with its
// own tsconfig (lib DOM), bundles it with esbuild into one app.js, minifies app.css, and writes
// index.html naming both with a content hash (?v=…) so that nodes may let browsers cache them.
// Part of `npm run build`; everything the page needs ships in the package, nothing from a CDN.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { build } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;
const src = join(root, 'src/admin/dashboard/client');
const out = join(root, 'dist/dashboard');
const require = createRequire(import.meta.url);

const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(src, 'tsconfig.json')], { stdio: 'inherit' });
if (tsc.status !== 0) {
  console.error('build-dashboard: the page does not type-check');
  process.exit(1);
}

mkdirSync(out, { recursive: true });
const common = { bundle: true, minify: true, write: false, legalComments: 'none', logLevel: 'warning' };
const [js, css] = await Promise.all([
  // Chromium, Firefox and Safari of the last two years; no transpiling of modern syntax needed.
  build({ ...common, entryPoints: [join(src, 'main.ts')], format: 'iife', target: ['es2022'], outfile: join(out, 'app.js') }),
  build({ ...common, entryPoints: [join(src, 'app.css')], outfile: join(out, 'app.css') }),
]);
const hash = (text) => createHash('sha256').update(text).digest('hex').slice(0, 12);
const jsText = js.outputFiles[0].text;
const cssText = css.outputFiles[0].text;
writeFileSync(join(out, 'app.js'), jsText);
writeFileSync(join(out, 'app.css'), cssText);
let html = readFileSync(join(src, 'index.html'), 'utf8');
for (const [name, text] of [['app.js', jsText], ['app.css', cssText]]) {
  const ref = `/dashboard/${name}"`;
  if (!html.includes(ref)) throw new Error(`index.html does not reference ${ref}`);
  html = html.replace(ref, `/dashboard/${name}?v=${hash(text)}"`);
}
writeFileSync(join(out, 'index.html'), html);
console.log(`dashboard: app.js ${(jsText.length / 1024).toFixed(1)} KiB, app.css ${(cssText.length / 1024).toFixed(1)} KiB → dist/dashboard/`);
