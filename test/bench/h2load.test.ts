/** The h2load command line and summary parser of the h2-tls bench scenario (bench/lib/h2load.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { h2loadArgs, parseH2Load } from '../../bench/lib/h2load.js';

const SAMPLE = `starting benchmark...
spawning thread #0: 20 total client(s). Timing-based test with 0s of warm-up time and 5s of main duration for measurements.
Warm-up phase is over for thread #0.
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 5.00s, 14774.20 req/s, 9.75MB/s
requests: 73871 total, 73871 started, 73871 done, 73860 succeeded, 11 failed, 11 errored, 0 timeout
status codes: 73860 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 48.76MB (51128418) total, 1.23MB (1289112) headers (space savings 93.28%), 45.12MB (47311744) data
                     min         max         mean         sd        +/- sd
time for request:      429us     54.51ms     13.36ms      5.80ms    71.33%
time for connect:     5.12ms     20.61ms     12.32ms      4.52ms    60.00%
time to 1st byte:    20.11ms     41.33ms     30.16ms      6.21ms    55.00%
req/s           :     700.12      780.55      738.71       20.13    65.00%
`;

test('h2load: the summary parsed', () => {
  const r = parseH2Load(SAMPLE);
  assert.equal(r.requestsPerSec, 14774.2);
  assert.equal(r.requests, 73871);
  assert.equal(r.succeeded, 73860);
  assert.equal(r.failed, 11);
  assert.equal(r.errored, 11);
  assert.equal(r.timeout, 0);
  assert.deepEqual(r.status, { s2xx: 73860, s3xx: 0, s4xx: 0, s5xx: 0 });
  assert.equal(r.meanMs, 13.36);
  assert.equal(r.sdMs, 5.8);
  assert.throws(() => parseH2Load('connect failed'), /not understood/);
});

test('h2load: the command line', () => {
  assert.deepEqual(h2loadArgs({ url: 'https://127.0.0.2:18124/', clients: 20, streams: 10, durationSec: 5, headers: ['x-bench: b1'] }), [
    '-t', '1', '-c', '20', '-m', '10', '-D', '5', '-H', 'x-bench: b1', 'https://127.0.0.2:18124/',
  ]);
});
