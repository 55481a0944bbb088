/**
 * Node-level metrics. Counters that other modules keep as plain numbers (router, table, admin) are
 * read at scrape time through `collect`, so the hot paths pay nothing for them.
 */
import type { Counter, Registry } from 'prom-client';
import { counter, gauge } from '../metrics.js';
import type { NodeView } from './node-view.js';

export class NodeMetrics {
  readonly #evictions: Counter<'service' | 'reason'>;
  readonly #registry: Registry;

  constructor(registry: Registry) {
    this.#registry = registry;
    this.#evictions = counter(registry, {
      name: 'tandem_flow_evictions_total',
      help: 'Flow-table entries evicted, by service and reason (lru: the table was full; idle: idle timeout).',
      labelNames: ['service', 'reason'],
    });
  }

  evicted(service: string, reason: 'lru' | 'idle'): void {
    this.#evictions.inc({ service, reason });
  }

  bindNode(node: Pick<NodeView, 'table' | 'ownedCounts' | 'ready' | 'routerStats' | 'adminStats'>): void {
    const registry = this.#registry;
    gauge(registry, {
      name: 'tandem_flows',
      help: 'Live entries in this node\'s flow table, by service.',
      labelNames: ['service'],
      collect() {
        this.reset();
        for (const s of node.table.services()) this.set({ service: s }, node.table.size(s));
      },
    });
    gauge(registry, {
      name: 'tandem_flows_owned',
      help: 'Live flows this node holds as primary or backup.',
      labelNames: ['role'],
      collect() {
        const c = node.ownedCounts();
        this.set({ role: 'primary' }, c.primary);
        this.set({ role: 'backup' }, c.backup);
      },
    });
    gauge(registry, {
      name: 'tandem_ready',
      help: '1 once the flow table is synced and the node serves; 0 while starting or draining.',
      collect() {
        this.set(node.ready ? 1 : 0);
      },
    });
    const routerCounter = (name: string, help: string, read: () => number) =>
      counter(registry, {
        name,
        help,
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    const r = node.routerStats;
    routerCounter('tandem_flows_created_total', 'Flows created on this node (routing rule step 2).', () => r.created);
    routerCounter('tandem_flows_reowned_total', 'Flows re-owned because neither owner was available (step 6).', () => r.reowned);
    routerCounter('tandem_flows_reprotected_total', 'Entries re-protected after an owner died.', () => r.reprotected);
    routerCounter('tandem_flows_ended_total', 'Flows ended by their owner (tombstones replicated).', () => r.ended);
    routerCounter('tandem_backend_assignments_total', 'Backends chosen for flows that had none.', () => r.backendsAssigned);
    routerCounter('tandem_backend_moves_total', 'Flows moved off a backend that became unusable.', () => r.backendsMoved);
    routerCounter('tandem_admin_unauthorized_total', 'Admin calls refused for a missing or wrong token.', () => node.adminStats.unauthorized);
    routerCounter('tandem_admin_bad_requests_total', 'Admin calls refused as malformed.', () => node.adminStats.badRequests);
  }
}
