/**
 * Prometheus metrics of the TCP proxy: one set per node, made by the composition root
 * (src/node/services.ts) and handed to the node's TCP data plane, peer pool and every TCP service
 * (a node builds one TcpServiceProxy per service, and again on reload; they all count into it).
 */
import type { Counter, Gauge, Registry } from 'prom-client';
import { counter, gauge } from '../../metrics.js';

export interface TcpMetrics {
  /** Client connections accepted on this node, by outcome: proxied | rejected | failed. */
  readonly connections: Counter<'service' | 'outcome'>;
  readonly active: Gauge<'service'>;
  /** Where each connection went: local | to-primary | to-backup | reowned | from-peer. */
  readonly forwards: Counter<'service' | 'kind'>;
  /** Client bytes: in = client → backend, out = backend → client (counted on the ingress node). */
  readonly bytes: Counter<'service' | 'direction'>;
  /** Forwarded streams refused by the data plane: malformed | mac | misrouted | replay | timeout | unknown-service. */
  readonly forwardRejected: Counter<'reason'>;
  /** Connections refused or failed, by reason: limit | draining | no-backend | backend-failed | backend-timeout | unavailable | unknown-service | flow-key. */
  readonly rejected: Counter<'service' | 'reason'>;
  /** Data-plane streams to peers: take-pooled | take-dialled | dial | dial-failed. */
  readonly peerStreams: Counter<'event'>;
}

/** The node's TCP metric set; call once per node (a second call takes the names over). */
export function tcpMetrics(registry: Registry): TcpMetrics {
  return {
    connections: counter(registry, {
      name: 'tandem_tcp_connections_total',
      help: 'TCP client connections accepted by this node, by outcome',
      labelNames: ['service', 'outcome'] as const,
    }),
    active: gauge(registry, {
      name: 'tandem_tcp_active_connections',
      help: 'Open TCP connections on this node (client-facing and forwarded in)',
      labelNames: ['service'] as const,
    }),
    forwards: counter(registry, {
      name: 'tandem_tcp_forwards_total',
      help: 'TCP connections by where they were served: local, to-primary, to-backup, reowned, from-peer',
      labelNames: ['service', 'kind'] as const,
    }),
    bytes: counter(registry, {
      name: 'tandem_tcp_bytes_total',
      help: 'TCP payload bytes of client connections on their ingress node; in = from the client',
      labelNames: ['service', 'direction'] as const,
    }),
    forwardRejected: counter(registry, {
      name: 'tandem_tcp_forward_rejected_total',
      help: 'Forwarded TCP streams refused by the data plane: malformed, mac, misrouted, stale, replay, timeout, unknown-service',
      labelNames: ['reason'] as const,
    }),
    rejected: counter(registry, {
      name: 'tandem_tcp_rejected_total',
      help: 'TCP connections refused or failed before any payload, by reason: limit, draining, no-backend, backend-failed, backend-timeout, unavailable, unknown-service, flow-key',
      labelNames: ['service', 'reason'] as const,
    }),
    peerStreams: counter(registry, {
      name: 'tandem_tcp_peer_streams_total',
      help: 'Data-plane streams to peers: take-pooled, take-dialled (a forward found a pre-opened stream or dialled), dial, dial-failed',
      labelNames: ['event'] as const,
    }),
  };
}
