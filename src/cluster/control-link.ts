/**
 * One authenticated control connection to a peer (membership, replication and snapshots share
 * it; docs/protocol.md, "Control link"). It owns the framing in both directions, the per-peer
 * frame/byte counters, and the rule that a peer sending a bad frame is dropped: a frame that
 * fails to parse closes the link before anything from it is applied, and the reason is counted in
 * tandem_peer_rejected_frames_total.
 */
import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { ErrorCodes, isTandemError } from '../errors.js';
import type { ClusterMetrics, RejectReason } from './cluster-metrics.js';
import { CONTROL_FRAME_TYPES, FrameDecoder, FrameWriter, StreamViolation, type Frame } from './frame.js';

export interface ControlLinkOptions {
  readonly metrics: ClusterMetrics;
  readonly logger: Logger;
  readonly maxFrameBytes: number;
  readonly highWaterBytes: number;
  /** Called for every frame, in order. A throw drops the link (see #reject). */
  readonly onFrame: (link: ControlLink, frame: Frame) => void;
  /** Called once when the link is gone, whoever closed it. */
  readonly onClose: (link: ControlLink) => void;
}

type Child = ReturnType<Counter<'peer' | 'direction'>['labels']>;

export class ControlLink {
  readonly peerId: string;
  /** performance.now() of the last frame received / sent. */
  lastReceived: number;
  lastSent: number;
  readonly #socket: Socket;
  readonly #o: ControlLinkOptions;
  readonly #decoder: FrameDecoder;
  readonly #writer: FrameWriter;
  readonly #framesIn: Child;
  readonly #framesOut: Child;
  readonly #bytesIn: Child;
  readonly #bytesOut: Child;
  #closed = false;

  constructor(socket: Socket, peerId: string, o: ControlLinkOptions) {
    this.peerId = peerId;
    this.#socket = socket;
    this.#o = o;
    this.lastReceived = this.lastSent = performance.now();
    this.#decoder = new FrameDecoder({ maxFrameBytes: o.maxFrameBytes, types: CONTROL_FRAME_TYPES });
    this.#framesIn = o.metrics.frames.labels(peerId, 'in');
    this.#framesOut = o.metrics.frames.labels(peerId, 'out');
    this.#bytesIn = o.metrics.bytes.labels(peerId, 'in');
    this.#bytesOut = o.metrics.bytes.labels(peerId, 'out');
    this.#writer = new FrameWriter(socket, {
      highWaterBytes: o.highWaterBytes,
      onWrite: (n) => {
        this.#framesOut.inc();
        this.#bytesOut.inc(n);
        this.lastSent = performance.now();
      },
    });
    socket.on('data', this.#onData);
    socket.once('close', () => this.close());
    socket.on('end', () => this.close());
    // Attaching 'data' starts the flow (handshake.ts leaves the stream in its initial state, with
    // any early bytes unshifted); resume() makes that explicit.
    socket.resume();
  }

  get closed(): boolean {
    return this.#closed;
  }

  get congested(): boolean {
    return this.#writer.congested;
  }

  get pendingBytes(): number {
    return this.#writer.pendingBytes;
  }

  get remote(): string {
    return `${this.#socket.remoteAddress}:${this.#socket.remotePort}`;
  }

  /** Queue a frame; false when congested or closed (the frame is still queued if open). */
  send(frame: Buffer): boolean {
    if (this.#closed) return false;
    return this.#writer.write(frame);
  }

  /** Resolves on the next 'drain', or at once if the link is not congested or is closed. */
  drained(): Promise<void> {
    if (this.#closed || !this.#writer.congested) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        this.#socket.removeListener('drain', done);
        this.#socket.removeListener('close', done);
        resolve();
      };
      this.#socket.on('drain', done);
      this.#socket.on('close', done);
    });
  }

  /** Destroy the socket (idempotent) and tell the owner once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.removeListener('data', this.#onData);
    this.#socket.destroy();
    this.#o.onClose(this);
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#bytesIn.inc(chunk.length);
    this.#decoder.push(chunk);
    for (;;) {
      let frame: Frame | null;
      try {
        frame = this.#decoder.next();
      } catch (err) {
        this.#reject(isTandemError(err, ErrorCodes.FRAME_TOO_LARGE) ? 'oversized' : 'garbage', err);
        return;
      }
      if (frame === null) return;
      this.#framesIn.inc();
      this.lastReceived = performance.now();
      try {
        this.#o.onFrame(this, frame);
      } catch (err) {
        const reason = err instanceof StreamViolation || !isTandemError(err, ErrorCodes.FRAME_MALFORMED) ? 'protocol' : 'malformed';
        this.#reject(reason, err);
        return;
      }
      if (this.#closed) return;
    }
  };

  #reject(reason: RejectReason, err: unknown): void {
    this.#o.metrics.rejectedFrames.inc({ reason });
    const log = isTandemError(err) ? this.#o.logger.warn.bind(this.#o.logger) : this.#o.logger.error.bind(this.#o.logger);
    log({ peer: this.peerId, reason, err: (err as Error)?.message ?? String(err) }, 'dropping control link after a bad frame');
    this.close();
  }
}
