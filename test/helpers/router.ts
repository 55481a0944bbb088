/**
 * A FlowRouter over a real table, clock and rendezvous, for unit tests of what is built on the
 * routing rule: membership is whatever the test's `state` says, replication goes to `publish`.
 */
import { FlowRouter } from '../../src/cluster/router.js';
import { FlowTable } from '../../src/cluster/flow-table.js';
import { Hlc } from '../../src/cluster/hlc.js';
import type { Rendezvous } from '../../src/cluster/rendezvous.js';
import type { FlowEntry } from '../../src/cluster/flow-entry.js';
import type { PeerState } from '../../src/proxy/context.js';

export interface TestRouterOptions {
  readonly selfId: string;
  readonly nodes: readonly string[];
  readonly rv: Rendezvous;
  state(id: string): PeerState;
  publish?(entry: FlowEntry): void;
  linkUp?(id: string): boolean;
  readonly maxEntries?: number;
}

export function testRouter(o: TestRouterOptions): { router: FlowRouter; table: FlowTable; hlc: Hlc } {
  const table = new FlowTable({ limits: () => ({ maxEntries: o.maxEntries ?? 10_000, idleTimeoutMs: 60_000 }) });
  const hlc = new Hlc();
  const all = o.nodes.map((id) => ({ id, weight: 1 }));
  const router = new FlowRouter({
    selfId: o.selfId,
    owners: (key, candidates) => o.rv.owners(key, all.filter((n) => candidates.includes(n.id))),
    rank: (_s, key) => o.rv.rank(key, all),
    candidates: () => o.nodes.filter((id) => o.state(id) !== 'dead'),
    state: (id) => o.state(id),
    linkUp: o.linkUp === undefined ? undefined : (id) => o.linkUp!(id),
    publish: (e) => o.publish?.(e),
    merge: (e) => table.merge(e),
    get: (s, k) => table.get(s, k),
    getAny: (s, k) => table.getAny(s, k),
    version: () => hlc.now(),
    now: () => Date.now(),
  });
  return { router, table, hlc };
}
