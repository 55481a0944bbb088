/** Unit tests of the dashboard's server-side pieces that need no process: owner counts and rates. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FlowEntry } from '../../src/cluster/flow-entry.js';
import { OwnerCounts } from '../../src/admin/dashboard/snapshot.js';
import { diffCounters } from '../../src/admin/dashboard/sampler.js';
import type { Counters } from '../../src/admin/dashboard/wire.js';

function entry(key: string, primary: string, backup: string | null): FlowEntry {
  return { service: 'web', key, primary, backup, backend: null, version: 1, writer: primary, lastActive: 0, ended: false };
}

function fakeNode(entries: FlowEntry[]): { node: { flows(): Iterable<FlowEntry> }; scans: () => number } {
  let scans = 0;
  const node = {
    *flows() {
      scans++;
      yield* entries;
    },
  };
  return { node, scans: () => scans };
}

test('owner counts: flows per primary and per backup, recounted at most once a second', () => {
  const entries = [entry('a', 'lb1', 'lb2'), entry('b', 'lb1', 'lb3'), entry('c', 'lb2', null)];
  const { node, scans } = fakeNode(entries);
  const oc = new OwnerCounts(node);
  const r = oc.get(10_000);
  assert.equal(r.total, 3);
  assert.deepEqual(r.counts.get('lb1'), { primary: 2, backup: 0 });
  assert.deepEqual(r.counts.get('lb2'), { primary: 1, backup: 1 });
  assert.deepEqual(r.counts.get('lb3'), { primary: 0, backup: 1 });
  entries.push(entry('d', 'lb3', 'lb1'));
  assert.equal(oc.get(10_500).total, 3, 'cached within the second');
  assert.equal(scans(), 1);
  oc.invalidate(); // a cheap scan: an invalidation recounts at once
  assert.equal(oc.get(10_600).total, 4);
  assert.equal(oc.get(11_700).total, 4);
  assert.equal(scans(), 3);
});

function counters(at: number, http: number, startedAt = 1, total = 0): Counters {
  return { node: 'lb1', at, startedAt, ready: true, http, tcp: 0, udp: 0, backends: { web: { 'b:1': { total, active: 2 } } } };
}

test('rates: per second between two samples; none for the first sample or across a restart', () => {
  assert.equal(diffCounters(undefined, counters(1000, 5)).rates, null);
  const d = diffCounters(counters(1000, 5, 1, 10), counters(3000, 25, 1, 30));
  assert.deepEqual(d.rates, { http: 10, tcp: 0, udp: 0 });
  assert.equal(d.backendRates.get('web\nb:1'), 10);
  assert.equal(diffCounters(counters(1000, 50), counters(2000, 3, 2)).rates, null, 'the node restarted: counters began again');
});
