/**
 * Flow-table replication (docs/design.md §3.6; docs/protocol.md, "Replication").
 *
 * Each node sends only its own changes (publish()), to every peer, on the control link: the mesh
 * is full, so re-broadcasting what came from a peer would only multiply traffic. Changes made in
 * one event-loop turn leave as one ENTRIES frame (setImmediate flush), encoded once and written to
 * every peer. Batches carry a sequence number of this node's stream; this process's stream is
 * named by a random incarnation id, so a receiver can tell "the same sender, later" from "a
 * restarted sender".
 *
 * Receivers merge (table.merge after hlc.observe) a whole decoded batch or nothing, and
 * acknowledge the highest contiguous sequence, batched once per turn. A received entry's
 * lastActive is the receiver's clock at receipt (entry-codec.ts): idleness is judged in each
 * node's own clock, so a peer whose clock is off does not make its flows look idle or fresh.
 *
 * The sender keeps the last batches (bounded by entries and age, tuning.logMax*) in a log shared
 * by all peers. A peer's OPEN states the incarnation and sequence it last applied from us:
 *   - same incarnation, and the log still holds the next batch → resume: resend from there;
 *   - otherwise → full resync (snapshot.ts).
 * Backpressure: writing to a peer stops while its socket holds more than sendHighWaterBytes;
 * batches wait in the log meanwhile. If the log drops a batch that peer has not been sent, the
 * peer gets a full resync instead: memory stays bounded by the log, never by a slow peer.
 */
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { FlowEntry } from './flow-entry.js';
import type { ClusterMetrics } from './cluster-metrics.js';
import type { ClusterTuning, FlowTableLike, HlcLike } from './cluster-options.js';
import type { ControlLink } from './control-link.js';
import { decodeEntryBatch, EntryBatchEncoder } from './entry-codec.js';
import { ByteReader, ByteWriter, FrameType, StreamViolation, type Frame } from './frame.js';
import { ReplicationLog } from './replication-log.js';
import { INCARNATION_BYTES, decodeResyncBegin, decodeResyncEnd, encodeResyncBegin, sendSnapshot } from './snapshot.js';

const NO_INCARNATION = Buffer.alloc(INCARNATION_BYTES).toString('hex');

export function newIncarnation(): Buffer {
  for (;;) {
    const b = randomBytes(INCARNATION_BYTES);
    if (b.toString('hex') !== NO_INCARNATION) return b;
  }
}

export interface OpenMessage {
  readonly incarnation: string;
  readonly ready: boolean;
  /** Our stream as the peer last applied it; NO_INCARNATION when it has nothing usable. */
  readonly knownIncarnation: string;
  readonly lastSeq: number;
}

export function encodeOpen(incarnation: Buffer, ready: boolean, known: string | null, lastSeq: number): Buffer {
  const w = ByteWriter.frame(FrameType.OPEN, 40);
  w.bytes(incarnation);
  w.u8(ready ? 1 : 0);
  w.bytes(Buffer.from(known ?? NO_INCARNATION, 'hex'));
  w.u64(known === null ? 0 : lastSeq);
  return w.finish();
}

export function decodeOpen(payload: Buffer): OpenMessage {
  const r = new ByteReader(payload);
  const incarnation = r.bytes(INCARNATION_BYTES, 'incarnation').toString('hex');
  const ready = (r.u8('flags') & 1) !== 0;
  const knownIncarnation = r.bytes(INCARNATION_BYTES, 'known incarnation').toString('hex');
  const lastSeq = r.u64('last sequence');
  r.end('OPEN');
  return { incarnation, ready, knownIncarnation, lastSeq };
}

function encodeAck(seq: number): Buffer {
  const w = ByteWriter.frame(FrameType.ACK, 16);
  w.u64(seq);
  return w.finish();
}

function protocolError(message: string): StreamViolation {
  return new StreamViolation(message);
}

/** Our stream towards one peer. */
interface OutStream {
  readonly peerId: string;
  link: ControlLink | null;
  /** The peer's OPEN arrived on `link`: sending may start. */
  open: boolean;
  sentSeq: number;
  ackedSeq: number;
  waitingDrain: boolean;
  /** Bumped by each full resync; an older snapshot still streaming sees it and stops. */
  resyncGen: number;
  readonly entriesOut: ReturnType<Counter<'direction'>['labels']>;
}

/** The peer's stream towards us. */
interface InStream {
  incarnation: string | null;
  lastSeq: number;
  /** False between RESYNC_BEGIN and RESYNC_END: a reconnect must not claim a half snapshot. */
  complete: boolean;
  senderReady: boolean;
  link: ControlLink | null;
}

export interface ReplicatorOptions {
  readonly selfId: string;
  readonly peerIds: readonly string[];
  readonly table: FlowTableLike;
  readonly hlc: HlcLike;
  readonly metrics: ClusterMetrics;
  readonly logger: Logger;
  readonly tuning: ClusterTuning;
  readonly incarnation: Buffer;
  readonly isReady: () => boolean;
  readonly onRemoteEntries: (entries: FlowEntry[], peerId: string) => void;
  readonly onSnapshotComplete: (peerId: string, senderReady: boolean) => void;
}

export class Replicator {
  readonly #o: ReplicatorOptions;
  readonly #incarnationHex: string;
  readonly #log = new ReplicationLog();
  readonly #out = new Map<string, OutStream>();
  readonly #in = new Map<string, InStream>();
  readonly #batchTarget: number;
  #pending: FlowEntry[] = [];
  #flushImmediate: NodeJS.Immediate | null = null;
  readonly #acksDue = new Set<InStream>();
  /** The incarnation each peer announced in its last OPEN on an authenticated link. */
  readonly #peerIncarnations = new Map<string, Buffer>();
  /** Per peer: when refused entries were last logged (rate limit). */
  readonly #refusedLoggedAt = new Map<string, number>();
  #ackImmediate: NodeJS.Immediate | null = null;
  #closed = false;

  constructor(o: ReplicatorOptions) {
    this.#o = o;
    this.#incarnationHex = o.incarnation.toString('hex');
    // Leave room for one maximal entry past the target inside the frame limit.
    this.#batchTarget = Math.max(1024, Math.min(o.tuning.batchTargetBytes, o.tuning.maxFrameBytes - 96 * 1024));
    for (const id of o.peerIds) this.addPeer(id);
  }

  /** A node joined the member set: it gets a stream when its link comes up (a full resync first). */
  addPeer(id: string): void {
    if (this.#out.has(id)) return;
    const entriesOut = this.#o.metrics.replicationEntries.labels('out');
    this.#out.set(id, { peerId: id, link: null, open: false, sentSeq: 0, ackedSeq: 0, waitingDrain: false, resyncGen: 0, entriesOut });
    this.#in.set(id, { incarnation: null, lastSeq: 0, complete: false, senderReady: false, link: null });
  }

  /** A node left the member set: forget both streams (a snapshot still streaming to it stops). */
  removePeer(id: string): void {
    const out = this.#out.get(id);
    if (out !== undefined) {
      out.resyncGen++;
      out.link = null;
    }
    this.#out.delete(id);
    const inn = this.#in.get(id);
    if (inn !== undefined) this.#acksDue.delete(inn);
    this.#in.delete(id);
  }

  get incarnation(): string {
    return this.#incarnationHex;
  }

  /**
   * The incarnation a peer announced in its last OPEN (8 bytes), or null before any: agreed over
   * the authenticated control link, it is what the UDP data plane binds its datagrams to.
   */
  peerIncarnation(id: string): Buffer | null {
    return this.#peerIncarnations.get(id) ?? null;
  }

  /** Queue a local change for every peer; sent at the end of this event-loop turn. */
  publish(entry: FlowEntry): void {
    if (this.#closed) return;
    this.#pending.push(entry);
    this.#flushImmediate ??= setImmediate(this.#flush);
  }

  linkUp(link: ControlLink): void {
    const out = this.#out.get(link.peerId);
    const inn = this.#in.get(link.peerId);
    if (out === undefined || inn === undefined) return;
    out.link = link;
    out.open = false;
    out.waitingDrain = false;
    inn.link = link;
    const known = inn.complete ? inn.incarnation : null;
    link.send(encodeOpen(this.#o.incarnation, this.#o.isReady(), known, inn.lastSeq));
  }

  linkDown(link: ControlLink): void {
    const out = this.#out.get(link.peerId);
    if (out !== undefined && out.link === link) {
      out.link = null;
      out.open = false;
      out.waitingDrain = false;
    }
    const inn = this.#in.get(link.peerId);
    if (inn !== undefined && inn.link === link) {
      inn.link = null;
      this.#acksDue.delete(inn);
    }
  }

  /** Dispatch one control frame (not heartbeats). Throws to make the link drop the peer. */
  handleFrame(link: ControlLink, f: Frame): void {
    const out = this.#out.get(link.peerId);
    const inn = this.#in.get(link.peerId);
    if (out === undefined || inn === undefined || this.#closed) return;
    switch (f.type) {
      case FrameType.OPEN:
        return this.#onOpen(out, inn, link, decodeOpen(f.payload));
      case FrameType.ENTRIES:
        return this.#onEntries(inn, link, f.payload);
      case FrameType.ACK: {
        const r = new ByteReader(f.payload);
        const seq = r.u64('ack');
        r.end('ACK');
        if (seq > out.ackedSeq && seq <= out.sentSeq) out.ackedSeq = seq;
        return;
      }
      case FrameType.RESYNC_BEGIN: {
        const b = decodeResyncBegin(f.payload);
        inn.incarnation = b.incarnation;
        inn.lastSeq = b.baseSeq;
        inn.complete = false;
        inn.senderReady = b.senderReady;
        return;
      }
      case FrameType.SNAPSHOT_CHUNK: {
        if (inn.incarnation === null || inn.complete) throw protocolError(`SNAPSHOT_CHUNK from ${link.peerId} outside a resync`);
        const r = new ByteReader(f.payload);
        const entries = decodeEntryBatch(r, Date.now());
        r.end('SNAPSHOT_CHUNK');
        this.#apply(entries, link.peerId);
        return;
      }
      case FrameType.RESYNC_END: {
        decodeResyncEnd(f.payload);
        if (inn.incarnation === null || inn.complete) throw protocolError(`RESYNC_END from ${link.peerId} outside a resync`);
        inn.complete = true;
        this.#o.logger.debug({ peer: link.peerId }, 'full resync received');
        this.#o.onSnapshotComplete(link.peerId, inn.senderReady);
        return;
      }
      default:
        throw protocolError(`unexpected frame type 0x${f.type.toString(16)} on the control link`);
    }
  }

  /** Replication state towards a peer, for stats() and metrics. */
  peerStats(id: string): { replicationLagMs: number; pendingEntries: number } {
    const out = this.#out.get(id);
    if (out === undefined) return { replicationLagMs: 0, pendingEntries: 0 };
    const oldest = this.#log.oldestAfter(out.ackedSeq);
    return {
      replicationLagMs: oldest === undefined ? 0 : performance.now() - oldest.at,
      pendingEntries: this.#log.entriesAfter(out.ackedSeq),
    };
  }

  *lagSeconds(): Iterable<readonly [string, number]> {
    for (const id of this.#out.keys()) yield [id, this.peerStats(id).replicationLagMs / 1000];
  }

  /**
   * Send what is queued now and wait until every connected peer acknowledged it (or timeoutMs
   * passed). For a graceful stop: the last changes (hand-overs, ends) leave before the links
   * close. Returns whether every connected peer acknowledged.
   */
  async flush(timeoutMs: number): Promise<boolean> {
    if (this.#flushImmediate !== null) {
      clearImmediate(this.#flushImmediate);
      this.#flush();
    }
    const target = this.#log.lastSeq;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      let done = true;
      for (const out of this.#out.values()) if (out.link !== null && out.open && out.ackedSeq < target) done = false;
      if (done) return true;
      if (this.#closed || performance.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  close(): void {
    this.#closed = true;
    if (this.#flushImmediate !== null) clearImmediate(this.#flushImmediate);
    if (this.#ackImmediate !== null) clearImmediate(this.#ackImmediate);
    this.#flushImmediate = this.#ackImmediate = null;
    this.#pending = [];
  }

  readonly #flush = (): void => {
    this.#flushImmediate = null;
    const entries = this.#pending;
    this.#pending = [];
    const now = performance.now();
    let i = 0;
    while (i < entries.length) {
      const w = ByteWriter.frame(FrameType.ENTRIES, Math.min(this.#batchTarget + 1024, 48 * (entries.length - i) + 64));
      w.u64(this.#log.nextSeq);
      const enc = new EntryBatchEncoder(w);
      while (i < entries.length && enc.bytes < this.#batchTarget) {
        const e = entries[i++];
        try {
          enc.add(e);
        } catch (err) {
          this.#o.logger.error({ service: e.service, err: (err as Error).message }, 'flow entry cannot be encoded; not replicated');
        }
      }
      if (enc.count === 0) continue;
      enc.finish();
      this.#log.append(enc.count, w.finish(), now);
    }
    // Send first, trim after: a batch must reach every uncongested peer even if it alone
    // exceeds the log bound.
    for (const out of this.#out.values()) this.#pump(out);
    this.#log.trim(this.#o.tuning.logMaxEntries, this.#o.tuning.logMaxAgeMs, now);
  };

  /** Send the peer whatever of the log it has not been sent, until its socket is congested. */
  #pump(out: OutStream): void {
    const link = out.link;
    if (link === null || !out.open || out.waitingDrain || link.closed) return;
    while (out.sentSeq < this.#log.lastSeq) {
      const b = this.#log.get(out.sentSeq + 1);
      if (b === undefined) {
        this.#o.logger.warn({ peer: out.peerId, behind: this.#log.lastSeq - out.sentSeq }, 'peer fell behind the retransmission log; full resync');
        this.#fullResync(out, link);
        continue; // sentSeq is now the log's end: nothing left, loop ends
      }
      link.send(b.frame);
      out.sentSeq = b.seq;
      out.entriesOut.inc(b.count);
      if (link.congested) {
        out.waitingDrain = true;
        void link.drained().then(() => {
          if (out.link !== link) return;
          out.waitingDrain = false;
          this.#pump(out);
        });
        return;
      }
    }
  }

  #onOpen(out: OutStream, inn: InStream, link: ControlLink, m: OpenMessage): void {
    if (out.link !== link) return;
    this.#peerIncarnations.set(link.peerId, Buffer.from(m.incarnation, 'hex'));
    // A different sender incarnation than the one we hold: it restarted, our position is void.
    if (inn.incarnation !== null && inn.incarnation !== m.incarnation) {
      inn.incarnation = null;
      inn.lastSeq = 0;
      inn.complete = false;
    }
    out.open = true;
    const canResume = m.knownIncarnation === this.#incarnationHex && m.lastSeq >= this.#log.firstSeq - 1 && m.lastSeq <= this.#log.lastSeq;
    if (canResume) {
      out.sentSeq = out.ackedSeq = m.lastSeq;
      this.#o.metrics.resyncs.inc({ peer: out.peerId, kind: 'resume' });
      this.#o.logger.debug({ peer: out.peerId, from: m.lastSeq, to: this.#log.lastSeq }, 'replication resumes');
      this.#pump(out);
    } else {
      this.#fullResync(out, link);
      this.#pump(out);
    }
  }

  #fullResync(out: OutStream, link: ControlLink): void {
    const base = this.#log.lastSeq;
    out.sentSeq = out.ackedSeq = base;
    this.#o.metrics.resyncs.inc({ peer: out.peerId, kind: 'full' });
    link.send(encodeResyncBegin(this.#o.incarnation, base, this.#o.isReady()));
    const entries = Array.from(this.#o.table.allEntries());
    this.#o.logger.debug({ peer: out.peerId, entries: entries.length, base }, 'full resync sending');
    const gen = ++out.resyncGen;
    const cancelled = (): boolean => out.resyncGen !== gen || out.link !== link;
    sendSnapshot(link, entries, { chunkBytes: this.#batchTarget, cancelled, metrics: this.#o.metrics, logger: this.#o.logger }).catch((err: unknown) => {
      this.#o.logger.error({ peer: out.peerId, err }, 'snapshot send failed');
      link.close();
    });
  }

  #onEntries(inn: InStream, link: ControlLink, payload: Buffer): void {
    const r = new ByteReader(payload);
    const seq = r.u64('sequence');
    if (inn.incarnation === null) throw protocolError(`ENTRIES from ${link.peerId} before its stream was established`);
    if (seq <= inn.lastSeq) return; // a duplicate after a resume: already applied
    if (seq !== inn.lastSeq + 1) {
      inn.complete = false; // a reconnect must start over from a snapshot
      throw protocolError(`sequence gap from ${link.peerId}: expected ${inn.lastSeq + 1}, got ${seq}`);
    }
    // Decode everything before applying anything: a malformed batch throws here, untouched table.
    const entries = decodeEntryBatch(r, Date.now());
    r.end('ENTRIES');
    inn.lastSeq = seq;
    this.#apply(entries, link.peerId);
    this.#acksDue.add(inn);
    this.#ackImmediate ??= setImmediate(this.#sendAcks);
  }

  #apply(entries: FlowEntry[], peerId: string): void {
    this.#o.metrics.replicationEntries.inc({ direction: 'in' }, entries.length);
    const { table, hlc } = this.#o;
    let changed: FlowEntry[] | null = null;
    let refused = 0;
    let newest = 0;
    for (const e of entries) {
      // A version the clock refuses (invalid or far in the future) is refused as an entry too:
      // stored, it could never be superseded by a local write (hlc.ts, observe()).
      if (hlc.observe(e.version) === false) {
        refused++;
        if (e.version > newest) newest = e.version;
        continue;
      }
      if (table.merge(e)) (changed ??= []).push(e);
    }
    if (refused > 0) this.#refused(peerId, refused, newest);
    if (changed !== null) this.#o.onRemoteEntries(changed, peerId);
  }

  /** Counted always, logged at most every 10 s per peer: a peer with a runaway clock sends many. */
  #refused(peerId: string, n: number, newest: number): void {
    // Decoded versions are safe integers (entry-codec.ts): what the clock refuses lies too far ahead.
    this.#o.metrics.hlcRefused.inc({ peer: peerId, reason: 'future' }, n);
    const now = performance.now();
    const last = this.#refusedLoggedAt.get(peerId);
    if (last !== undefined && now - last < 10_000) return;
    this.#refusedLoggedAt.set(peerId, now);
    const aheadH = Math.round((newest / 1024 - Date.now()) / 360_000) / 10;
    this.#o.logger.warn({ peer: peerId, refused: n, aheadHours: aheadH }, "entries refused: versions too far ahead of this node's clock (is the peer's clock wrong?)");
  }

  readonly #sendAcks = (): void => {
    this.#ackImmediate = null;
    for (const inn of this.#acksDue) inn.link?.send(encodeAck(inn.lastSeq));
    this.#acksDue.clear();
  };
}
