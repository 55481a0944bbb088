/**
 * The node's claims (src/cluster/claims.ts) wired to its cluster, router, table and pools: what
 * a claim asks travels on the control links; what it answers is the router's choice with the
 * flow service's pool, as when this node serves the flow itself.
 */
import type { Registry } from 'prom-client';
import type { Cluster } from '../cluster/cluster.js';
import type { FlowRouter } from '../cluster/router.js';
import type { FlowTable } from '../cluster/flow-table.js';
import type { Hlc } from '../cluster/hlc.js';
import { FlowClaims, type ClaimOutcome } from '../cluster/claims.js';
import { FrameType } from '../cluster/frame.js';
import type { UpstreamPool } from '../upstream/pool.js';
import { counter } from '../metrics.js';

export interface ClaimsWiring {
  readonly selfId: string;
  readonly cluster: Cluster;
  readonly router: FlowRouter;
  readonly table: FlowTable;
  readonly hlc: Hlc;
  pool(flowService: string): UpstreamPool | undefined;
  readonly registry: Registry;
  readonly timeoutMs: number;
}

export function newClaims(w: ClaimsWiring): FlowClaims {
  const claims = counter<'outcome'>(w.registry, {
    name: 'tandem_cluster_claims_total',
    help: 'Claims of a new flow\'s backend from its primary (asked, answered, unanswered, timeout: sent by this node; served, relayed: for others).',
    labelNames: ['outcome'],
  });
  const handles = new Map<ClaimOutcome, { inc(): void }>();
  for (const o of ['asked', 'answered', 'unanswered', 'timeout', 'relayed', 'served'] as const) handles.set(o, claims.labels(o));
  const c = new FlowClaims({
    selfId: w.selfId,
    send: (peer, frame) => w.cluster.sendControl(peer, frame),
    via: (target) => w.cluster.claimVia(target),
    direct: (peer) => w.cluster.claimDirect(peer),
    state: (id) => (w.cluster.nodeIds.includes(id) ? w.cluster.stateOf(id) : 'dead'),
    get: (service, key) => w.table.get(service, key),
    answer: (service, key) => {
      const pool = w.pool(service);
      if (pool === undefined) return null;
      return w.router.decide(service, key, (a) => pool.usable(a), (k) => pool.choose(k));
    },
    accept: (entry) => {
      // As replication does: a version the clock refuses is not stored (hlc.ts, observe()).
      if (w.hlc.observe(entry.version) === false) return;
      w.table.merge(entry);
    },
    timeoutMs: w.timeoutMs,
    count: (o) => handles.get(o)?.inc(),
  });
  w.cluster.on('peer-state', (id, state) => {
    if (state === 'dead') c.peerDead(id);
  });
  w.cluster.on('peer-unreachable', (id) => c.peerUnreachable(id));
  w.cluster.onControlFrame(FrameType.CLAIM, (peer, payload) => c.onClaim(peer, payload));
  w.cluster.onControlFrame(FrameType.CLAIM_REPLY, (peer, payload) => c.onReply(peer, payload));
  return c;
}
