/**
 * Prometheus metrics of the UDP proxy: one set per node, made by the composition root
 * (src/node/services.ts) and held by the node's UDP data plane, through which every UDP service
 * of the node counts into it. Label values are bounded: `service` comes from
 * the config (or from an authenticated peer), `reason`, `direction` and `hop` from fixed sets.
 * The flow gauge is read at scrape time from the live proxies, so the hot path pays nothing.
 */
import type { Counter, Registry } from 'prom-client';
import { counter, gauge } from '../../metrics.js';

export type Direction = 'in' | 'out';
export type HopLabel = 'local' | 'forwarded';
export type EvictReason = 'lru' | 'idle';
export type RejectReason = 'malformed' | 'unknown-sender' | 'source-mismatch' | 'mac' | 'stale' | 'replay' | 'misrouted';
export type DropReason =
  | 'flow-key'
  | 'unavailable'
  | 'no-backend'
  | 'unknown-service'
  | 'too-large'
  | 'pending-full'
  | 'send-error'
  | 'socket-error'
  | 'stopped'
  | 'error';

/** Something whose flow count the gauge reports. */
export interface FlowCountSource {
  readonly service: string;
  flowCount(): number;
}

export interface IncOnly {
  inc(n?: number): void;
}

/** The node's UDP metric set; make it once per node (a second one takes the names over). */
export class UdpMetrics {
  readonly #sources = new Set<FlowCountSource>();
  readonly datagrams: Counter<'service' | 'direction' | 'hop'>;
  readonly evictions: Counter<'service' | 'reason'>;
  readonly rejected: Counter<'reason'>;
  readonly drops: Counter<'service' | 'reason'>;

  constructor(registry: Registry) {
    const sources = this.#sources;
    this.datagrams = counter(registry, {
      name: 'tandem_udp_datagrams_total',
      help: 'Client datagrams received (direction=in) and replies sent to clients (direction=out) by this ingress node; hop=local when this node owned the flow, forwarded when a peer did.',
      labelNames: ['service', 'direction', 'hop'],
    });
    gauge(registry, {
      name: 'tandem_udp_flows',
      help: 'UDP flows this node serves as owner (one backend socket each).',
      labelNames: ['service'],
      collect() {
        this.reset();
        for (const s of sources) this.set({ service: s.service }, s.flowCount());
      },
    });
    this.evictions = counter(registry, {
      name: 'tandem_udp_flow_evictions_total',
      help: 'Backend sockets of UDP flows closed early: lru when maxFlows was reached, idle after flowIdleTimeoutMs.',
      labelNames: ['service', 'reason'],
    });
    this.rejected = counter(registry, {
      name: 'tandem_udp_rejected_total',
      help: 'Datagrams refused on the UDP data-plane port: malformed, unknown-sender, source-mismatch, mac, stale (another incarnation of either end), replay, misrouted.',
      labelNames: ['reason'],
    });
    this.drops = counter(registry, {
      name: 'tandem_udp_drops_total',
      help: 'Datagrams dropped by the UDP proxy, by service and reason: flow-key, unavailable, no-backend, unknown-service, too-large, pending-full, send-error, socket-error, stopped, error.',
      labelNames: ['service', 'reason'],
    });
  }

  attach(source: FlowCountSource): void {
    this.#sources.add(source);
  }

  detach(source: FlowCountSource): void {
    this.#sources.delete(source);
  }

  drop(service: string, reason: DropReason): void {
    this.drops.inc({ service, reason });
  }

  reject(reason: RejectReason): void {
    this.rejected.inc({ reason });
  }

  evicted(service: string, reason: EvictReason): void {
    this.evictions.inc({ service, reason });
  }

  /** A pre-bound child counter, so the per-datagram path does not hash label sets. */
  datagramCounter(service: string, direction: Direction, hop: HopLabel): IncOnly {
    return this.datagrams.labels({ service, direction, hop });
  }
}
