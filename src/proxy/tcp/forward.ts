/**
 * Forwarding a client connection to an owner over the data plane (DESIGN.md section 1, steps 4-5).
 *
 * The exchange on a data-plane stream of channel 'tcp':
 *   ingress → owner   the authenticated header (stream-header.ts)
 *   owner → ingress   one status byte, sent after the owner has connected to the backend
 *   then both ways    the client's bytes, untouched
 * The ingress node sends no client byte before the status, so a failed hop has consumed nothing
 * and the next hop gets the connection whole (the client socket stays paused meanwhile; its early
 * bytes wait in the kernel). That is what makes failover at connect time safe for any protocol.
 */
import type { Duplex } from 'node:stream';
import type { PeerPool } from './peer-pool.js';
import { halfOpen, readExactly } from './pipe.js';

/** The owner's answer. Values are on the wire: never renumber. */
export const ForwardStatus = {
  OK: 0,
  NO_BACKEND: 1,
  BACKEND_FAILED: 2,
  BACKEND_TIMEOUT: 3,
  LIMIT: 4,
  DRAINING: 5,
  UNKNOWN_SERVICE: 6,
} as const;
export type ForwardStatusCode = (typeof ForwardStatus)[keyof typeof ForwardStatus];

export type ForwardFailure =
  | 'unavailable'
  | 'no_backend'
  | 'backend_failed'
  | 'backend_timeout'
  | 'limit'
  | 'draining'
  | 'unknown_service';

export type ForwardResult =
  | { readonly ok: true; readonly stream: Duplex }
  | {
      readonly ok: false;
      readonly reason: ForwardFailure;
      /** Worth trying the next owner: the failure is the node's, not the backend's. */
      readonly next: boolean;
      /** The peer did not answer at all: tell membership (DataPlane.markSuspect). */
      readonly suspect: boolean;
    };

const noop = () => {};

function failure(status: number): ForwardResult {
  switch (status) {
    case ForwardStatus.NO_BACKEND:
      return { ok: false, reason: 'no_backend', next: false, suspect: false };
    case ForwardStatus.BACKEND_FAILED:
      return { ok: false, reason: 'backend_failed', next: false, suspect: false };
    case ForwardStatus.BACKEND_TIMEOUT:
      return { ok: false, reason: 'backend_timeout', next: false, suspect: false };
    case ForwardStatus.LIMIT:
      return { ok: false, reason: 'limit', next: true, suspect: false };
    case ForwardStatus.DRAINING:
      return { ok: false, reason: 'draining', next: true, suspect: false };
    case ForwardStatus.UNKNOWN_SERVICE:
      return { ok: false, reason: 'unknown_service', next: true, suspect: false };
    default:
      return { ok: false, reason: 'unavailable', next: true, suspect: true };
  }
}

/** How often a forward waiting for its status checks whether membership declared the peer dead. */
const DEAD_POLL_MS = 50;

/**
 * Sends the header and waits for the status; null when the stream failed before answering. A peer
 * that hangs (stopped process, lost host: no RST comes) would hold the client until the timeout;
 * once membership declares it dead (failureTimeoutMs), the wait is cut short so the client goes
 * to the next owner.
 */
async function exchange(stream: Duplex, header: Buffer, timeoutMs: number, isDead: () => boolean): Promise<number | null> {
  halfOpen(stream);
  // Errors are handled by the pipe later; until then a reset must not crash the process.
  stream.on('error', noop);
  if (stream.destroyed || !stream.writable) return null;
  stream.write(header);
  const watch = setInterval(() => {
    if (isDead()) stream.destroy();
  }, DEAD_POLL_MS);
  try {
    const b = await readExactly(stream, 1, timeoutMs);
    return b === null ? null : b[0]!;
  } finally {
    clearInterval(watch);
  }
}

/**
 * Forwards to `peer`. `makeHeader` is called per attempt: each attempt needs a fresh nonce, since
 * the owner may have recorded the first one before the stream broke. A pooled stream that fails
 * before answering may simply be stale (the peer restarted), so it is retried once on a fresh
 * dial before the peer is called unavailable.
 */
export async function forwardToPeer(
  pool: PeerPool,
  peer: string,
  makeHeader: () => Buffer,
  timeoutMs: number,
  isDead: () => boolean = () => false,
): Promise<ForwardResult> {
  let pooled: boolean;
  let stream: Duplex;
  try {
    ({ stream, pooled } = await pool.take(peer));
  } catch {
    return failure(-1);
  }
  for (;;) {
    const status = await exchange(stream, makeHeader(), timeoutMs, isDead);
    if (status === ForwardStatus.OK) return { ok: true, stream };
    stream.destroy();
    if (status !== null || !pooled || isDead()) return failure(status ?? -1);
    pooled = false;
    try {
      stream = await pool.dial(peer);
    } catch {
      return failure(-1);
    }
  }
}
