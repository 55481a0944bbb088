/**
 * Request bodies on their way upstream: streamed as they arrive, or — before a peer forward, when
 * small and of known length — read whole first, so that a forward that fails can send them again
 * to the next owner (see the retry rules in service.ts).
 */
import type { Exchange } from './exchange.js';

/**
 * A request body streamed as it arrives. An AsyncIterable (not the IncomingMessage itself) because
 * undici destroys a stream body on failure, which would destroy the client's socket with it; an
 * iterable that was never iterated is also still whole, so a forward that failed to connect can be
 * retried elsewhere. `Expect: 100-continue` is answered when the upstream first pulls the body.
 */
export class StreamedBody implements AsyncIterable<Buffer> {
  readonly #ex: Exchange;
  started = false;
  /** The client side failed mid-body (disconnect, bad chunk framing): not an upstream fault. */
  clientFailed = false;

  constructor(ex: Exchange) {
    this.#ex = ex;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    this.started = true;
    const { req, res } = this.#ex;
    if (this.#ex.head.expectContinue && !res.headersSent) res.writeContinue();
    try {
      // destroyOnReturn: false — when undici stops early, the socket stays ours to answer on.
      for await (const chunk of req.iterator({ destroyOnReturn: false })) yield chunk as Buffer;
    } catch (err) {
      this.clientFailed = true;
      throw err;
    }
  }
}

/** A streamed body when the request has one (Content-Length > 0 or chunked), else null. */
export function streamedOrNone(ex: Exchange): StreamedBody | null {
  const h = ex.head;
  return h.chunked || h.contentLength > 0 ? new StreamedBody(ex) : null;
}

/**
 * Reads a body of `len` bytes into ex.body, then calls `then(ex, arg)`; a client that leaves
 * first is marked gone (then is still called, once, so the owner can end the exchange).
 */
export function readWholeBody<A>(ex: Exchange, len: number, then: (ex: Exchange, arg: A) => void, arg: A): void {
  const { req, res } = ex;
  if (ex.head.expectContinue) res.writeContinue();
  const chunks: Buffer[] = [];
  let size = 0;
  const onData = (c: Buffer): void => {
    chunks.push(c);
    size += c.length;
  };
  const finish = (ok: boolean): void => {
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('error', onFail);
    req.off('close', onFail);
    if (ok) ex.body = size === len ? Buffer.concat(chunks, size) : null;
    else ex.clientGone = true;
    then(ex, arg);
  };
  const onEnd = (): void => finish(true);
  const onFail = (): void => finish(req.complete);
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', onFail);
  req.on('close', onFail);
}
