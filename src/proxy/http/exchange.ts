/**
 * One client request on its way through this node: its routing state (key, entry, hops tried)
 * and the undici dispatch handler that relays the upstream's response to the client as it comes
 * (no buffering: headers, then each chunk with back-pressure both ways).
 *
 * The same object serves every attempt of a request (primary, then backup, ...). The legacy undici
 * handler methods are used on purpose: they hand over raw header buffers without the parse into an
 * object that the newer controller API does, which matters at tens of thousands of requests/s.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Hop } from '../../cluster/router.js';
import type { FlowEntry } from '../../cluster/flow-entry.js';
import type { BackendState, UpstreamPool } from '../../upstream/pool.js';
import { responseHeaders, type RequestHead } from './headers.js';
import type { ServedBy } from './metrics.js';
import { StreamedBody } from './body.js';

/** What an exchange reports back to its proxy. */
export interface ExchangeOwner {
  readonly draining: boolean;
  /** The attempt failed before any response byte was relayed. Called on a later tick, never inside dispatch(). */
  attemptFailed(ex: Exchange, err: Error): void;
  /** The exchange ended (response complete, cut, or client gone). Called exactly once. */
  finished(ex: Exchange): void;
}

export type Body = null | Buffer | StreamedBody;

const UNSET = Symbol('unset');

export class Exchange {
  readonly owner: ExchangeOwner;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly fromPeer: boolean;
  readonly startedAt: number;
  head!: RequestHead;
  key = '';
  entry!: FlowEntry;
  clientIp = '';
  clientPort = 0;
  /** `UNSET` until the first attempt decides between none, buffered and streamed. */
  body: Body | typeof UNSET = UNSET;
  hops: Hop[] = [];
  hopIdx = 0;
  reowned = false;
  /** Peers that failed for this request: never tried twice. */
  tried: string[] | null = null;
  servedBy: ServedBy = 'local';
  /** Target of the current attempt: a peer id, or null for the backend. */
  peer: string | null = null;
  backend: BackendState | undefined = undefined;
  backendPool: UpstreamPool | undefined = undefined;
  /** This node's Via entry for the response. */
  via = '';
  status = 0;
  /** Request bytes went to the current upstream (undici called onConnect). */
  sent = false;
  /** Response headers were written to the client: no retry, no error response any more. */
  responded = false;
  done = false;
  clientGone = false;
  #abort: ((err?: Error) => void) | null = null;
  #resume: (() => void) | null = null;

  constructor(owner: ExchangeOwner, req: IncomingMessage, res: ServerResponse, fromPeer: boolean, startedAt: number) {
    this.owner = owner;
    this.req = req;
    this.res = res;
    this.fromPeer = fromPeer;
    this.startedAt = startedAt;
    res.once('close', this.#onClose);
  }

  static readonly UNSET: typeof UNSET = UNSET;

  /** The body as decided, for dispatch. */
  get bodyValue(): Body {
    return this.body === UNSET ? null : this.body;
  }

  get bodyDecided(): boolean {
    return this.body !== UNSET;
  }

  /** Whether the body can be sent again: none, or buffered. */
  get bodyReplayable(): boolean {
    return this.body === null || this.body === UNSET || Buffer.isBuffer(this.body);
  }

  /** Whether no byte of the body was taken from the client yet (a stream not yet iterated). */
  get bodyUntouched(): boolean {
    return this.bodyReplayable || !(this.body as StreamedBody).started;
  }

  get clientFailed(): boolean {
    return this.body instanceof StreamedBody && this.body.clientFailed;
  }

  /** Before each attempt. */
  beginAttempt(peer: string | null): void {
    this.peer = peer;
    this.sent = false;
    this.#abort = null;
  }

  /** Abort the attempt in flight (its peer was declared dead); it fails into attemptFailed. */
  abortAttempt(err: Error): void {
    if (!this.done && !this.responded && this.#abort !== null) this.#abort(err);
  }

  // undici DispatchHandler (legacy form).

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    this.sent = true;
    if (this.clientGone) abort(new Error('client closed'));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    // 1xx other than 101 are not passed on: undici consumes them, and 100 is answered locally.
    if (statusCode < 200) return true;
    if (this.clientGone) return false;
    this.#resume = resume;
    const res = this.res;
    if (this.owner.draining) res.shouldKeepAlive = false;
    try {
      res.writeHead(statusCode, statusText || undefined, responseHeaders(rawHeaders, this.via));
    } catch (err) {
      // A field node:http refuses to send (it validates names and values): treat as a bad upstream.
      this.#abort?.(err as Error);
      return false;
    }
    this.status = statusCode;
    this.responded = true;
    // Passive health (outlier detection) for a backend this node talks to directly.
    if (this.peer === null && this.backend !== undefined && this.backendPool !== undefined) {
      if (statusCode >= 500) this.backendPool.reportFailure(this.backend.address, '5xx');
      else this.backendPool.reportSuccess(this.backend.address);
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    this.res.once('drain', this.#onDrain);
    return false;
  }

  onComplete(): void {
    // Trailers are dropped: node:http would need them declared before the body (RFC 9110 6.5).
    this.res.end();
    this.#finish();
  }

  onError(err: Error): void {
    if (this.done) return;
    if (this.responded || this.clientGone) {
      // Mid-response failure: cut the client connection so that the truncation shows.
      if (!this.res.writableFinished) this.res.destroy();
      this.#finish();
      return;
    }
    process.nextTick(retryLater, this, err);
  }

  /** One access-log record (no flow key: it may be a session secret). */
  accessRecord(): Record<string, unknown> {
    return {
      client: this.clientIp,
      method: this.req.method,
      path: this.req.url,
      status: this.status,
      ms: Math.round((performance.now() - this.startedAt) * 10) / 10,
      hop: this.fromPeer ? 'from-peer' : this.servedBy,
      backend: this.backend?.address,
      retried: this.tried?.length ?? 0,
      aborted: this.clientGone || undefined,
    };
  }

  /** Ends the exchange with a response already written by the owner. */
  end(): void {
    this.#finish();
  }

  #finish(): void {
    if (this.done) return;
    this.done = true;
    this.owner.finished(this);
  }

  #onDrain = (): void => {
    const r = this.#resume;
    if (r !== null && !this.done) r();
  };

  #onClose = (): void => {
    if (this.done || this.res.writableFinished) return;
    this.clientGone = true;
    // An attempt in flight errors out through onError; one not started yet ends in attemptFailed.
    if (this.#abort !== null) this.#abort(new Error('client closed'));
  };
}

function retryLater(ex: Exchange, err: Error): void {
  if (ex.done) return;
  ex.owner.attemptFailed(ex, err);
}
