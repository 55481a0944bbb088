/**
 * Prometheus metrics of the cluster layer, registered once per Cluster on the registry passed in.
 * Label values are bounded: `peer` is a configured node id, `reason`/`kind`/`direction` come from
 * fixed sets in this module's callers.
 */
import type { Counter, Gauge, Registry } from 'prom-client';
import { counter, gauge } from '../metrics.js';
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
  readonly hlcRefused: Counter<'peer' | 'reason'>;
  readonly hlcAhead: Gauge;
  #lagSource: () => Iterable<readonly [string, number]> = () => [];
  #aheadSource: () => number = () => 0;

  constructor(registry: Registry) {
    // A second Cluster on the same registry (a restart inside one process) takes the names over.
    this.peerState = gauge(registry, { name: 'tandem_peer_state', help: 'Peer state as this node sees it: 0 dead, 1 suspect, 2 alive.', labelNames: ['peer'] });
    this.frames = counter(registry, { name: 'tandem_peer_frames_total', help: 'Frames on control links.', labelNames: ['peer', 'direction'] });
    this.bytes = counter(registry, { name: 'tandem_peer_bytes_total', help: 'Bytes of frames on control links.', labelNames: ['peer', 'direction'] });
    this.authFailures = counter(registry, { name: 'tandem_peer_auth_failures_total', help: 'Peer connections refused during authentication, by reason.', labelNames: ['reason'] });
    this.rejectedFrames = counter(registry, { name: 'tandem_peer_rejected_frames_total', help: 'Authenticated control links dropped for a bad frame, by reason.', labelNames: ['reason'] });
    this.replicationEntries = counter(registry, { name: 'tandem_replication_entries_total', help: 'Flow entries sent to (out) and received from (in) peers, live and snapshot.', labelNames: ['direction'] });
    const lag = (): Iterable<readonly [string, number]> => this.#lagSource();
    this.replicationLag = gauge(registry, {
      name: 'tandem_replication_lag_seconds',
      help: 'Age of the oldest replication batch a peer has not acknowledged (0 when caught up).',
      labelNames: ['peer'],
      collect() {
        for (const [peer, seconds] of lag()) this.set({ peer }, seconds);
      },
    });
    this.resyncs = counter(registry, { name: 'tandem_replication_resyncs_total', help: 'Replication streams (re)started towards a peer: resume from the log, or full snapshot.', labelNames: ['peer', 'kind'] });
    this.hlcRefused = counter(registry, {
      name: 'tandem_hlc_refused_total',
      help: "Replicated entries refused by the hybrid logical clock, by peer and reason: future (version more than 24 h ahead of this node's clock: a runaway clock).",
      labelNames: ['peer', 'reason'],
    });
    const ahead = (): number => this.#aheadSource();
    this.hlcAhead = gauge(registry, {
      name: 'tandem_hlc_ahead_seconds',
      help: "How far this node's hybrid logical clock runs ahead of its wall clock (> 0: a peer's clock is ahead of this one's).",
      collect() {
        this.set(ahead() / 1000);
      },
    });
  }

  setAheadSource(fn: () => number): void {
    this.#aheadSource = fn;
  }

  setLagSource(fn: () => Iterable<readonly [string, number]>): void {
    this.#lagSource = fn;
  }

  setPeerState(peer: string, state: PeerState): void {
    this.peerState.set({ peer }, STATE_VALUE[state]);
  }

  /** A peer left the member set: drop its series, so that churn does not grow them without bound. */
  forgetPeer(peer: string): void {
    this.peerState.remove({ peer });
    this.replicationLag.remove({ peer });
    for (const direction of ['in', 'out']) {
      this.frames.remove({ peer, direction });
      this.bytes.remove({ peer, direction });
    }
    for (const kind of ['resume', 'full']) this.resyncs.remove({ peer, kind });
    this.hlcRefused.remove({ peer, reason: 'future' });
  }
}
