/**
 * One request on its way through this node, between the side it came from (the "downstream": a
 * client connection, or at an owner the peer stream it arrived on) and the hop serving it (the
 * "upstream": a pooled backend connection, or a peer stream to the owner).
 *
 * The request body flows downstream → exchange → upstream with back-pressure both ways: bytes that
 * arrive before an upstream is attached are held (the source paused past a high-water mark), and
 * the first 64 KB stay held after they were sent, so that a failed attempt can send them again to
 * the next hop (`replayable`). The response flows upstream → exchange → downstream as bytes ready
 * for the client: the upstream wrote its head and framing already.
 *
 * The same object serves every attempt of a request (primary, then backup, …).
 */
import type { FlowEntry } from '../../cluster/flow-entry.js';
import type { BackendState, UpstreamPool } from '../../upstream/pool.js';
import { Body, isIdempotent, type RequestHead } from './head.js';
import { errorBytes, errorStatus, type HttpErrorKind } from './errors.js';
import { challengeBytes, rateLimitedBytes, redirectBytes } from './answers.js';
import type { ServedBy } from './metrics.js';
import type { Lane } from './routing.js';

/** Body bytes kept for a replay to the next hop; bodies of known length up to this wait whole before a peer forward. */
export const REPLAY_BODY_MAX = 64 * 1024;
/** Body bytes held (not yet taken by an upstream) before the source is paused. */
const HOLD_HWM = 64 * 1024;

/** The side a request came from, and where its response goes. */
export interface Downstream {
  /** Responses end the client connection (the node is draining). */
  readonly draining: boolean;
  cork(): void;
  uncork(): void;
  /** Writes `100 Continue` (the client connection only; a peer stream's ingress answered it). */
  sendContinue(): void;
  /** The response head (already the client's text, '' when the bytes that follow carry it); `close`: the connection ends after this response. */
  head(text: string, status: number, close: boolean): void;
  /** False: wait for the exchange's `downstreamDrained()`. */
  write(chunk: Buffer | string): boolean;
  /** The response is complete. */
  end(ex: Exchange, close: boolean): void;
  /** A complete response in one buffer (tandem's own error responses). */
  whole(ex: Exchange, bytes: Buffer, close: boolean): void;
  /** The response was cut short: the client must see the truncation. */
  cut(ex: Exchange): void;
  pauseBody(): void;
  resumeBody(): void;
}

/** The hop a request is being sent to. */
export interface Upstream {
  /** A body chunk (the upstream frames it); false: wait for the exchange's `upstreamDrained()`. */
  writeBody(chunk: Buffer): boolean;
  endBody(): void;
  /** The downstream can take more response bytes. */
  resumeResponse(): void;
  /** The client went away, or the exchange gave the attempt up: stop and release. */
  abort(): void;
}

/** What an exchange tells the node's service. */
export interface ExchangeHost {
  /** A new exchange (drain waits for every started one to finish). */
  started(ex: Exchange): void;
  /** The exchange ended (response complete, cut, failed or client gone). Called exactly once. */
  finished(ex: Exchange): void;
  /** An error response was written by tandem (metrics). */
  answeredError(kind: HttpErrorKind): void;
}

export class Exchange {
  readonly host: ExchangeHost;
  readonly down: Downstream;
  readonly fromPeer: boolean;
  readonly startedAt: number;
  method = '';
  url = '';
  /** The request's version as received, for Via (`1.0` / `1.1`). */
  version = '1.1';
  /** The client spoke HTTP/1.0: no chunked framing toward it, keep-alive only when it asked. */
  http10 = false;
  /** The client wants the connection closed after this response (Connection: close, or HTTP/1.0 without keep-alive). */
  closeWanted = false;
  /** Entries appended to the response's Via, in response order (this node; at an owner, then the ingress). */
  via = '';
  /** Set when the request is refused before routing (bad head, parse error): answered in its turn. */
  reject: HttpErrorKind | null = null;
  head!: RequestHead;
  /** The rewritten request head for the next hop (request line, fields, Via…, framing). */
  text = '';
  body: Body = Body.NONE;
  upgrade = false;
  key = '';
  /** The route the request goes by (routing.ts): its flows, pool and header rules. */
  lane: Lane | null = null;
  /** Set when the ingress answers itself: the 30x's Location, or a 429's Retry-After seconds. */
  location: string | null = null;
  /** An ACME HTTP-01 key authorization this node answers with itself (service.ts). */
  challenge: string | null = null;
  retryAfterS = 0;
  entry!: FlowEntry;
  clientIp = '';
  clientPort = 0;
  /** At an owner: the node that received the request from the client. */
  ingress = '';
  // -- routing and serving state, for metrics and the access log
  servedBy: ServedBy = 'local';
  backend: BackendState | undefined = undefined;
  backendPool: UpstreamPool | undefined = undefined;
  failovers = 0;
  // -- request body
  #held: Buffer[] = [];
  #heldBytes = 0;
  /** Body bytes received so far. */
  bodyBytes = 0;
  /** Body bytes given to an upstream and no longer held: the body cannot be sent again. */
  #dropped = false;
  bodyEnded = false;
  #paused = false;
  #up: Upstream | null = null;
  /** After the response: the rest of the body is read and dropped. */
  #discard = false;
  #continued = false;
  // -- response
  status = 0;
  /** The response head (or a whole error response) went to the downstream: no retry, no error response any more. */
  responded = false;
  done = false;
  /** The client went away. */
  gone = false;

  constructor(host: ExchangeHost, down: Downstream, fromPeer: boolean, startedAt: number) {
    this.host = host;
    this.down = down;
    this.fromPeer = fromPeer;
    this.startedAt = startedAt;
    host.started(this);
  }

  /** Whether the body can be sent again to another hop: none, or every byte of it still held. */
  get replayable(): boolean {
    return !this.#dropped;
  }

  /** Retry rule (RFC 9110 section 9.2.2): after the request may have reached the hop, only idempotent and replayable. */
  mayRetry(sent: boolean): boolean {
    return this.replayable && (!sent || isIdempotent(this.method));
  }

  /** A body of known length small enough to be read whole before a peer forward. */
  get waitsWholeBody(): boolean {
    return this.body === Body.LENGTH && !this.bodyEnded && this.head.contentLength <= REPLAY_BODY_MAX;
  }

  // ---- request body, from the downstream's parser ---------------------------------------------

  pushBody(chunk: Buffer): void {
    this.bodyBytes += chunk.length;
    if (this.#discard || this.done) return;
    const up = this.#up;
    if (!this.#dropped) {
      if (this.#heldBytes + chunk.length <= REPLAY_BODY_MAX || up === null) {
        this.#held.push(chunk);
        this.#heldBytes += chunk.length;
      } else this.#drop();
    }
    if (up !== null) {
      if (!up.writeBody(chunk)) this.#pause();
    } else if (this.#heldBytes > HOLD_HWM) this.#pause();
  }

  endBody(): void {
    this.bodyEnded = true;
    if (this.#discard || this.done) return;
    this.#up?.endBody();
    this.#wake();
  }

  /** Whether the connection ends after this response (the client asked, or the node drains). */
  get mustClose(): boolean {
    return this.closeWanted || this.down.draining;
  }

  /** Calls `then` once the whole body is held, or the exchange ended meanwhile (then check `done`). */
  whenBodyHeld(then: () => void): void {
    if (this.bodyEnded || this.done) return then();
    this.wantBody();
    this.#bodyWaiter = then;
    this.#resume();
  }
  #bodyWaiter: (() => void) | null = null;

  #wake(): void {
    const w = this.#bodyWaiter;
    if (w === null) return;
    this.#bodyWaiter = null;
    w();
  }

  /** The body is wanted now: `100 Continue` for a client that waits for it (RFC 9110 section 10.1.1), once. */
  wantBody(): void {
    if (this.head.expectContinue && !this.#continued && !this.bodyEnded) {
      this.#continued = true;
      this.down.sendContinue();
    }
  }

  /** Sends what is held, then streams the rest to `up`. */
  attach(up: Upstream): void {
    this.#up = up;
    this.wantBody();
    let ok = true;
    for (let i = 0; i < this.#held.length; i++) ok = up.writeBody(this.#held[i]) && ok;
    if (this.#heldBytes > REPLAY_BODY_MAX) this.#drop();
    if (this.bodyEnded) up.endBody();
    if (ok) this.#resume();
    else this.#pause();
  }

  /** The attempt is over (failed before any response byte): the upstream lets go. */
  detach(up: Upstream): void {
    if (this.#up === up) this.#up = null;
  }

  /** The upstream can take more body bytes. */
  upstreamDrained(): void {
    this.#resume();
  }

  #drop(): void {
    this.#dropped = true;
    this.#held = [];
    this.#heldBytes = 0;
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.down.pauseBody();
  }

  #resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.down.resumeBody();
  }

  // ---- response, from the upstream -----------------------------------------------------------
  // An upstream calls detach(this) before respondEnd/respondCut/fail, so that no abort comes back.

  /** The response head for the client; from now on no retry and no error response. */
  respondHead(text: string, status: number, close: boolean): void {
    if (this.done) return;
    this.status = status;
    this.responded = true;
    this.#held = [];
    this.#heldBytes = 0;
    this.down.head(text, status, close);
  }

  /** The response starts with bytes already framed for the client (a peer relayed them): no head to write here. */
  respondStarted(status: number, close: boolean): void {
    this.respondHead('', status, close);
  }

  respondData(chunk: Buffer | string): boolean {
    if (this.done) return true;
    return this.down.write(chunk);
  }

  /** The response is complete. */
  respondEnd(close: boolean): void {
    if (this.done) return;
    this.#upDone();
    this.down.end(this, close);
    this.#finish();
  }

  /** The response was cut short (upstream failed mid-response). */
  respondCut(): void {
    if (this.done) return;
    this.#upDone();
    this.down.cut(this);
    this.#finish();
  }

  /** The client-side connection can take more. */
  downstreamDrained(): void {
    this.#up?.resumeResponse();
  }

  /** Answers with a tandem error (or cuts, when a response already started) and ends the exchange. */
  fail(kind: HttpErrorKind): void {
    if (this.done) return;
    if (this.responded) return this.respondCut();
    this.#upDone();
    this.status = errorStatus(kind);
    this.host.answeredError(kind);
    if (!this.gone) {
      // An unread body leaves the connection in doubt: it ends after this answer.
      const close = !this.bodyEnded || this.mustClose || this.http10;
      this.responded = true;
      this.down.whole(this, kind === 'rate-limited' ? rateLimitedBytes(this.retryAfterS, close) : errorBytes(kind, close), close);
    }
    this.#finish();
  }

  /** Answers with the exchange's redirect (ex.location) and ends the exchange: nothing is proxied. */
  redirect(status: number): void {
    if (this.done || this.location === null) return;
    this.#upDone();
    this.status = status;
    if (!this.gone) {
      const close = !this.bodyEnded || this.mustClose || this.http10;
      this.responded = true;
      this.down.whole(this, redirectBytes(status, this.location, close), close);
    }
    this.#finish();
  }

  /** Answers with the exchange's ACME key authorization (ex.challenge) and ends the exchange. */
  answerChallenge(): void {
    if (this.done || this.challenge === null) return;
    this.#upDone();
    this.status = 200;
    if (!this.gone) {
      const close = !this.bodyEnded || this.mustClose || this.http10;
      this.responded = true;
      this.down.whole(this, challengeBytes(this.challenge, this.method === 'HEAD', close), close);
    }
    this.#finish();
  }

  /** An upgrade's tunnel is up: the connection is no longer HTTP, the exchange ends without a response of its own. */
  handedOver(status: number): void {
    if (this.done) return;
    this.status = status;
    this.responded = true;
    this.#up = null;
    this.#held = [];
    this.#heldBytes = 0;
    this.#finish();
  }

  /** The client went away (its connection closed): whatever is under way stops. */
  clientGone(): void {
    if (this.done) return;
    this.gone = true;
    this.#upDone();
    this.#finish();
  }

  /** Stops the upstream (if still attached) and the body. */
  #upDone(): void {
    const up = this.#up;
    this.#up = null;
    this.#discard = true;
    this.#held = [];
    this.#heldBytes = 0;
    this.#resume();
    up?.abort();
  }

  #finish(): void {
    if (this.done) return;
    this.done = true;
    this.#discard = true;
    this.host.finished(this);
    this.#wake();
  }
}
