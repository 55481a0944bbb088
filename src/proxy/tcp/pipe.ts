/**
 * The byte mover of the TCP service (and of anything else that joins two streams): two duplex
 * streams joined both ways.
 *
 * - Reads without allocation: when both sides are plain TCP sockets, each direction reads with
 *   Node's `onread` option into buffers it owns (buffers.ts) instead of a fresh Buffer per read.
 *   A buffer is reused for the next read as soon as its write has gone to the kernel whole
 *   (`writableLength` is 0 right after `write()`: the write completed synchronously); a buffer
 *   whose write is still queued is *lent* to that write and comes back only from its callback,
 *   while the next read goes into another buffer. So data is never overwritten in flight.
 *   `onread` can only be given when a socket is constructed, so the pipe takes over each socket's
 *   handle into a new net.Socket built with it (see adopt()); what the old socket had already
 *   read is forwarded first. Anything else (TLS, a non-socket stream, a socket that already saw
 *   its peer's FIN or still has writes queued) is joined with Readable.pipe, as before.
 * - Backpressure: a direction stops reading when it has lent `MAX_LENT` buffers to queued writes
 *   (on the plain path: when write() said false), and resumes from the write callback (or
 *   'drain') that clears it; TCP flow control then reaches the sender. At most `MAX_LENT + 1`
 *   buffers per direction.
 * - Half-close (RFC 9293 section 3.6: a FIN closes one direction only): every stream is
 *   allowHalfOpen, and an 'end' from one side becomes end() on the other after its queued writes
 *   are flushed, while the other direction keeps flowing.
 * - Reset: an error, or a close before both directions ended cleanly, tears the other side down at
 *   once; a net.Socket is closed with RST (resetAndDestroy) so the peer sees what our side saw.
 * - Idle: setTimeout on one net.Socket of the pair. A socket's timer is refreshed by its reads and
 *   its writes, and every byte of either direction is read from or written to it, so one timer
 *   watches both directions (half the timer work per connection).
 * - Copies: none. Node cannot splice(2) between sockets; what is read is written as it is.
 */
import { Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { BufferPool, LARGE_BUFFER, SMALL_BUFFER } from './buffers.js';

export type PipeEnd = 'done' | 'reset' | 'idle' | 'aborted';

export interface PipeOptions {
  /** Both directions idle this long → close both. 0 disables. */
  readonly idleMs: number;
  /** Called once, after both streams closed. */
  readonly onClose?: (how: PipeEnd, error: Error | null) => void;
  /** Where read buffers come from and go back to; a private pool when absent. */
  readonly buffers?: BufferPool;
  /** Take the sockets over to read into reused buffers (default true; false: Readable.pipe). */
  readonly reuseBuffers?: boolean;
}

export interface PipeHandle {
  /** Tear both sides down now (stop, drain timeout); `reset` sends RST on net.Sockets. */
  close(reset?: boolean): void;
  readonly closed: boolean;
  /** Bytes moved from a to b and from b to a so far. */
  readonly bytesAtoB: number;
  readonly bytesBtoA: number;
  /** Both directions read into reused buffers (false: the Readable.pipe fallback). */
  readonly zeroAlloc: boolean;
}

/**
 * Writes a direction may have queued on lent buffers before it stops reading. More than one: the
 * next chunk is read while the kernel drains the previous one, and libuv writes the queued ones
 * in one go when the socket turns writable; fewer stop/start cycles of the reader.
 */
const MAX_LENT = 3;

/** Lets the stream keep its writable side open after the peer's FIN (net.Socket reads this flag). */
export function halfOpen(s: Duplex): void {
  (s as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = true;
}

/** RST for a connected TCP socket (not TLS: its handle cannot reset), a plain destroy otherwise. */
export function resetStream(s: Duplex): void {
  if (s.destroyed) return;
  if (s instanceof Socket && !('encrypted' in s) && !s.connecting) {
    try {
      s.resetAndDestroy();
    } catch {
      // Not a TCP handle (e.g. a pipe): fall through to destroy.
    }
  }
  if (!s.destroyed) s.destroy();
}

/** The parts of a libuv stream handle that adopt() relies on (net.Socket's `_handle`). */
interface StreamHandle {
  readStop(): number;
  readStart(): number;
  useUserBuffer(b: Uint8Array): void;
}

interface SocketInternals {
  _handle: StreamHandle | null;
  _readableState?: { ended?: boolean };
}

/** A plain TCP socket whose handle a pump can take over (not TLS, not ended, nothing queued). */
function adoptable(s: Duplex): s is Socket {
  if (!(s instanceof Socket) || 'encrypted' in s || s.connecting || s.destroyed) return false;
  const i = s as unknown as SocketInternals;
  const h = i._handle;
  if (h === null || typeof h.useUserBuffer !== 'function' || typeof h.readStop !== 'function') return false;
  // The handle delivers EOF once: a socket that already saw the FIN keeps it in its own state.
  if (i._readableState?.ended === true || s.readableEnded) return false;
  return s.writableLength === 0 && !s.writableEnded;
}

/**
 * One direction, src → dst, reading into owned buffers. `onread` is handed to the socket's
 * constructor; `link()` sets both ends before the first read.
 */
class Pump {
  readonly #pool: BufferPool;
  #cur: Buffer;
  #src: Socket | null = null;
  #dst: Duplex | null = null;
  /** Buffers lent to queued writes, with the write number each waits for (in write order). */
  readonly #lent: Buffer[] = [];
  readonly #lentAt: number[] = [];
  #issued = 0;
  #done = 0;
  #stalled = false;
  #closed = false;
  bytes = 0;
  readonly onread: { buffer: () => Buffer; callback: (n: number, buf: Buffer) => boolean };
  readonly #afterWrite = (): void => {
    this.#done++;
    while (this.#lentAt.length > 0 && this.#lentAt[0] <= this.#done) {
      this.#lentAt.shift();
      const b = this.#lent.shift()!;
      // After close a callback may come early (destroy errors the queued writes first): such a
      // buffer is dropped, never reused.
      if (!this.#closed) this.#pool.give(b);
    }
    if (this.#stalled && !this.#closed && this.#lent.length < MAX_LENT) {
      this.#stalled = false;
      this.#src?.resume();
    }
  };

  constructor(pool: BufferPool) {
    this.#pool = pool;
    this.#cur = pool.take(false);
    this.onread = { buffer: () => this.#cur, callback: (n, buf) => this.#onData(n, buf) };
  }

  /** Sets both ends; called again when the destination's socket was taken over. */
  link(src: Socket, dst: Duplex): void {
    this.#src = src;
    this.#dst = dst;
  }

  /** The source closed: no read comes any more, so the read buffer goes back. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pool.give(this.#cur);
  }

  #onData(n: number, buf: Buffer): boolean {
    const dst = this.#dst!;
    this.bytes += n;
    const size = buf.length;
    // The destination's own high-water mark (16 KiB for a socket) is below one read: the bound is
    // the number of buffers lent to its queue instead.
    dst.write(n === size ? buf : buf.subarray(0, n), this.#afterWrite);
    this.#issued++;
    // Grow on a full read of a small buffer (bulk), shrink on a short read of a large one.
    const large = size === LARGE_BUFFER ? n > SMALL_BUFFER : n === size;
    if (dst.writableLength !== 0) {
      this.#lent.push(buf);
      this.#lentAt.push(this.#issued);
      this.#cur = this.#pool.take(large);
    } else if (large !== (size === LARGE_BUFFER)) {
      this.#pool.give(buf);
      this.#cur = this.#pool.take(large);
    }
    if (this.#lent.length >= MAX_LENT) {
      this.#stalled = true;
      return false;
    }
    return true;
  }
}

/**
 * Moves the handle of `s` into a new net.Socket that reads through `pump.onread`. `new
 * net.Socket({ handle })` is how net.Server itself wraps an accepted handle (lib/net.js
 * onconnection, the same from Node 0.x to 24); the old object is destroyed without its handle,
 * which only releases the server's connection count. What the old socket had buffered is
 * returned, to be forwarded first. Null when the socket cannot be taken over; nothing changed then.
 */
function adopt(s: Socket, pump: Pump): { socket: Socket; held: Buffer[] } | null {
  const i = s as unknown as SocketInternals;
  const handle = i._handle;
  if (handle === null) return null;
  const held: Buffer[] = [];
  if (s.readableLength > 0) for (let c = s.read() as Buffer | null; c !== null; c = s.read() as Buffer | null) held.push(c);
  const giveBack = () => {
    for (let k = held.length - 1; k >= 0; k--) s.unshift(held[k]);
    return null;
  };
  // EOF was in what we drained: the new socket would never see it.
  if (i._readableState?.ended === true) return giveBack();
  let socket: Socket;
  try {
    socket = new Socket({
      handle,
      allowHalfOpen: true,
      pauseOnCreate: true,
      readable: true,
      writable: true,
      onread: pump.onread,
    } as ConstructorParameters<typeof Socket>[0]);
  } catch {
    return giveBack();
  }
  i._handle = null;
  s.destroy();
  return { socket, held };
}

/** A plain TCP socket: its write callback means the kernel has the bytes (TLS may still hold them). */
function plainSocket(s: Duplex): s is Socket {
  return s instanceof Socket && !('encrypted' in s) && !s.destroyed;
}

/**
 * A direction switches to reading into reused buffers once it has moved this much: a connection
 * that carries a request and a response never pays for the takeover (a socket object), a bulk
 * transfer pays once.
 */
const UPGRADE_AFTER = 64 * 1024;

/** One end of the pipe: the stream object in use (it changes when the socket is taken over). */
interface Side {
  s: Duplex;
  pump: Pump | null;
  /** Bytes read from this side before its pump took over. */
  moved: number;
  other: Side;
  readonly onData: (chunk: Buffer) => void;
  readonly onEnd: () => void;
  readonly onDrain: () => void;
  readonly onError: (err: Error) => void;
  readonly onClose: () => void;
  readonly onTimeout: () => void;
}

class Pipe implements PipeHandle {
  readonly #a: Side;
  readonly #b: Side;
  readonly #opts: PipeOptions;
  /** Null: this pipe never takes sockets over (not both plain TCP, or reuseBuffers: false). */
  readonly #pool: BufferPool | null;
  #how: PipeEnd | null = null;
  #firstError: Error | null = null;
  #open = 2;
  /** The side whose socket carries the idle timer (see the header: one socket watches both directions). */
  readonly #timed: Side | null;

  constructor(a: Duplex, b: Duplex, opts: PipeOptions) {
    this.#opts = opts;
    this.#pool = opts.reuseBuffers !== false && plainSocket(a) && plainSocket(b) ? (opts.buffers ?? new BufferPool({ maxSmall: 4, maxLarge: 4 })) : null;
    this.#a = this.#side(a);
    this.#b = this.#side(b);
    this.#a.other = this.#b;
    this.#b.other = this.#a;
    this.#timed = opts.idleMs <= 0 ? null : a instanceof Socket ? this.#a : b instanceof Socket ? this.#b : null;
    for (const side of [this.#a, this.#b]) {
      halfOpen(side.s);
      this.#listen(side);
    }
    this.#a.s.on('data', this.#a.onData);
    this.#b.s.on('data', this.#b.onData);
    this.#a.s.resume();
    this.#b.s.resume();
  }

  get closed(): boolean {
    return this.#open === 0;
  }

  get bytesAtoB(): number {
    return this.#a.moved + (this.#a.pump?.bytes ?? 0);
  }

  get bytesBtoA(): number {
    return this.#b.moved + (this.#b.pump?.bytes ?? 0);
  }

  get zeroAlloc(): boolean {
    return this.#a.pump !== null && this.#b.pump !== null;
  }

  close(reset = false): void {
    this.#finish('aborted', reset);
  }

  #side(s: Duplex): Side {
    const side: Side = {
      s,
      pump: null,
      moved: 0,
      other: undefined as unknown as Side,
      onData: (chunk) => {
        side.moved += chunk.length;
        const dst = side.other.s;
        if (!dst.write(chunk)) side.s.pause();
        if (this.#pool !== null && side.moved >= UPGRADE_AFTER) this.#upgrade(side);
      },
      // A FIN becomes a FIN on the other side, after what is queued there (RFC 9293 3.6).
      onEnd: () => side.other.s.end(),
      // This side (a destination) took what was queued: the other side may read again.
      onDrain: () => {
        if (side.other.s.isPaused() || side.other.pump !== null) side.other.s.resume();
      },
      onError: (err) => {
        this.#firstError ??= err;
        this.#finish('reset', true);
      },
      onClose: () => {
        side.pump?.close();
        // A side that closes without having read its peer's FIN and flushed all we wrote to it
        // was cut: reset (RFC 9293 3.10.7.1) rather than let the other side wait for bytes that won't come.
        if (this.#how === null && !(side.s.readableEnded && side.s.writableFinished)) this.#finish('aborted', true);
        if (--this.#open === 0) {
          this.#how ??= 'done';
          this.#opts.onClose?.(this.#how, this.#firstError);
        }
      },
      onTimeout: () => this.#finish('idle', false),
    };
    return side;
  }

  #listen(side: Side): void {
    const s = side.s;
    s.on('end', side.onEnd);
    s.on('drain', side.onDrain);
    s.on('error', side.onError);
    s.once('close', side.onClose);
    if (side === this.#timed && s instanceof Socket) {
      s.setTimeout(this.#opts.idleMs);
      s.on('timeout', side.onTimeout);
    }
  }

  #unlisten(side: Side): void {
    const s = side.s;
    s.off('data', side.onData);
    s.off('end', side.onEnd);
    s.off('drain', side.onDrain);
    s.off('error', side.onError);
    s.off('close', side.onClose);
    s.off('timeout', side.onTimeout);
  }

  /**
   * Takes `side`'s socket over so that it reads into reused buffers from now on. Only between
   * messages of the other direction (nothing queued for writing on it, or those bytes would go
   * with the old object) and before its FIN; otherwise the next chunk tries again.
   */
  #upgrade(side: Side): void {
    const old = side.s;
    if (this.#how !== null || side.pump !== null || !adoptable(old) || !plainSocket(side.other.s)) return;
    const pump = new Pump(this.#pool!);
    const wasPaused = old.isPaused();
    old.pause();
    this.#unlisten(side);
    const r = adopt(old, pump);
    if (r === null) {
      pump.close();
      this.#listen(side);
      old.on('data', side.onData);
      if (!wasPaused) old.resume();
      return;
    }
    side.s = r.socket;
    side.pump = pump;
    const dst = side.other.s;
    for (const c of r.held) {
      side.moved += c.length;
      dst.write(c);
    }
    pump.link(r.socket, dst);
    side.other.pump?.link(side.other.s, r.socket);
    this.#listen(side);
    // The other direction's pump writes to this side: point it at the new socket.
    if (!dst.writableNeedDrain) r.socket.resume();
  }

  #finish(h: PipeEnd, reset: boolean): void {
    if (this.#how !== null) return;
    this.#how = h;
    const a = this.#a.s;
    const b = this.#b.s;
    if (reset) {
      resetStream(a);
      resetStream(b);
    } else {
      a.destroy();
      b.destroy();
    }
  }
}

/** Joins `a` and `b`. Both must be fresh to flowing mode (paused or never read). */
export function pipeBoth(a: Duplex, b: Duplex, opts: PipeOptions): PipeHandle {
  return new Pipe(a, b, opts);
}

/**
 * Reads exactly `n` bytes from a paused stream without consuming more: what follows stays in the
 * stream's buffer for a later pipe(). Resolves null on end, close, error or timeout.
 */
export function readExactly(stream: Readable, n: number, timeoutMs: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (v: Buffer | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.off('readable', onReadable);
      stream.off('end', onGone);
      stream.off('close', onGone);
      stream.off('error', onGone);
      resolve(v);
    };
    const onGone = () => done(null);
    const onReadable = () => {
      const b = stream.read(n) as Buffer | null;
      if (b === null) return;
      // At end of stream read(n) returns what is left, possibly fewer bytes.
      done(b.length === n ? b : null);
    };
    const timer = setTimeout(onGone, timeoutMs);
    if (stream.destroyed || stream.readableEnded) {
      done(null);
      return;
    }
    stream.on('readable', onReadable);
    stream.once('end', onGone);
    stream.once('close', onGone);
    stream.once('error', onGone);
  });
}
