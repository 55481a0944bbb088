/**
 * Prometheus metrics of the peer multiplexer: one set per node, made by the composition root
 * (src/node/node.ts) and handed to each of the node's muxes (labelled by channel).
 */
import type { Counter, Gauge, Registry } from 'prom-client';
import { counter, gauge } from '../../metrics.js';

export interface MuxMetrics {
  /** Streams opened: out = to a peer, in = from a peer. */
  readonly streams: Counter<'channel' | 'direction'>;
  /** Open multiplexed connections: out = dialed by this node, in = accepted. */
  readonly connections: Gauge<'channel' | 'direction'>;
  /** Frames or streams refused: frame-size | frame-type | stream-id | too-many-streams | flow-control | acceptor-failed | dial-failed | dial-timeout | protocol. */
  readonly errors: Counter<'channel' | 'reason'>;
}

/** The node's multiplexer metric set; call once per node (a second call takes the names over). */
export function muxMetrics(registry: Registry): MuxMetrics {
  return {
    streams: counter(registry, {
      name: 'tandem_mux_streams_total',
      help: 'Streams opened on the multiplexed peer connections, by direction',
      labelNames: ['channel', 'direction'] as const,
    }),
    connections: gauge(registry, {
      name: 'tandem_mux_connections',
      help: 'Open multiplexed peer connections, by direction',
      labelNames: ['channel', 'direction'] as const,
    }),
    errors: counter(registry, {
      name: 'tandem_mux_errors_total',
      help: 'Multiplexer frames, streams or dials refused or failed, by reason',
      labelNames: ['channel', 'reason'] as const,
    }),
  };
}
