/**
 * Answers the ingress writes itself for a route: a redirect (RFC 9110 section 15.4, Location), a
 * 429 with Retry-After (RFC 6585 section 4), and an ACME HTTP-01 key authorization (RFC 8555
 * section 8.3). Made per answer: these carry per-request values.
 */
import { errorBytes } from './errors.js';

const REASONS: Readonly<Record<number, string>> = { 301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 307: 'Temporary Redirect', 308: 'Permanent Redirect' };

export function redirectBytes(status: number, location: string, close: boolean): Buffer {
  // A Location is one field line: anything that could end it is percent-encoded.
  const loc = location.replace(/[\r\n\0]/g, (c) => encodeURIComponent(c));
  return Buffer.from(
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Redirect'}\r\nlocation: ${loc}\r\ncontent-length: 0\r\n${close ? 'connection: close\r\n' : ''}\r\n`,
    'latin1',
  );
}

const RATE_HEADS = new Map<boolean, [Buffer, Buffer]>();

/** The 429 error response with `Retry-After: seconds` inserted after its status line. */
export function rateLimitedBytes(retryAfterS: number, close: boolean): Buffer {
  let parts = RATE_HEADS.get(close);
  if (parts === undefined) {
    const whole = errorBytes('rate-limited', close);
    const eol = whole.indexOf('\r\n') + 2;
    parts = [whole.subarray(0, eol), whole.subarray(eol)];
    RATE_HEADS.set(close, parts);
  }
  return Buffer.concat([parts[0], Buffer.from(`retry-after: ${Math.max(1, Math.ceil(retryAfterS))}\r\n`, 'latin1'), parts[1]]);
}

/** 200 with the key authorization as the body (none for HEAD), as RFC 8555 section 8.3 asks. */
export function challengeBytes(keyAuthorization: string, head: boolean, close: boolean): Buffer {
  const body = Buffer.from(keyAuthorization, 'latin1');
  const top = Buffer.from(
    `HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${body.length}\r\n${close ? 'connection: close\r\n' : ''}\r\n`,
    'latin1',
  );
  return head ? top : Buffer.concat([top, body]);
}
