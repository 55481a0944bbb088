/**
 * One stream of the peer multiplexer: a forwarded communication in both directions, with
 * per-stream credit flow control (as HTTP/2's, RFC 9113 section 5.2, without the connection-level
 * window: TCP's own backpressure bounds the connection, the credit bounds what one stream may
 * queue at the receiver so that a slow consumer cannot make its peer buffer without bound).
 */
import { FLAG_END, FrameType, MAX_PAYLOAD, ResetCode, encodeFrame, encodeReset, encodeWindow, type ResetCodeValue } from './frame.js';

/** What the stream's user is told. Callbacks are never made from inside the call that caused them. */
export interface MuxHandler {
  /** Bytes from the other side; the buffer is the handler's to keep. Call `consumed` once passed on. */
  onData(chunk: Buffer): void;
  /** The other side's half is done. */
  onEnd(): void;
  /** The stream is over, both halves: the other side reset it, or the connection was lost. */
  onReset(code: ResetCodeValue, reason: string): void;
  /** write() returned false earlier and the stream may be written again. */
  onDrain(): void;
}

/** Send credit a stream starts with, each way; returned by WINDOW frames as the receiver consumes. */
export const INITIAL_WINDOW = 256 * 1024;
/** Credit is returned once this much was consumed (fewer WINDOW frames than one per chunk). */
const WINDOW_RETURN = INITIAL_WINDOW / 4;

/** The part of the connection a stream writes through. */
export interface StreamOwner {
  send(frame: Buffer): void;
  readonly writable: boolean;
  closed(stream: MuxStream): void;
}

const NOOP_HANDLER: MuxHandler = { onData() {}, onEnd() {}, onReset() {}, onDrain() {} };

export class MuxStream {
  readonly id: number;
  readonly peer: string;
  handler: MuxHandler;
  readonly #owner: StreamOwner;
  /** Bytes we may still send. */
  #credit = INITIAL_WINDOW;
  /** Bytes the other side may still send us before we return credit. */
  #recvAllowed = INITIAL_WINDOW;
  /** Consumed but not yet returned. */
  #unreturned = 0;
  /** DATA waiting for credit, in order; `#endQueued` sends END behind it. */
  #queue: Buffer[] | null = null;
  #endQueued = false;
  #localEnded = false;
  #remoteEnded = false;
  #closed = false;
  #wantDrain = false;
  /** Bytes received from / sent to the other side (for the user's accounting and tests). */
  bytesIn = 0;
  bytesOut = 0;

  constructor(owner: StreamOwner, id: number, peer: string, handler: MuxHandler = NOOP_HANDLER) {
    this.#owner = owner;
    this.id = id;
    this.peer = peer;
    this.handler = handler;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Our half is done (END sent or queued). */
  get localEnded(): boolean {
    return this.#localEnded || this.#endQueued;
  }

  get remoteEnded(): boolean {
    return this.#remoteEnded;
  }

  /**
   * Sends bytes (copied: the caller may reuse the buffer). Returns false when the caller should
   * wait for `onDrain` before writing more: the stream's credit is used up or the connection is
   * backed up. What was written is sent either way, in order.
   */
  write(chunk: Buffer): boolean {
    if (this.#closed || this.localEnded || chunk.length === 0) return !this.#closed;
    for (let off = 0; off < chunk.length; off += MAX_PAYLOAD) {
      const piece = off === 0 && chunk.length <= MAX_PAYLOAD ? chunk : chunk.subarray(off, off + MAX_PAYLOAD);
      this.#sendOrQueue(piece);
    }
    if (this.#queue === null && this.#credit > 0 && this.#owner.writable) return true;
    this.#wantDrain = true;
    return false;
  }

  /** Ends our half, optionally with a last chunk. */
  end(chunk?: Buffer): void {
    if (this.#closed || this.localEnded) return;
    if (chunk !== undefined && chunk.length > 0) {
      if (this.#queue === null && chunk.length <= MAX_PAYLOAD && chunk.length <= this.#credit) {
        this.#credit -= chunk.length;
        this.bytesOut += chunk.length;
        this.#owner.send(encodeFrame(FrameType.DATA, FLAG_END, this.id, chunk));
        return this.#sentEnd();
      }
      this.write(chunk);
    }
    if (this.#queue !== null) {
      this.#endQueued = true;
      return;
    }
    this.#owner.send(encodeFrame(FrameType.END, 0, this.id));
    this.#sentEnd();
  }

  /** Ends both halves now; the other side's handler gets `onReset(code)`. Ours is not called. */
  reset(code: ResetCodeValue, reason = ''): void {
    if (this.#closed) return;
    this.#owner.send(encodeReset(this.id, code, reason));
    this.#close();
  }

  /** `n` bytes received through onData were passed on: the other side may send that many more. */
  consumed(n: number): void {
    if (this.#closed || this.#remoteEnded) return;
    this.#unreturned += n;
    if (this.#unreturned < WINDOW_RETURN) return;
    this.#recvAllowed += this.#unreturned;
    this.#owner.send(encodeWindow(this.id, this.#unreturned));
    this.#unreturned = 0;
  }

  // ---- from the connection ----------------------------------------------------------------

  /** The OPEN frame carried the END flag: our half ended with the head. */
  markLocalEnded(): void {
    this.#localEnded = true;
  }

  /** A DATA frame; false when the other side broke the protocol (sent past its credit or after END). */
  receiveData(payload: Buffer, end: boolean): boolean {
    if (this.#closed) return true; // late frame of a stream we reset: dropped
    if (this.#remoteEnded) return false;
    this.#recvAllowed -= payload.length;
    if (this.#recvAllowed < 0) return false;
    this.bytesIn += payload.length;
    if (payload.length > 0) this.handler.onData(payload);
    if (end && !this.#closed) this.receiveEnd();
    return true;
  }

  receiveEnd(): boolean {
    if (this.#closed) return true;
    if (this.#remoteEnded) return false;
    this.#remoteEnded = true;
    this.handler.onEnd();
    if (this.#localEnded && !this.#closed) this.#close();
    return true;
  }

  receiveReset(code: ResetCodeValue, reason: string): void {
    if (this.#closed) return;
    this.#close();
    this.handler.onReset(code, reason);
  }

  receiveWindow(increment: number): void {
    if (this.#closed) return;
    this.#credit += increment;
    this.#flushQueue();
    this.drained();
  }

  /** The connection can take writes again (or credit came back): wake a waiting writer. */
  drained(): void {
    if (!this.#wantDrain || this.#closed || this.#queue !== null || this.#credit <= 0 || !this.#owner.writable) return;
    this.#wantDrain = false;
    this.handler.onDrain();
  }

  /** The connection is gone (UNREACHABLE when it never reached the peer). */
  lost(reason: string, code: ResetCodeValue = ResetCode.CONNECTION_LOST): void {
    if (this.#closed) return;
    this.#close();
    this.handler.onReset(code, reason);
  }

  // ---- internals --------------------------------------------------------------------------

  #sendOrQueue(piece: Buffer): void {
    if (this.#queue === null && piece.length <= this.#credit) {
      this.#credit -= piece.length;
      this.bytesOut += piece.length;
      this.#owner.send(encodeFrame(FrameType.DATA, 0, this.id, piece));
      return;
    }
    // Copied: the caller may reuse its buffer once write() returns.
    (this.#queue ??= []).push(Buffer.from(piece));
    this.#flushQueue();
  }

  #flushQueue(): void {
    const q = this.#queue;
    if (q === null) return;
    while (q.length > 0 && this.#credit > 0) {
      let piece = q[0];
      if (piece.length > this.#credit) {
        q[0] = piece.subarray(this.#credit);
        piece = piece.subarray(0, this.#credit);
      } else q.shift();
      this.#credit -= piece.length;
      this.bytesOut += piece.length;
      this.#owner.send(encodeFrame(FrameType.DATA, 0, this.id, piece));
    }
    if (q.length > 0) return;
    this.#queue = null;
    if (this.#endQueued) {
      this.#endQueued = false;
      this.#owner.send(encodeFrame(FrameType.END, 0, this.id));
      this.#sentEnd();
    }
  }

  #sentEnd(): void {
    this.#localEnded = true;
    if (this.#remoteEnded) this.#close();
  }

  #close(): void {
    this.#closed = true;
    this.#queue = null;
    this.#owner.closed(this);
  }
}
