/**
 * One multiplexed connection between two nodes: the frames of many streams over one authenticated
 * socket. Only the side that dialed opens streams (ids 1, 2, 3, …), so the two directions of
 * forwarding between a pair of nodes use separate connections and ids never collide.
 *
 * Writes are coalesced: frames queued during one turn of the event loop leave in one write
 * (one buffer when small, a corked writev when large), which is where a shared connection beats a
 * connection per request — under load, the frames of many requests share each syscall.
 */
import type { Duplex } from 'node:stream';
import { FLAG_END, FrameDecoder, FrameType, MAX_OPEN_PAYLOAD, ResetCode, encodeFrame, encodeReset, resetName, type FrameSink, type ResetCodeValue } from './frame.js';
import { MuxStream, type MuxHandler, type StreamOwner } from './stream.js';

/** Highest stream id a connection hands out; past it the connection retires (no new streams). */
export const MAX_STREAM_ID = 0x7fff_ffff;
/** Streams one connection carries at once; an OPEN beyond it is refused (nothing consumed). */
export const MAX_CONCURRENT_STREAMS = 4096;
/** Frames queued up to this many bytes are joined into one buffer; more go out as one writev. */
const COALESCE_BYTES = 64 * 1024;

/** The acceptor's answer to an OPEN: a handler for the new stream, or null to refuse it. */
export type OpenHandler = (stream: MuxStream, head: Buffer, peer: string) => MuxHandler | null;

export interface ConnectionEvents {
  /** A frame the protocol does not allow; the connection is closed after this. */
  protocolError(reason: string): void;
  /** A stream was refused (too many, no acceptor) or reset by us because of a bad frame. */
  refused?(reason: string): void;
  closed(conn: MuxConnection): void;
}

export class MuxConnection implements StreamOwner, FrameSink {
  readonly peer: string;
  /** True on the side that dialed: it opens the streams. */
  readonly dialer: boolean;
  readonly #streams = new Map<number, MuxStream>();
  readonly #decoder: FrameDecoder;
  readonly #events: ConnectionEvents;
  readonly #accept: OpenHandler | null;
  #socket: Duplex | null = null;
  #out: Buffer[] = [];
  #outBytes = 0;
  #flushScheduled = false;
  #needDrain = false;
  #nextId = 1;
  #lastRemoteId = 0;
  #closed = false;

  constructor(peer: string, dialer: boolean, events: ConnectionEvents, accept: OpenHandler | null = null) {
    this.peer = peer;
    this.dialer = dialer;
    this.#events = events;
    this.#accept = accept;
    this.#decoder = new FrameDecoder(this);
  }

  /** Streams open on this connection. */
  get active(): number {
    return this.#streams.size;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /** No more stream ids: the connection finishes its streams and is replaced. */
  get retiring(): boolean {
    return this.#nextId > MAX_STREAM_ID;
  }

  get writable(): boolean {
    return !this.#needDrain && !this.#closed;
  }

  /** Binds the socket; frames queued before it (streams opened while dialing) go out now. */
  attach(socket: Duplex): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => this.#decoder.push(chunk));
    socket.on('drain', this.#onDrain);
    socket.on('error', () => undefined);
    socket.once('close', () => this.close('connection closed'));
    socket.once('end', () => this.close('connection ended by peer'));
    if (this.#out.length > 0) this.#schedule();
    // The transport hands sockets over paused, with bytes behind the handshake unshifted.
    socket.resume();
  }

  /** Opens a stream (dialer side). Its frames wait in the queue if the socket is not bound yet. */
  open(head: Buffer, handler: MuxHandler, end: boolean): MuxStream {
    const id = this.#nextId++;
    const stream = new MuxStream(this, id, this.peer, handler);
    this.#streams.set(id, stream);
    this.send(encodeFrame(FrameType.OPEN, end ? FLAG_END : 0, id, head));
    if (end) stream.markLocalEnded();
    return stream;
  }

  /** Ends every stream (their handlers get CONNECTION_LOST, or UNREACHABLE before any socket) and the socket. */
  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#decoder.fail();
    const socket = this.#socket;
    if (socket !== null) {
      // What is queued still goes: a RESET or END written just before a deliberate close.
      if (this.#out.length > 0 && !socket.destroyed) this.#flush();
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref();
    }
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    // A connection that never got its socket (the dial failed or timed out) sent nothing: its
    // streams are unreachable — safe to send elsewhere whatever the method — rather than lost.
    const code = socket === null ? ResetCode.UNREACHABLE : ResetCode.CONNECTION_LOST;
    for (const s of streams) s.lost(reason, code);
    this.#events.closed(this);
  }

  // ---- StreamOwner -------------------------------------------------------------------------

  send(frame: Buffer): void {
    if (this.#closed) return;
    this.#out.push(frame);
    this.#outBytes += frame.length;
    if (this.#socket !== null) this.#schedule();
  }

  closed(stream: MuxStream): void {
    this.#streams.delete(stream.id);
  }

  // ---- FrameSink ---------------------------------------------------------------------------

  frame(type: number, flags: number, id: number, payload: Buffer): void {
    if (type === FrameType.OPEN) return this.#onOpen(id, flags, payload);
    const stream = this.#streams.get(id);
    switch (type) {
      case FrameType.DATA:
        if (stream !== undefined && !stream.receiveData(payload, (flags & FLAG_END) !== 0)) this.#streamError(stream, 'data past credit or after end');
        return;
      case FrameType.END:
        if (stream !== undefined && !stream.receiveEnd()) this.#streamError(stream, 'second end');
        return;
      case FrameType.RESET: {
        if (payload.length < 1) return this.malformed('reset without a code');
        const code = payload[0];
        if (resetName(code) === 'unknown') return this.malformed(`reset code ${code}`);
        stream?.receiveReset(code as ResetCodeValue, payload.toString('utf8', 1));
        return;
      }
      case FrameType.WINDOW:
        if (payload.length !== 4) return this.malformed('window frame of the wrong size');
        stream?.receiveWindow(payload.readUInt32BE(0));
        return;
      default:
        return this.malformed(`unknown frame type ${type}`);
    }
    // A frame for a stream that is gone (we reset it, it ended) is dropped: frames cross.
  }

  malformed(reason: string): void {
    this.#events.protocolError(reason);
    this.close(`protocol error: ${reason}`);
  }

  // ---- internals ---------------------------------------------------------------------------

  #onOpen(id: number, flags: number, head: Buffer): void {
    if (this.dialer || this.#accept === null) return this.malformed('open on a connection that does not accept streams');
    if (id <= this.#lastRemoteId || id > MAX_STREAM_ID) return this.malformed(`stream id ${id} not increasing`);
    if (head.length > MAX_OPEN_PAYLOAD) return this.malformed('open head too large');
    this.#lastRemoteId = id;
    const stream = new MuxStream(this, id, this.peer);
    if (this.#streams.size >= MAX_CONCURRENT_STREAMS) {
      this.#events.refused?.('too many streams');
      this.send(encodeReset(id, ResetCode.REFUSED, 'too many streams'));
      return;
    }
    this.#streams.set(id, stream);
    let handler: MuxHandler | null;
    try {
      handler = this.#accept(stream, head, this.peer);
    } catch (err) {
      handler = null;
      this.#events.refused?.(`acceptor failed: ${(err as Error).message}`);
    }
    if (handler === null) {
      if (!stream.closed) stream.reset(ResetCode.REFUSED, 'not accepted');
      return;
    }
    stream.handler = handler;
    if ((flags & FLAG_END) !== 0 && !stream.closed) stream.receiveEnd();
  }

  #streamError(stream: MuxStream, reason: string): void {
    this.#events.refused?.(reason);
    stream.reset(ResetCode.PROTOCOL, reason);
    stream.handler.onReset(ResetCode.PROTOCOL, reason);
  }

  #schedule(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(this.#flushNow);
  }

  readonly #flushNow = (): void => {
    this.#flushScheduled = false;
    if (!this.#closed) this.#flush();
  };

  #flush(): void {
    const socket = this.#socket;
    const out = this.#out;
    if (socket === null || out.length === 0) return;
    this.#out = [];
    const bytes = this.#outBytes;
    this.#outBytes = 0;
    let ok: boolean;
    if (out.length === 1) ok = socket.write(out[0]);
    else if (bytes <= COALESCE_BYTES) ok = socket.write(Buffer.concat(out, bytes));
    else {
      socket.cork();
      ok = true;
      for (const b of out) ok = socket.write(b) && ok;
      socket.uncork();
    }
    if (!ok) this.#needDrain = true;
  }

  readonly #onDrain = (): void => {
    if (!this.#needDrain) return;
    this.#needDrain = false;
    for (const s of this.#streams.values()) {
      s.drained();
      if (this.#needDrain) break;
    }
  };
}
