/** Prometheus metrics of the peer multiplexer, made once per registry. */
import { Counter, Gauge, type Registry } from 'prom-client';
import { perRegistry } from '../../metrics.js';

export interface MuxMetrics {
  /** Streams opened: out = to a peer, in = from a peer. */
  readonly streams: Counter<'channel' | 'direction'>;
  /** Open multiplexed connections: out = dialed by this node, in = accepted. */
  readonly connections: Gauge<'channel' | 'direction'>;
  /** Frames or streams refused: frame-size | frame-type | stream-id | too-many-streams | flow-control | acceptor-failed | dial-failed | dial-timeout | protocol. */
  readonly errors: Counter<'channel' | 'reason'>;
}

export const muxMetrics = perRegistry((registry: Registry): MuxMetrics => {
  const registers = [registry];
  return {
    streams: new Counter({
      name: 'tandem_mux_streams_total',
      help: 'Streams opened on the multiplexed peer connections, by direction',
      labelNames: ['channel', 'direction'] as const,
      registers,
    }),
    connections: new Gauge({
      name: 'tandem_mux_connections',
      help: 'Open multiplexed peer connections, by direction',
      labelNames: ['channel', 'direction'] as const,
      registers,
    }),
    errors: new Counter({
      name: 'tandem_mux_errors_total',
      help: 'Multiplexer frames, streams or dials refused or failed, by reason',
      labelNames: ['channel', 'reason'] as const,
      registers,
    }),
  };
});
