/**
 * Flow-key hygiene. A key taken from a header or a cookie is client-controlled text, and it does not
 * stay inside this process: it is replicated to every peer, printed in logs, returned by
 * `GET /api/flows`, and an HTTP forward to a peer may carry it in a header. A CR or LF in it would
 * let a client inject header lines into that forward (response splitting / request smuggling,
 * RFC 9110 section 5.5 and RFC 9112 section 11.1 say such characters must not reach a field value),
 * and other control characters (NUL, ESC, DEL, C1 such as CSI 0x9b) can forge or garble log lines
 * and terminals. Length is capped because every byte of a key is stored on every node, for
 * every flow: an unbounded key is a memory amplification lever. Such a request is refused with 400
 * rather than silently repaired, so that a key never means two different things.
 */
import { TandemError, ErrorCodes } from '../errors.js';

/** Longest accepted key in UTF-8 bytes. */
export const MAX_FLOW_KEY_BYTES = 256;

// C0 controls (incl. TAB, LF, CR, NUL), DEL and C1 controls. Node decodes header bytes as latin1,
// so an obs-text byte 0x80-0x9f arrives as U+0080-U+009F and is caught here too.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Why `key` is not acceptable, or null when it is. */
export function flowKeyProblem(key: string): string | null {
  // A UTF-8 byte length is at least the UTF-16 length, so a cheap pre-check saves the encode.
  if (key.length > MAX_FLOW_KEY_BYTES || Buffer.byteLength(key, 'utf8') > MAX_FLOW_KEY_BYTES) {
    return `flow key longer than ${MAX_FLOW_KEY_BYTES} bytes`;
  }
  if (CONTROL.test(key)) return 'flow key contains control characters';
  return null;
}

/** Returns `key` unchanged, or throws TandemError(BAD_REQUEST) so that the proxy answers 400. */
export function assertValidFlowKey(key: string): string {
  const problem = flowKeyProblem(key);
  if (problem !== null) throw new TandemError(ErrorCodes.BAD_REQUEST, problem);
  return key;
}
