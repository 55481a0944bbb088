/**
 * Forwarding a client connection to an owner over the data plane (docs/design.md, the routing
 * rule, steps 4-5): the peer attempt of the TCP service, run by the shared hop loop (hops.ts).
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
import { stop, tryNext, type Attempt, type AttemptResult } from '../hops.js';
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

/** Why a TCP connection could not be served: the metric label vocabulary shared by all protocols. */
export type TcpFailure =
  | 'unavailable'
  | 'no-backend'
  | 'backend-failed'
  | 'backend-timeout'
  | 'limit'
  | 'draining'
  | 'unknown-service';

export type TcpAttemptFailure = Extract<AttemptResult<TcpFailure>, { ok: false }>;
export type PeerForward = { readonly ok: true; readonly stream: Duplex } | TcpAttemptFailure;

const fail = (r: AttemptResult<TcpFailure>) => Object.freeze(r) as TcpAttemptFailure;
/** The results, made once: a refused forward allocates nothing for its verdict. */
const NO_ANSWER = fail(tryNext('unavailable', true));
const ABORTED = fail(tryNext('unavailable', false));
const BY_STATUS: Readonly<Record<number, TcpAttemptFailure>> = {
  // The backend's problem: the next owner would use the same backend.
  [ForwardStatus.NO_BACKEND]: fail(stop('no-backend')),
  [ForwardStatus.BACKEND_FAILED]: fail(stop('backend-failed')),
  [ForwardStatus.BACKEND_TIMEOUT]: fail(stop('backend-timeout')),
  // The node's problem: another owner may take it.
  [ForwardStatus.LIMIT]: fail(tryNext('limit', false)),
  [ForwardStatus.DRAINING]: fail(tryNext('draining', false)),
  [ForwardStatus.UNKNOWN_SERVICE]: fail(tryNext('unknown-service', false)),
};

/** What an owner's status byte means for the ingress node (tests and the owner side use it too). */
export function statusResult(status: number | null): TcpAttemptFailure {
  return (status === null ? undefined : BY_STATUS[status]) ?? NO_ANSWER;
}

const noop = () => {};

/** Sends the header and waits for the status; null when the stream failed before answering. */
async function exchange(stream: Duplex, header: Buffer, timeoutMs: number): Promise<number | null> {
  halfOpen(stream);
  // Errors are handled by the pipe later; until then a reset must not crash the process.
  stream.on('error', noop);
  if (stream.destroyed || !stream.writable) return null;
  stream.write(header);
  const b = await readExactly(stream, 1, timeoutMs);
  return b === null ? null : b[0];
}

/**
 * The peer attempt: forwards to `a.node`. `makeHeader` is called per try: each needs a fresh
 * nonce, since the owner may have recorded the first one before the stream broke. A pooled stream
 * that fails before answering may simply be stale (the peer restarted), so it is retried once on
 * a fresh dial before the peer is called unavailable.
 *
 * A peer that hangs (stopped process, lost host: no RST comes) would hold the client until the
 * status timeout; `a.onAbort` — called by the loop when membership declares the peer dead — cuts
 * the dial or the wait short, so the client goes to the next owner at once.
 */
export async function forwardToPeer(pool: PeerPool, a: Attempt, makeHeader: () => Buffer, timeoutMs: number): Promise<PeerForward> {
  const peer = a.node;
  let aborted = false;
  let current: Duplex | null = null;
  let wake: (() => void) | null = null;
  a.onAbort = () => {
    aborted = true;
    current?.destroy();
    wake?.();
  };
  try {
    let pooled = false;
    let stream: Duplex | null = await untilAbort(
      pool.take(peer).then((t) => ((pooled = t.pooled), t.stream)),
      (w) => (wake = w),
      () => aborted,
    );
    for (;;) {
      if (stream === null) return aborted ? ABORTED : NO_ANSWER;
      current = stream;
      const status = await exchange(stream, makeHeader(), timeoutMs);
      if (status === ForwardStatus.OK && !aborted) return { ok: true, stream };
      stream.destroy();
      current = null;
      if (aborted) return ABORTED;
      if (status !== null || !pooled) return statusResult(status);
      pooled = false;
      stream = await untilAbort(pool.dial(peer), (w) => (wake = w), () => aborted);
    }
  } finally {
    a.onAbort = null;
  }
}

/**
 * The stream of `p`, or null when it fails or the attempt is aborted first (a stream that
 * arrives after the abort is closed).
 */
function untilAbort(p: Promise<Duplex>, setWake: (w: () => void) => void, isAborted: () => boolean): Promise<Duplex | null> {
  if (isAborted()) {
    p.then((s) => s.destroy(), noop);
    return Promise.resolve(null);
  }
  return new Promise((resolve) => {
    let settled = false;
    setWake(() => {
      if (settled) return;
      settled = true;
      resolve(null);
    });
    p.then(
      (s) => {
        if (settled) return void s.destroy();
        settled = true;
        resolve(s);
      },
      () => {
        if (settled) return;
        settled = true;
        resolve(null);
      },
    );
  });
}
