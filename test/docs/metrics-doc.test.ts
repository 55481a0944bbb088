import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { metricsDoc } from '../../scripts/metrics-doc.js';

test('docs/metrics.md lists exactly the metrics a live node exposes', async () => {
  const expected = await metricsDoc();
  const actual = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
  assert.equal(actual, expected, 'docs/metrics.md is out of date: run node --import tsx scripts/metrics-doc.ts');
});
