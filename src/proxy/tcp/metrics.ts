/**
 * Prometheus metrics of the TCP service. prom-client refuses to register a name twice in one
 * registry, and a node builds one TcpServiceProxy per service (and again on reload), so the
 * metric objects are made once per registry and shared.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { perRegistry } from '../../metrics.js';

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

export const tcpMetrics = perRegistry((registry: Registry): TcpMetrics => {
  const registers = [registry];
  return {
    connections: new Counter({
      name: 'tandem_tcp_connections_total',
      help: 'TCP client connections accepted by this node, by outcome',
      labelNames: ['service', 'outcome'] as const,
      registers,
    }),
    active: new Gauge({
      name: 'tandem_tcp_active_connections',
      help: 'Open TCP connections on this node (client-facing and forwarded in)',
      labelNames: ['service'] as const,
      registers,
    }),
    forwards: new Counter({
      name: 'tandem_tcp_forwards_total',
      help: 'TCP connections by where they were served: local, to-primary, to-backup, reowned, from-peer',
      labelNames: ['service', 'kind'] as const,
      registers,
    }),
    bytes: new Counter({
      name: 'tandem_tcp_bytes_total',
      help: 'TCP payload bytes of client connections on their ingress node; in = from the client',
      labelNames: ['service', 'direction'] as const,
      registers,
    }),
    forwardRejected: new Counter({
      name: 'tandem_tcp_forward_rejected_total',
      help: 'Forwarded TCP streams refused by the data plane: malformed, mac, misrouted, stale, replay, timeout, unknown-service',
      labelNames: ['reason'] as const,
      registers,
    }),
    rejected: new Counter({
      name: 'tandem_tcp_rejected_total',
      help: 'TCP connections refused or failed before any payload, by reason: limit, draining, no-backend, backend-failed, backend-timeout, unavailable, unknown-service, flow-key',
      labelNames: ['service', 'reason'] as const,
      registers,
    }),
    peerStreams: new Counter({
      name: 'tandem_tcp_peer_streams_total',
      help: 'Data-plane streams to peers: take-pooled, take-dialled (a forward found a pre-opened stream or dialled), dial, dial-failed',
      labelNames: ['event'] as const,
      registers,
    }),
  };
});
