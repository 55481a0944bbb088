/**
 * The ingress side of the peer hop: one request sent to its owner on a stream of the peer
 * multiplexer (peer-head.ts). The head goes in the OPEN frame (with END when there is no body),
 * the body follows framed as the head says, and the owner's answer — a 4-byte prefix, then the
 * exact bytes for the client — is written to the client as it comes, without a second parse.
 *
 * The attempt resolves at the first response byte (SERVED) or at a failure before it, with the
 * retry rule: a stream the owner refused or bounced while draining consumed nothing and goes to the
 * next owner; a stream lost with its connection may have been served, so it goes on only when the
 * method is idempotent and the body is still held (RFC 9110 section 9.2.2).
 */
import type { MuxHandler, MuxStream } from '../mux/stream.js';
import { ResetCode, type ResetCodeValue } from '../mux/frame.js';
import type { PeerMux } from '../mux/peer-mux.js';
import { SERVED, stop, tryNext, type Attempt, type AttemptResult } from '../hops.js';
import { formatHostPort } from '../../flowkey/index.js';
import { Body } from './head.js';
import type { Exchange, Upstream } from './exchange.js';
import type { HttpErrorKind } from './errors.js';
import { FLAG_CLOSE, FLAG_HTTP10, PREFIX_BYTES, PREFIX_CLOSE, encodePeerHead } from './peer-head.js';

export type ForwardResult = AttemptResult<HttpErrorKind>;

/** What a forward needs of its service. */
export interface ForwardHost {
  readonly name: string;
  readonly mux: PeerMux;
  readonly now: number;
  done(f: PeerForward): void;
  failover(): void;
}

const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

export class PeerForward implements Upstream, MuxHandler {
  readonly #host: ForwardHost;
  readonly #ex: Exchange;
  readonly #stream: MuxStream;
  #resolve: ((r: ForwardResult) => void) | null;
  /** Bytes of the response prefix received so far (it may come split). */
  #prefix: Buffer | null = null;
  #started = false;
  #close = false;
  readonly #openedAt: number;
  #lastIo: number;
  /** Bytes received and written to the client but not yet returned as credit (the client is slow). */
  #owed = 0;
  #clientSlow = false;
  #over = false;

  constructor(host: ForwardHost, ex: Exchange, a: Attempt, resolve: (r: ForwardResult) => void) {
    this.#host = host;
    this.#ex = ex;
    this.#resolve = resolve;
    this.#openedAt = this.#lastIo = host.now;
    const flags = (ex.http10 ? FLAG_HTTP10 : 0) | (ex.closeWanted ? FLAG_CLOSE : 0);
    const head = encodePeerHead(flags, ex.lane?.flowService ?? host.name, ex.key, formatHostPort(ex.clientIp, ex.clientPort), ex.text);
    // Without a body the whole request is the OPEN frame, with END.
    this.#stream = host.mux.open(a.node, head, this, ex.body === Body.NONE);
    a.onAbort = this.#onPeerDead;
    ex.attach(this);
  }

  // ---- Upstream: the request body ------------------------------------------------------------

  writeBody(chunk: Buffer): boolean {
    if (this.#ex.body !== Body.CHUNKED) return this.#stream.write(chunk);
    const size = chunk.length.toString(16);
    const b = Buffer.allocUnsafe(size.length + chunk.length + 4);
    let o = b.write(size, 0, 'latin1');
    b[o++] = 13;
    b[o++] = 10;
    o += chunk.copy(b, o);
    b[o++] = 13;
    b[o] = 10;
    return this.#stream.write(b);
  }

  endBody(): void {
    if (this.#ex.body === Body.CHUNKED) this.#stream.end(LAST_CHUNK);
    else this.#stream.end();
  }

  resumeResponse(): void {
    if (!this.#clientSlow) return;
    this.#clientSlow = false;
    const n = this.#owed;
    this.#owed = 0;
    if (n > 0) this.#stream.consumed(n);
  }

  /** The exchange gives up (client gone, request refused mid-body). */
  abort(): void {
    this.#stream.reset(ResetCode.CANCEL, 'client gone');
    this.#settle(stop('peer-unavailable'));
    this.#finish();
  }

  // ---- MuxHandler: the owner's answer ------------------------------------------------------

  onData(chunk: Buffer): void {
    const ex = this.#ex;
    this.#lastIo = this.#host.now;
    const n = chunk.length;
    let data = chunk;
    if (!this.#started) {
      let p = this.#prefix;
      if (p !== null || n < PREFIX_BYTES) {
        p = this.#prefix = p === null ? Buffer.from(chunk) : Buffer.concat([p, chunk]);
        if (p.length < PREFIX_BYTES) return this.#stream.consumed(n);
        data = p;
      }
      this.#prefix = null;
      this.#started = true;
      this.#close = (data[1] & PREFIX_CLOSE) !== 0;
      ex.respondStarted(data.readUInt16BE(2), this.#close);
      this.#settle(SERVED);
      data = data.subarray(PREFIX_BYTES);
    }
    if (data.length === 0 || ex.respondData(data)) {
      if (this.#clientSlow) this.#owed += n;
      else this.#stream.consumed(n);
    } else {
      this.#clientSlow = true;
      this.#owed += n;
    }
  }

  onEnd(): void {
    const ex = this.#ex;
    this.#finish();
    ex.detach(this);
    if (this.#started) return ex.respondEnd(this.#close);
    // END without an answer: the owner broke the protocol.
    this.#failed(stop('peer-unavailable'));
  }

  onReset(code: ResetCodeValue): void {
    const ex = this.#ex;
    this.#finish();
    ex.detach(this);
    if (this.#started) return ex.respondCut();
    switch (code) {
      case ResetCode.REFUSED:
      case ResetCode.DRAINING:
        // Nothing of it was consumed: the next owner, whatever the method — if the body sent so far is still held.
        return this.#failed(ex.mayRetry(false) ? tryNext('peer-unavailable', false) : stop('peer-unavailable'));
      case ResetCode.UNREACHABLE:
        // The dial failed: nothing was sent, and the owner did not answer (suspect).
        return this.#failed(ex.mayRetry(false) ? tryNext('peer-unavailable', true) : stop('peer-unavailable'));
      case ResetCode.CONNECTION_LOST:
        // The owner may have had it: only what can safely be done twice goes on.
        return this.#failed(ex.mayRetry(true) ? tryNext('peer-unavailable', true) : stop('peer-unavailable'));
      default:
        return this.#failed(stop('peer-unavailable'));
    }
  }

  onDrain(): void {
    this.#ex.upstreamDrained();
  }

  /** Membership declared the owner dead: nothing more will come from it. */
  readonly #onPeerDead = (): void => {
    if (this.#over || this.#started) return;
    const ex = this.#ex;
    this.#stream.reset(ResetCode.CANCEL, 'peer declared dead');
    this.#finish();
    ex.detach(this);
    this.#failed(ex.mayRetry(true) ? tryNext('peer-unavailable', false) : stop('peer-unavailable'));
  };

  /** Timeouts: no answer within `answerMs`, or a response silent for `idleMs`. */
  sweep(now: number, answerMs: number, idleMs: number): void {
    if (this.#over) return;
    const ex = this.#ex;
    if (!this.#started) {
      if (now - this.#openedAt < answerMs) return;
      this.#stream.reset(ResetCode.CANCEL, 'no answer in time');
      this.#finish();
      ex.detach(this);
      return this.#failed(stop('backend-timeout'));
    }
    if (this.#clientSlow || now - this.#lastIo < idleMs) return;
    this.#stream.reset(ResetCode.CANCEL, 'response stalled');
    this.#finish();
    ex.detach(this);
    ex.respondCut();
  }

  #failed(r: ForwardResult): void {
    this.#host.failover();
    this.#settle(r);
  }

  #settle(r: ForwardResult): void {
    const resolve = this.#resolve;
    if (resolve === null) return;
    this.#resolve = null;
    resolve(r);
  }

  #finish(): void {
    if (this.#over) return;
    this.#over = true;
    this.#host.done(this);
  }
}
