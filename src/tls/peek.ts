/**
 * Reading a connection's first bytes before deciding what to do with it (which certificate and
 * ticket keys a TLS handshake needs, which flow a passthrough connection belongs to), without
 * consuming them: once the reader has what it needs, reading stops and every byte read is put back
 * with `socket.unshift()`, so whoever takes the socket next (node:tls, or a pipe to a backend)
 * sees the stream from its first byte, untouched.
 */
import type { Socket } from 'node:net';

export type PeekOutcome = 'complete' | 'timeout' | 'closed';

/**
 * Feeds `socket`'s data to `feed` until it returns true (it has enough), `timeoutMs` passes, or the
 * socket closes; then calls `done` once. On 'complete' and 'timeout' the socket is paused with
 * `buffered()` (all bytes fed so far) unshifted; on 'closed' it is destroyed.
 */
export function peekFirstBytes(
  socket: Socket,
  feed: (chunk: Buffer) => boolean,
  buffered: () => Buffer,
  timeoutMs: number,
  done: (outcome: PeekOutcome) => void,
): void {
  let finished = false;
  const finish = (outcome: PeekOutcome): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.removeListener('data', onData);
    socket.removeListener('end', onGone);
    socket.removeListener('close', onGone);
    socket.removeListener('error', onGone);
    if (outcome === 'closed') socket.destroy();
    else {
      socket.pause();
      const head = buffered();
      if (head.length > 0) socket.unshift(head);
    }
    done(outcome);
  };
  const onData = (chunk: Buffer): void => {
    if (feed(chunk)) finish('complete');
  };
  const onGone = (): void => finish('closed');
  const timer = setTimeout(() => finish('timeout'), timeoutMs);
  socket.on('data', onData);
  socket.once('end', onGone);
  socket.once('close', onGone);
  socket.once('error', onGone);
}
