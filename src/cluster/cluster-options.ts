/**
 * What the cluster layer needs from the outside, as structural interfaces. The lead passes
 * `config.cluster` (src/config/schema.ts) as ClusterSettings; only the fields read here are
 * listed so that this layer does not depend on the config module, and a FlowTable / Hlc
 * (flow-table.ts, hlc.ts) match FlowTableLike / HlcLike structurally.
 */
import type { FlowEntry } from './flow-entry.js';

export interface NodeSettings {
  readonly id: string;
  readonly host: string;
  readonly peerPort: number;
  readonly weight?: number;
}

export interface TlsFiles {
  /** PEM file paths; read once at start(). */
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

export interface ClusterSettings {
  readonly name: string;
  /** The shared cluster secret (secretFile already resolved by the config loader). */
  readonly secret: string;
  readonly heartbeatMs: number;
  readonly failureTimeoutMs: number;
  /** How long a starting node waits for a peer's snapshot before it reports ready anyway. */
  readonly snapshotTimeoutMs?: number;
  readonly nodes: readonly NodeSettings[];
  readonly tls: TlsFiles | null;
}

/** The part of FlowTable (flow-table.ts) that replication uses. */
export interface FlowTableLike {
  /** Store iff strictly newer by (version, writer); true when the table changed. */
  merge(entry: FlowEntry): boolean;
  /** Every stored entry, tombstones included: what a snapshot carries. */
  allEntries(): Iterable<FlowEntry>;
}

/** The part of Hlc (hlc.ts) that replication uses. */
export interface HlcLike {
  /** Observe a remote version; `false` means "refuse this entry" (invalid or too far ahead). */
  observe(remote: number): boolean | void;
  /** How far the clock runs ahead of the wall clock, ms (a metric; optional for test doubles). */
  aheadMs?(): number;
}

export type PeerState = 'alive' | 'suspect' | 'dead';

/**
 * Kinds of authenticated connection between nodes. `control` carries membership, replication and
 * snapshots (owned by the cluster layer); the others are data-plane channels for the proxies.
 */
export type ChannelType = 'control' | 'http' | 'tcp' | 'udp';
export const CHANNEL_TYPES: readonly ChannelType[] = ['control', 'http', 'tcp', 'udp'];

/** Knobs with defaults; tests shrink them. None of them is user configuration. */
export interface ClusterTuning {
  /** Largest frame accepted or sent on a control link (bytes). Default 1 MiB. */
  maxFrameBytes: number;
  /** A handshake not finished within this is dropped. Default 2000 ms. */
  handshakeTimeoutMs: number;
  /** TCP connect (+ TLS) timeout for dial(). Default 2000 ms. */
  connectTimeoutMs: number;
  /** Retransmission log bound: entries kept for resume. Default 100 000. */
  logMaxEntries: number;
  /** Retransmission log bound: age of the oldest batch kept. Default 30 000 ms. */
  logMaxAgeMs: number;
  /** Stop writing to a link whose unsent bytes exceed this; resume on 'drain'. Default 8 MiB. */
  sendHighWaterBytes: number;
  /** Target size of one replication batch frame (bytes). Default 512 KiB. */
  batchTargetBytes: number;
  /** Reconnect back-off: first delay and cap (ms). Defaults 50 and 1000. */
  reconnectBaseMs: number;
  reconnectMaxMs: number;
  /** Handshakes in progress at once on the peer port; more are refused. Default 256. */
  maxPendingHandshakes: number;
}

export const DEFAULT_TUNING: Readonly<ClusterTuning> = Object.freeze({
  maxFrameBytes: 1024 * 1024,
  handshakeTimeoutMs: 2000,
  connectTimeoutMs: 2000,
  logMaxEntries: 100_000,
  logMaxAgeMs: 30_000,
  sendHighWaterBytes: 8 * 1024 * 1024,
  batchTargetBytes: 512 * 1024,
  reconnectBaseMs: 50,
  reconnectMaxMs: 1000,
  maxPendingHandshakes: 256,
});

export const DEFAULT_SNAPSHOT_TIMEOUT_MS = 2000;
