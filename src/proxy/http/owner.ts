/**
 * The owner side of the peer hop: requests a peer forwarded on the multiplexer (peer-head.ts).
 * The head from the OPEN frame and the body from the stream are parsed by the same llhttp request
 * parser as a client connection's, so every framing rule holds on this side too; the request is
 * served here and never forwarded again (docs/design.md §1, the routing rule). The response goes back
 * as the 4-byte prefix and the exact bytes for the client; the writes of one backend read leave as
 * one stream write.
 *
 * Only authenticated peers reach a multiplexer stream, and what the flow key and client address
 * are comes from the OPEN frame, never from a field a client could have sent.
 */
import type { MuxHandler, MuxStream } from '../mux/stream.js';
import { ResetCode } from '../mux/frame.js';
import type { PeerMux } from '../mux/peer-mux.js';
import { acquireParser, releaseParser, isHeaderOverflow, type HttpParser, type ParserSink } from './parser.js';
import { Exchange, type Downstream, type ExchangeHost } from './exchange.js';
import { errorBytes, errorStatus, type HttpErrorKind } from './errors.js';
import { decodePeerHead, encodePrefix, FLAG_UPGRADE, PREFIX_BYTES, type PeerHead } from './peer-head.js';

/** Forwarded heads carry the client's fields plus tandem's own: room above the client-side limit. */
export const PEER_MAX_HEADER_SIZE = 64 * 1024;
/** Response bytes gathered during one backend read up to this are joined into one stream write. */
const JOIN_BYTES = 16 * 1024;

/** What a stream needs of its service. */
export interface OwnerHost extends ExchangeHost {
  readonly draining: boolean;
  readonly now: number;
  /** Whether this node serves the flow service the ingress named (a route may be newer than this node's config). */
  serves(flowService: string): boolean;
  /** A forwarded head parsed: fills the exchange or names the error to answer. */
  prepareForwarded(ex: Exchange, p: HttpParser, head: PeerHead, peer: string): HttpErrorKind | null;
  serve(ex: Exchange): void;
  /** An upgrade forwarded by a peer: the stream becomes a tunnel to the backend. */
  tunnelForwarded(ex: Exchange, stream: MuxStream): MuxHandler;
  bug(err: unknown): void;
}

/** The node's acceptor for forwarded HTTP streams: finds the service and hands the stream over. */
export class HttpOwnerSide {
  readonly #mux: PeerMux;
  readonly #lookup: (service: string) => OwnerHost | undefined;
  #started = false;

  constructor(mux: PeerMux, lookup: (service: string) => OwnerHost | undefined) {
    this.#mux = mux;
    this.#lookup = lookup;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#mux.onOpen(this.#onOpen);
  }

  readonly #onOpen = (stream: MuxStream, payload: Buffer, peer: string): MuxHandler | null => {
    const head = decodePeerHead(payload);
    if (head === null) {
      stream.reset(ResetCode.PROTOCOL, 'bad http head');
      return null;
    }
    const host = this.#lookup(head.service);
    if (host === undefined) {
      // The peers disagree about the services (a reload rolling through): the client gets a 503.
      answerRaw(stream, 'unknown-service', false);
      return IGNORE;
    }
    // Stopping, or a route this node's config does not have yet (a reload rolling through):
    // nothing consumed, the ingress sends it to the flow's next owner.
    if (host.draining || !host.serves(head.service)) {
      stream.reset(ResetCode.DRAINING, 'draining');
      return null;
    }
    return new PeerStream(host, stream, head, payload, peer);
  };
}

const IGNORE: MuxHandler = { onData() {}, onEnd() {}, onReset() {}, onDrain() {} };

/** An answer before any exchange exists; `close`: the ingress ends its client connection after it. */
function answerRaw(stream: MuxStream, kind: HttpErrorKind, close: boolean): void {
  const body = errorBytes(kind, close);
  const b = Buffer.allocUnsafe(PREFIX_BYTES + body.length);
  encodePrefix(b, 0, errorStatus(kind), close);
  body.copy(b, PREFIX_BYTES);
  stream.end(b);
}

/** One forwarded request: parser sink for its bytes, downstream of its exchange, handler of its stream. */
class PeerStream implements MuxHandler, ParserSink, Downstream {
  readonly #host: OwnerHost;
  readonly #stream: MuxStream;
  readonly #head: PeerHead;
  readonly #peer: string;
  #parser: HttpParser | null;
  #ex: Exchange | null = null;
  #tunnel: MuxHandler | null = null;
  // -- response, gathered while corked
  #pending: Array<Buffer | string> = [];
  #pendingBytes = 0;
  #corked = false;
  #ended = false;
  #blocked = false;
  #prefixSent = false;
  #status = 0;
  #close = false;
  // -- request body credit
  #paused = false;
  #owed = 0;
  #executing = false;

  constructor(host: OwnerHost, stream: MuxStream, head: PeerHead, payload: Buffer, peer: string) {
    this.#host = host;
    this.#stream = stream;
    this.#head = head;
    this.#peer = peer;
    this.#parser = acquireParser('request', this, PEER_MAX_HEADER_SIZE);
    this.#execute(payload.subarray(head.headAt));
  }

  get draining(): boolean {
    return this.#host.draining;
  }

  #execute(chunk: Buffer): void {
    const p = this.#parser;
    if (p === null) return;
    this.#executing = true;
    let n: number;
    try {
      n = p.execute(chunk);
    } catch (err) {
      // A bug of ours inside a parser callback: this stream is lost, the node serves on.
      this.#executing = false;
      this.#host.bug(err);
      this.#stream.reset(ResetCode.INTERNAL, 'internal error');
      this.#ex?.clientGone();
      return this.#releaseParser();
    } finally {
      this.#executing = false;
    }
    if (n < 0) return this.#refuse(isHeaderOverflow(p.errorCode) ? 'header-too-large' : 'bad-request');
    if (this.#ex?.done || this.#tunnel !== null) this.#releaseParser();
  }

  // ---- ParserSink ----------------------------------------------------------------------------

  onHead(p: HttpParser): number {
    if (this.#ex !== null) {
      // A second request on one stream: not what a peer sends.
      this.#refuse('bad-request');
      return 0;
    }
    const host = this.#host;
    const ex = (this.#ex = new Exchange(host, this, true, host.now));
    const kind = host.prepareForwarded(ex, p, this.#head, this.#peer);
    if (kind !== null) {
      // Nothing after a refused head is trusted: the ingress closes its client connection too.
      ex.bodyEnded = true;
      ex.closeWanted = true;
      ex.fail(kind);
      return 0;
    }
    if ((this.#head.flags & FLAG_UPGRADE) !== 0) {
      ex.bodyEnded = true;
      this.#tunnel = host.tunnelForwarded(ex, this.#stream);
      return 0;
    }
    host.serve(ex);
    return 0;
  }

  onBody(chunk: Buffer): void {
    this.#ex?.pushBody(chunk);
  }

  onMessageEnd(): void {
    const ex = this.#ex;
    if (ex !== null && !ex.bodyEnded) ex.endBody();
  }

  #refuse(kind: HttpErrorKind): void {
    const ex = this.#ex;
    if (ex !== null) {
      ex.closeWanted = true;
      return ex.fail(kind);
    }
    answerRaw(this.#stream, kind, true);
    this.#host.answeredError(kind);
    this.#releaseParser();
  }

  // ---- MuxHandler: the ingress's side ------------------------------------------------------

  onData(chunk: Buffer): void {
    const t = this.#tunnel;
    if (t !== null) return t.onData(chunk);
    const ex = this.#ex;
    if (ex === null || ex.done) return this.#stream.consumed(chunk.length);
    this.#execute(chunk);
    if (this.#paused) this.#owed += chunk.length;
    else this.#stream.consumed(chunk.length);
  }

  onEnd(): void {
    const t = this.#tunnel;
    if (t !== null) return t.onEnd();
    const ex = this.#ex;
    if (ex !== null && !ex.bodyEnded) ex.fail('bad-request');
  }

  onReset(code: (typeof ResetCode)[keyof typeof ResetCode], reason: string): void {
    const t = this.#tunnel;
    if (t !== null) return t.onReset(code, reason);
    // The ingress gave up (its client left, it timed out, the connection broke).
    this.#ex?.clientGone();
    this.#releaseParser();
  }

  onDrain(): void {
    const t = this.#tunnel;
    if (t !== null) return t.onDrain();
    this.#blocked = false;
    this.#ex?.downstreamDrained();
  }

  // ---- Downstream --------------------------------------------------------------------------

  cork(): void {
    this.#corked = true;
  }

  uncork(): void {
    this.#corked = false;
    this.#flush();
  }

  sendContinue(): void {}

  head(text: string, status: number, close: boolean): void {
    this.#status = status;
    this.#close = close;
    if (text.length > 0) this.#push(text);
  }

  write(chunk: Buffer | string): boolean {
    this.#push(chunk);
    if (!this.#corked) this.#flush();
    // While corked (one backend read, at most 64 KB) everything is taken; the flush tells.
    return !this.#blocked;
  }

  end(ex: Exchange, close: boolean): void {
    this.#close ||= close;
    this.#ended = true;
    if (!this.#corked) this.#flush();
    this.#done(ex);
  }

  whole(ex: Exchange, bytes: Buffer, close: boolean): void {
    this.#status = ex.status;
    this.#close = close;
    this.#push(bytes);
    this.#ended = true;
    this.#flush();
    this.#done(ex);
  }

  cut(ex: Exchange): void {
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#stream.reset(ResetCode.INTERNAL, 'response cut short');
    this.#done(ex);
  }

  pauseBody(): void {
    this.#paused = true;
  }

  resumeBody(): void {
    if (!this.#paused) return;
    this.#paused = false;
    const n = this.#owed;
    this.#owed = 0;
    if (n > 0) this.#stream.consumed(n);
  }

  #push(chunk: Buffer | string): void {
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
  }

  /** Sends what was gathered: small pieces joined into one buffer behind the prefix, with END when complete. */
  #flush(): void {
    const pending = this.#pending;
    const stream = this.#stream;
    if (pending.length === 0 && !this.#ended) return;
    const withPrefix = !this.#prefixSent;
    this.#prefixSent = true;
    this.#pending = [];
    const total = this.#pendingBytes + (withPrefix ? PREFIX_BYTES : 0);
    this.#pendingBytes = 0;
    let last: Buffer | null = null;
    let ok = true;
    if (!withPrefix && pending.length === 1 && typeof pending[0] !== 'string') last = pending[0]!;
    else if (total <= JOIN_BYTES) {
      const b = (last = Buffer.allocUnsafe(total));
      let o = 0;
      if (withPrefix) {
        encodePrefix(b, 0, this.#status, this.#close);
        o = PREFIX_BYTES;
      }
      for (const c of pending) o += typeof c === 'string' ? b.write(c, o, 'latin1') : c.copy(b, o);
    } else {
      if (withPrefix) {
        const p = Buffer.allocUnsafe(PREFIX_BYTES);
        encodePrefix(p, 0, this.#status, this.#close);
        stream.write(p);
      }
      for (const c of pending) ok = stream.write(typeof c === 'string' ? Buffer.from(c, 'latin1') : c) && ok;
    }
    if (this.#ended) {
      if (last !== null) stream.end(last);
      else stream.end();
    } else if (last !== null) ok = stream.write(last);
    if (!ok) this.#blocked = true;
  }

  #done(_ex: Exchange): void {
    if (!this.#executing) this.#releaseParser();
  }

  #releaseParser(): void {
    const p = this.#parser;
    if (p === null) return;
    this.#parser = null;
    releaseParser(p);
  }
}
