/**
 * Metrics of membership and configuration through etcd. The node registers them whether or not
 * discovery is configured (all zero without it), so that dashboards and alerts need no special
 * case and docs/metrics.md lists them. One set per node, made by src/node/members.ts and handed
 * to the etcd session.
 */
import type { Counter, Gauge, Registry } from 'prom-client';
import { counter, gauge } from '../../metrics.js';

/** Where an etcd operation failed. */
export type DiscoveryOp = 'session' | 'lease' | 'watch' | 'get' | 'put' | 'revoke';
export type RecordKind = 'member' | 'config' | 'status';

export class DiscoveryMetrics {
  readonly degraded: Gauge;
  readonly members: Gauge;
  readonly sessions: Counter;
  readonly errors: Counter<'op'>;
  readonly badRecords: Counter<'kind'>;
  readonly configRevision: Gauge;
  readonly configRefusals: Counter;

  constructor(registry: Registry) {
    this.degraded = gauge(registry, {
      name: 'tandem_discovery_degraded',
      help: '1 while etcd cannot be reached (the node serves with the membership and config it has); 0 when connected or not configured.',
    });
    this.members = gauge(registry, { name: 'tandem_discovery_members', help: 'Member records this node sees in etcd (self included).' });
    this.sessions = counter(registry, { name: 'tandem_discovery_sessions_total', help: 'etcd sessions established (lease granted, members read, watch started): 1 plus the reconnects.' });
    this.errors = counter(registry, { name: 'tandem_discovery_errors_total', help: 'Failed etcd operations, by operation.', labelNames: ['op'] });
    this.badRecords = counter(registry, { name: 'tandem_discovery_bad_records_total', help: 'Values under the etcd prefix refused as malformed, by kind.', labelNames: ['kind'] });
    this.configRevision = gauge(registry, { name: 'tandem_config_revision', help: 'Revision of the pushed config (tandem config push) this node runs; 0 while it runs its file\'s services.' });
    this.configRefusals = counter(registry, { name: 'tandem_config_refusals_total', help: 'Pushed configs this node refused (validation failed here; the running config stays).' });
  }
}
