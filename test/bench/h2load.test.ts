import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseH2load } from '../../bench/lib/h2load.js';

test("parseH2load reads nghttp2 1.52's summary: req/s, counts, mean time per request", () => {
  const out = [
    'Application protocol: h2',
    'finished in 5.00s, 31234.20 req/s, 1.23MB/s',
    'requests: 156171 total, 156371 started, 156171 done, 156170 succeeded, 1 failed, 0 errored, 0 timeout',
    'status codes: 156170 2xx, 0 3xx, 0 4xx, 1 5xx',
    '                     min         max         mean         sd        +/- sd',
    'time for request:      236us     12.80ms      6.31ms      1.59ms    71.46%',
  ].join('\n');
  assert.deepEqual(parseH2load(out), { protocol: 'h2', requestsPerSec: 31234.2, done: 156171, succeeded: 156170, failed: 1, errored: 0, meanMs: 6.31 });
  assert.equal(parseH2load('time for request: 236us 1.2s 900us 1ms 50%').meanMs, 0.9);
  assert.equal(parseH2load('no output').succeeded, 0);
  assert.equal(parseH2load('no output').protocol, null);
});
