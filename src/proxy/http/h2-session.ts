/**
 * One HTTP/2 connection of a client (a node:http2 server session over the TLS socket): its
 * streams, each an exchange of the engine (h2-stream.ts), its timeouts, and its abuse guard.
 *
 * What node:http2 (nghttp2) bounds by itself is configured in h2-front.ts (concurrent streams,
 * header list size and pairs, invalid frames, refused streams, outstanding pings and settings,
 * session memory, CONTINUATION frames). What it does not bound per client, or bounds only loosely,
 * is counted here with token buckets, per session, and a session over a budget gets GOAWAY
 * (ENHANCE_YOUR_CALM, RFC 9113 section 7) and is closed, counted in
 * tandem_http2_abuse_total{service,kind}:
 *  - streams the client resets before their response (rapid reset, CVE-2023-44487): each costs
 *    tandem a route decision and maybe a backend or peer request, while it costs the client two
 *    frames; a reset stream that tandem had not even looked at yet costs only the count;
 *  - streams node:http2 refused before tandem saw them (too large a header list — HPACK bombs —,
 *    over the concurrency limit, malformed), found as the gap between the last stream id nghttp2
 *    processed and the streams that reached tandem;
 *  - SETTINGS and PING frames (each answered with an ACK: a flood costs writes; CVE-2019-9512/9515);
 *  - heads over the header list limit that node:http2 let through (sent before the client
 *    acknowledged SETTINGS_MAX_HEADER_LIST_SIZE: HPACK bombs right after the preface), each
 *    answered 431.
 * Timeouts (the service's, swept with its other limits): a stream whose request does not arrive
 * within requestMs is answered 408 (and counted); a session without streams is closed after
 * headerMs if it never completed a request, else after idleMs.
 */
import { constants, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Logger } from 'pino';
import { H2Stream, type H2StreamHost, type H2StreamOwner } from './h2-stream.js';
import type { H2AbuseKind, H2Metrics } from './h2-metrics.js';
import { ErrorCodes, TandemError } from '../../errors.js';

const { NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_CANCEL } = constants;
/** After GOAWAY for abuse: the connection ends when the GOAWAY is written, at the latest after this. */
const GOAWAY_GRACE_MS = 1000;

/** Per-session budgets: a burst, refilled at a rate per second (legitimate clients stay far below). */
export const BUDGETS = {
  /** Streams reset by the client before their response. */
  resets: { burst: 100, perSecond: 20 },
  /** Streams refused by node:http2 before tandem saw them. */
  refused: { burst: 50, perSecond: 5 },
  /** Heads over the header list limit (HPACK bombs sent before the SETTINGS ACK), each answered 431. */
  oversized: { burst: 10, perSecond: 1 },
  settings: { burst: 20, perSecond: 2 },
  pings: { burst: 20, perSecond: 2 },
} as const;

/** A response complete while the request body still comes: the stream is reset (NO_ERROR) after this. */
const LINGER_MS = 2000;

/** A token bucket; `now` in ms. */
class Budget {
  #tokens: number;
  #at: number;
  constructor(
    readonly burst: number,
    readonly perSecond: number,
    now: number,
  ) {
    this.#tokens = burst;
    this.#at = now;
  }

  /** Spends n; false when the budget is exhausted. */
  take(now: number, n = 1): boolean {
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) * this.perSecond) / 1000);
    this.#at = now;
    this.#tokens -= n;
    return this.#tokens >= 0;
  }
}

/** What a session needs of the front. */
export interface H2SessionFront {
  readonly host: H2StreamHost;
  readonly metrics: H2Metrics;
  readonly logger: Logger;
  readonly service: string;
  sessionClosed(s: H2Session): void;
}

export interface H2Timeouts {
  readonly headerMs: number;
  readonly requestMs: number;
  readonly idleMs: number;
}

export class H2Session implements H2StreamOwner {
  readonly session: ServerHttp2Session;
  readonly ip: string;
  readonly port: number;
  readonly #front: H2SessionFront;
  readonly #streams = new Set<H2Stream>();
  /** Client streams that reached tandem ('stream' events). */
  #seen = 0;
  /** Refused streams already counted against the budget. */
  #refusedSeen = 0;
  #lastActive: number;
  #hadStream = false;
  #over = false;
  readonly #resets: Budget;
  readonly #refused: Budget;
  readonly #settings: Budget;
  readonly #pings: Budget;
  readonly #oversized: Budget;

  constructor(front: H2SessionFront, session: ServerHttp2Session, ip: string, port: number) {
    this.#front = front;
    this.session = session;
    this.ip = ip;
    this.port = port;
    const now = front.host.now;
    this.#lastActive = now;
    this.#resets = new Budget(BUDGETS.resets.burst, BUDGETS.resets.perSecond, now);
    this.#refused = new Budget(BUDGETS.refused.burst, BUDGETS.refused.perSecond, now);
    // The client's first SETTINGS (the connection preface) is not a flood.
    this.#settings = new Budget(BUDGETS.settings.burst + 1, BUDGETS.settings.perSecond, now);
    this.#pings = new Budget(BUDGETS.pings.burst, BUDGETS.pings.perSecond, now);
    this.#oversized = new Budget(BUDGETS.oversized.burst, BUDGETS.oversized.perSecond, now);
    session.on('stream', this.#onStream);
    session.on('remoteSettings', this.#onSettings);
    session.on('ping', this.#onPing);
    session.on('error', this.#onError);
    session.on('frameError', noop);
    session.once('close', this.#onClose);
  }

  get streams(): number {
    return this.#streams.size;
  }

  readonly #onStream = (stream: ServerHttp2Stream, _headers: unknown, _flags: number, raw: string[]): void => {
    // First: a stream reset by the client is destroyed with an error, emitted a tick later.
    stream.on('error', noop);
    this.#seen++;
    const host = this.#front.host;
    this.#lastActive = host.now;
    this.#hadStream = true;
    // Reset already (HEADERS and RST_STREAM in one read): nothing to serve, but it counts.
    if (stream.destroyed || stream.closed) return this.clientReset();
    if (this.#over) return void stream.close(constants.NGHTTP2_REFUSED_STREAM);
    const s = new H2Stream(host, this, stream, raw, this.ip, this.port);
    this.#streams.add(s);
  };

  readonly #onSettings = (): void => {
    if (!this.#settings.take(this.#front.host.now)) this.#abuse('settings-flood');
  };

  readonly #onPing = (): void => {
    if (!this.#pings.take(this.#front.host.now)) this.#abuse('ping-flood');
  };

  readonly #onError = (err: Error & { code?: string; errno?: number }): void => {
    // nghttp2 ended the session on the client's input: a flood it detected, or a protocol error.
    if (this.#over) return;
    const kind: H2AbuseKind | null = classifySessionError(err);
    if (kind !== null) this.#front.metrics.abuse(kind);
    this.#front.logger.debug({ service: this.#front.service, client: this.ip, code: err.code, err: err.message }, 'http2 session error');
  };

  readonly #onClose = (): void => {
    this.#over = true;
    for (const s of this.#streams) if (!s.ex.done) s.ex.clientGone();
    this.#streams.clear();
    this.#front.sessionClosed(this);
  };

  // ---- H2StreamOwner -----------------------------------------------------------------------

  streamClosed(s: H2Stream): void {
    this.#streams.delete(s);
    this.#lastActive = this.#front.host.now;
  }

  clientReset(): void {
    if (!this.#resets.take(this.#front.host.now)) this.#abuse('rapid-reset');
  }

  oversized(): void {
    if (!this.#oversized.take(this.#front.host.now)) this.#abuse('oversized-headers');
  }

  // ---- limits ------------------------------------------------------------------------------

  /** The abuser gets GOAWAY (ENHANCE_YOUR_CALM) and the connection ends; others are not touched. */
  #abuse(kind: H2AbuseKind): void {
    if (this.#over) return;
    this.#over = true;
    this.#front.metrics.abuse(kind);
    this.#front.logger.debug({ service: this.#front.service, client: this.ip, kind }, 'http2 session closed for abuse');
    // GOAWAY, the open streams reset, and a graceful close, which node:http2 completes once what
    // is pending (the GOAWAY) is written: destroyed at once — these handlers run inside nghttp2's
    // read of the flood — the session would drop the GOAWAY with its other pending frames. A
    // client that does not read is cut after GOAWAY_GRACE_MS.
    const session = this.session;
    session.goaway(NGHTTP2_ENHANCE_YOUR_CALM);
    for (const s of this.#streams) s.close(NGHTTP2_CANCEL);
    session.close();
    const hard = setTimeout(() => {
      // An error, or node:http2 reads the code as the error (destroy(error = NO_ERROR, code)).
      session.destroy(new TandemError(ErrorCodes.LIMIT_EXCEEDED, `http2 ${kind}`), NGHTTP2_ENHANCE_YOUR_CALM);
    }, GOAWAY_GRACE_MS);
    hard.unref();
    session.once('close', () => clearTimeout(hard));
  }

  /** Graceful end (the node drains): GOAWAY, the open streams finish. */
  close(): void {
    if (this.session.closed || this.session.destroyed) return;
    this.session.close();
  }

  destroy(): void {
    this.#over = true;
    this.session.destroy();
  }

  sweep(now: number, t: H2Timeouts): void {
    if (this.#over || this.session.destroyed) return;
    // Streams nghttp2 refused before 'stream' (client streams have odd ids: the count is (id + 1) / 2).
    const last = this.session.state.lastProcStreamID ?? 0;
    const refused = ((last + 1) >>> 1) - this.#seen;
    if (refused > this.#refusedSeen) {
      const n = refused - this.#refusedSeen;
      this.#refusedSeen = refused;
      if (!this.#refused.take(now, n)) return this.#abuse('refused-streams');
    }
    for (const s of this.#streams) {
      const ex = s.ex;
      if (!ex.bodyEnded && !ex.done && now - ex.startedAt >= t.requestMs) {
        this.#front.metrics.abuse('stream-timeout');
        s.timeout();
      } else if (s.overAt !== 0 && now - s.overAt >= LINGER_MS) s.close();
    }
    if (this.#streams.size === 0 && now - this.#lastActive >= (this.#hadStream ? t.idleMs : t.headerMs)) this.destroy();
  }
}

/** nghttp2's verdicts on a client's input (nghttp2.h error codes), as abuse kinds; null when not the client's doing. */
export function classifySessionError(err: { code?: string; errno?: number }): H2AbuseKind | null {
  // node:http2's own bound (maxSessionInvalidFrames).
  if (err.code === 'ERR_HTTP2_TOO_MANY_INVALID_FRAMES') return 'protocol-error';
  if (err.code !== 'ERR_HTTP2_ERROR') return null;
  switch (err.errno) {
    case -902: // NGHTTP2_ERR_CALLBACK_FAILURE: node:http2 refused more streams than maxSessionRejectedStreams
      return 'refused-streams';
    case -904: // NGHTTP2_ERR_FLOODED
      return 'flood';
    case -905: // NGHTTP2_ERR_TOO_MANY_CONTINUATIONS (nghttp2 1.61, CVE-2024-27316 class)
      return 'continuation-flood';
    default:
      return 'protocol-error';
  }
}

function noop(): void {}
