import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lineChart, niceStep, slope } from '../../scripts/soak-chart.js';

test('soak chart: round ticks, a least-squares slope, one path per series with gaps for missing samples', () => {
  assert.equal(niceStep(100), 20);
  assert.equal(niceStep(7), 2);
  assert.equal(niceStep(0), 1);
  assert.equal(slope([[0, 1], [10, 21], [20, 41]]), 2);
  assert.equal(slope([[0, 5], [10, 5]]), 0);
  assert.equal(slope([[0, NaN]]), 0);
  const svg = lineChart({
    title: 'RSS <MiB>',
    unit: 'MiB',
    series: [
      { name: 'lb1', points: [[0, 70], [10, 72], [20, NaN], [30, 71]] },
      { name: 'lb2', points: [[0, 60], [30, 61]] },
    ],
    markers: [[15, 'lb1 kill -9']],
  });
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.ok(svg.endsWith('</svg>'));
  assert.equal((svg.match(/<path /g) ?? []).length, 2);
  // The NaN sample lifts the pen: lb1's path has two M(ove) commands.
  assert.equal((svg.match(/<path d="[^"]*"/)?.[0].match(/M/g) ?? []).length, 2);
  assert.match(svg, /RSS &lt;MiB&gt;/);
  assert.match(svg, /lb1 kill -9/);
});
