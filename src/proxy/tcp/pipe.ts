/**
 * The byte mover of the TCP service: two duplex streams joined both ways.
 *
 * - Backpressure: Readable.pipe pauses the source when the destination's buffer is full and resumes
 *   it on 'drain'; a slow reader on one side stops reading from the other side's socket, so TCP
 *   flow control reaches the fast sender.
 * - Half-close (RFC 9293 section 3.6: a FIN closes one direction only): every stream is
 *   allowHalfOpen, and an 'end' from one side becomes end() on the other *after* its queued writes
 *   are flushed (that is what pipe's end does), while the other direction keeps flowing.
 * - Reset: an error, or a close before both directions ended cleanly, tears the other side down at
 *   once; a net.Socket is closed with RST (resetAndDestroy) so the peer sees what our side saw.
 * - Idle: setTimeout on the net.Sockets of the pair. A socket's timer is refreshed by reads and by
 *   writes, so one net.Socket in the pair already watches both directions.
 * - Copies: none of ours. Node cannot splice(2) between sockets; the Buffers read from one socket
 *   are handed to the other's write as they are, and nothing here allocates per chunk.
 */
import { Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';

export type PipeEnd = 'done' | 'reset' | 'idle' | 'aborted';

export interface PipeOptions {
  /** Both directions idle this long → close both. 0 disables. */
  readonly idleMs: number;
  /** Called once, after both streams closed. */
  readonly onClose?: (how: PipeEnd, error: Error | null) => void;
}

export interface PipeHandle {
  /** Tear both sides down now (stop, drain timeout); `reset` sends RST on net.Sockets. */
  close(reset?: boolean): void;
  readonly closed: boolean;
}

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

function setIdle(s: Duplex, ms: number, onIdle: () => void): void {
  if (ms > 0 && s instanceof Socket) {
    s.setTimeout(ms);
    s.on('timeout', onIdle);
  }
}

/** Joins `a` and `b`. Both must be fresh to flowing mode (paused or never read). */
export function pipeBoth(a: Duplex, b: Duplex, opts: PipeOptions): PipeHandle {
  let how: PipeEnd | null = null;
  let firstError: Error | null = null;
  let open = 2;
  const finish = (h: PipeEnd, reset: boolean) => {
    if (how !== null) return;
    how = h;
    if (reset) {
      resetStream(a);
      resetStream(b);
    } else {
      a.destroy();
      b.destroy();
    }
  };
  // A side that closes without having read its peer's FIN and flushed all we wrote to it was cut:
  // reset (RFC 9293 3.10.7.1 semantics) rather than let the other side wait for bytes that won't come.
  const clean = (s: Duplex) => s.readableEnded && s.writableFinished;
  const watch = (s: Duplex) => {
    s.on('error', (err: Error) => {
      firstError ??= err;
      finish('reset', true);
    });
    s.once('close', () => {
      if (how === null && !clean(s)) finish('aborted', true);
      if (--open === 0) {
        how ??= 'done';
        opts.onClose?.(how, firstError);
      }
    });
  };
  halfOpen(a);
  halfOpen(b);
  watch(a);
  watch(b);
  const onIdle = () => finish('idle', false);
  setIdle(a, opts.idleMs, onIdle);
  setIdle(b, opts.idleMs, onIdle);
  a.pipe(b);
  b.pipe(a);
  return {
    close(reset = false) {
      finish('aborted', reset);
    },
    get closed() {
      return open === 0;
    },
  };
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
