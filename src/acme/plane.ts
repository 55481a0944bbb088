/**
 * What AcmeManager (manager.ts) is given: the control plane it shares state over (the part of
 * Cluster, src/cluster/cluster.ts, that ACME uses) and its timings.
 */
export interface AcmePlane {
  readonly selfId: string;
  readonly nodeIds: readonly string[];
  readonly ready: boolean;
  alive(): ReadonlySet<string>;
  onControlFrame(type: number, handler: (peerId: string, payload: Buffer) => void): void;
  onControlLinkUp(handler: (peerId: string) => void): void;
  sendControl(peerId: string, frame: Buffer): boolean;
}

export interface AcmeTuning {
  readonly tickMs: number;
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  readonly minOrderGapMs: number;
  readonly requestTimeoutMs: number;
  /** How long a challenge answer lives on the nodes. */
  readonly challengeTtlMs: number;
  /** After sending a challenge answer to the peers, before telling the ACME server to validate. */
  readonly spreadMs: number;
}

export const DEFAULT_ACME_TUNING: AcmeTuning = {
  tickMs: 1000, retryBaseMs: 5000, retryMaxMs: 3_600_000, minOrderGapMs: 1000, requestTimeoutMs: 10_000, challengeTtlMs: 300_000, spreadMs: 250,
};
