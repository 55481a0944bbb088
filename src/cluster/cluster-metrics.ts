/**
 * Prometheus metrics of the cluster layer, registered once per Cluster on the registry passed in.
 * Label values are bounded: `peer` is a configured node id, `reason`/`kind`/`direction` come from
 * fixed sets in this module's callers.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { takeOverName } from '../metrics.js';
import type { PeerState } from './cluster-options.js';

export type RejectReason = 'garbage' | 'oversized' | 'malformed' | 'protocol';

const STATE_VALUE: Record<PeerState, number> = { dead: 0, suspect: 1, alive: 2 };

export class ClusterMetrics {
  readonly peerState: Gauge<'peer'>;
  readonly frames: Counter<'peer' | 'direction'>;
  readonly bytes: Counter<'peer' | 'direction'>;
  readonly authFailures: Counter<'reason'>;
  readonly rejectedFrames: Counter<'reason'>;
  readonly replicationEntries: Counter<'direction'>;
  readonly replicationLag: Gauge<'peer'>;
  readonly resyncs: Counter<'peer' | 'kind'>;
  #lagSource: () => Iterable<readonly [string, number]> = () => [];

  constructor(registry: Registry) {
    const registers = [registry];
    // A second Cluster on the same registry (a restart inside one process) takes the names over.
    const fresh = (name: string): string => takeOverName(registry, name);
    this.peerState = new Gauge({ name: fresh('tandem_peer_state'), help: 'Peer state as this node sees it: 0 dead, 1 suspect, 2 alive.', labelNames: ['peer'], registers });
    this.frames = new Counter({ name: fresh('tandem_peer_frames_total'), help: 'Frames on control links.', labelNames: ['peer', 'direction'], registers });
    this.bytes = new Counter({ name: fresh('tandem_peer_bytes_total'), help: 'Bytes of frames on control links.', labelNames: ['peer', 'direction'], registers });
    this.authFailures = new Counter({ name: fresh('tandem_peer_auth_failures_total'), help: 'Peer connections refused during authentication, by reason.', labelNames: ['reason'], registers });
    this.rejectedFrames = new Counter({ name: fresh('tandem_peer_rejected_frames_total'), help: 'Authenticated control links dropped for a bad frame, by reason.', labelNames: ['reason'], registers });
    this.replicationEntries = new Counter({ name: fresh('tandem_replication_entries_total'), help: 'Flow entries sent to (out) and received from (in) peers, live and snapshot.', labelNames: ['direction'], registers });
    const lag = (): Iterable<readonly [string, number]> => this.#lagSource();
    this.replicationLag = new Gauge({
      name: fresh('tandem_replication_lag_seconds'),
      help: 'Age of the oldest replication batch a peer has not acknowledged (0 when caught up).',
      labelNames: ['peer'],
      registers,
      collect() {
        for (const [peer, seconds] of lag()) this.set({ peer }, seconds);
      },
    });
    this.resyncs = new Counter({ name: fresh('tandem_replication_resyncs_total'), help: 'Replication streams (re)started towards a peer: resume from the log, or full snapshot.', labelNames: ['peer', 'kind'], registers });
  }

  setLagSource(fn: () => Iterable<readonly [string, number]>): void {
    this.#lagSource = fn;
  }

  setPeerState(peer: string, state: PeerState): void {
    this.peerState.set({ peer }, STATE_VALUE[state]);
  }
}
