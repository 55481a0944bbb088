/**
 * Full resync of one replication stream, and the node's readiness (docs/design.md §3.5, "Join
 * or restart"; docs/protocol.md, "Full resync").
 *
 * A snapshot is the sender's whole table, streamed on the control link as
 *   RESYNC_BEGIN { incarnation, baseSeq, senderReady }  SNAPSHOT_CHUNK*  RESYNC_END { count }
 * while live ENTRIES batches with seq > baseSeq keep flowing on the same link. Everything merges
 * by version, so the interleaving is harmless: an older snapshot copy of an entry loses to the
 * newer live one whichever arrives first.
 *
 * A starting node never asks explicitly: its first OPEN on each link names no known incarnation,
 * which makes every peer answer with a full resync. So "ask each connected peer for its table" is
 * the same mechanism as "the retransmission log no longer reaches back far enough".
 *
 * Readiness (decision, documented in docs/protocol.md): the node is ready once
 *   (a) one complete snapshot arrived from a peer that was itself ready when it started it, or
 *   (b) complete snapshots arrived from every configured peer (a whole cluster cold-starting
 *       together: nobody holds anything the others lack), or
 *   (c) snapshotTimeoutMs passed since start() (a lone first node; peers that never answer), or
 *   (d) the cluster has no other node.
 * Rule (a) is why a node that restarted alongside another does not take that other's empty
 * table for the cluster's.
 */
import { setImmediate as yieldTurn } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { FlowEntry } from './flow-entry.js';
import type { ClusterMetrics } from './cluster-metrics.js';
import type { ControlLink } from './control-link.js';
import { ByteReader, ByteWriter, FrameType } from './frame.js';
import { EntryBatchEncoder } from './entry-codec.js';

export const INCARNATION_BYTES = 8;

export interface ResyncBegin {
  readonly incarnation: string;
  readonly baseSeq: number;
  readonly senderReady: boolean;
}

export function encodeResyncBegin(incarnation: Buffer, baseSeq: number, senderReady: boolean): Buffer {
  const w = ByteWriter.frame(FrameType.RESYNC_BEGIN, 32);
  w.bytes(incarnation);
  w.u64(baseSeq);
  w.u8(senderReady ? 1 : 0);
  return w.finish();
}

export function decodeResyncBegin(payload: Buffer): ResyncBegin {
  const r = new ByteReader(payload);
  const incarnation = r.bytes(INCARNATION_BYTES, 'incarnation').toString('hex');
  const baseSeq = r.u64('base sequence');
  const flags = r.u8('flags');
  r.end('RESYNC_BEGIN');
  return { incarnation, baseSeq, senderReady: (flags & 1) !== 0 };
}

export function encodeResyncEnd(count: number): Buffer {
  const w = ByteWriter.frame(FrameType.RESYNC_END, 16);
  w.u64(count);
  return w.finish();
}

export function decodeResyncEnd(payload: Buffer): number {
  const r = new ByteReader(payload);
  const n = r.u64('count');
  r.end('RESYNC_END');
  return n;
}

export interface SnapshotSendOptions {
  readonly chunkBytes: number;
  /** True once a newer resync replaced this one: stop without RESYNC_END. */
  readonly cancelled: () => boolean;
  readonly metrics: ClusterMetrics;
  readonly logger: Logger;
}

/**
 * Stream `entries` as SNAPSHOT_CHUNK frames and a RESYNC_END. Waits for 'drain' whenever the
 * link is congested and yields a turn between chunks, so heartbeats and live replication keep
 * flowing during a large snapshot. Returns the number of entries sent, or null if the link closed
 * or a newer resync cancelled this one first (the stream stays incomplete at the receiver until a
 * RESYNC_END arrives, so nothing is lost: the newer resync or the next connection covers it).
 *
 * `entries` should be a point-in-time array (entries are immutable, so copying references is
 * enough): iterating a live Map across async turns could revisit keys that are touched meanwhile.
 */
export async function sendSnapshot(link: ControlLink, entries: readonly FlowEntry[], o: SnapshotSendOptions): Promise<number | null> {
  let i = 0;
  let sent = 0;
  const out = o.metrics.replicationEntries.labels('out');
  while (i < entries.length) {
    if (link.closed || o.cancelled()) return null;
    const w = ByteWriter.frame(FrameType.SNAPSHOT_CHUNK, Math.min(o.chunkBytes + 1024, 64 * (entries.length - i) + 64));
    const enc = new EntryBatchEncoder(w);
    while (i < entries.length && enc.bytes < o.chunkBytes) {
      const e = entries[i++];
      try {
        enc.add(e);
      } catch (err) {
        o.logger.error({ service: e.service, err: (err as Error).message }, 'flow entry cannot be encoded; left out of the snapshot');
      }
    }
    if (enc.count > 0) {
      enc.finish();
      link.send(w.finish());
      sent += enc.count;
      out.inc(enc.count);
    }
    if (link.congested) await link.drained();
    else await yieldTurn();
  }
  // A cancelled snapshot must not end: its RESYNC_END would mark the newer resync complete.
  if (link.closed || o.cancelled()) return null;
  link.send(encodeResyncEnd(sent));
  return sent;
}

/** The ready rule above, as a small state machine. */
export class Readiness {
  readonly #peers: Set<string>;
  readonly #timeoutMs: number;
  readonly #onReady: (why: string) => void;
  readonly #complete = new Set<string>();
  #timer: NodeJS.Timeout | null = null;
  #ready = false;

  constructor(peers: Iterable<string>, timeoutMs: number, onReady: (why: string) => void) {
    this.#peers = new Set(peers);
    this.#timeoutMs = timeoutMs;
    this.#onReady = onReady;
  }

  get ready(): boolean {
    return this.#ready;
  }

  start(): void {
    if (this.#ready) return;
    if (this.#peers.size === 0) {
      this.#become('single-node cluster');
      return;
    }
    this.#timer = setTimeout(() => this.#become(`no complete snapshot within ${this.#timeoutMs} ms`), this.#timeoutMs);
  }

  /**
   * The member set changed before this node was ready (discovery found more peers, or some left):
   * rule (b) counts the current peers. Once ready, nothing changes.
   */
  setPeers(peers: Iterable<string>): void {
    if (this.#ready) return;
    this.#peers.clear();
    for (const p of peers) this.#peers.add(p);
    for (const p of this.#complete) if (!this.#peers.has(p)) this.#complete.delete(p);
    if (this.#timer !== null && this.#peers.size > 0 && this.#complete.size === this.#peers.size) {
      this.#become('snapshots from every peer, none of them ready yet');
    }
  }

  snapshotComplete(peerId: string, senderReady: boolean): void {
    if (this.#ready) return;
    if (senderReady) {
      this.#become(`snapshot from ${peerId}`);
      return;
    }
    if (this.#peers.has(peerId)) this.#complete.add(peerId);
    if (this.#complete.size === this.#peers.size) this.#become('snapshots from every peer, none of them ready yet');
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #become(why: string): void {
    if (this.#ready) return;
    this.#ready = true;
    this.stop();
    this.#onReady(why);
  }
}
