/**
 * The error responses tandem itself writes. Each names its reason in a one-line text body and a
 * `tandem-error` code header, so that a user (or a script) can tell a tandem error from a backend's
 * own 502; nothing in them leaks internals (no addresses, no stack, no upstream error text).
 */
export type HttpErrorKind =
  | 'bad-request'
  | 'header-too-large'
  | 'request-timeout'
  | 'method-not-allowed'
  | 'no-backend'
  | 'backend-failed'
  | 'backend-timeout'
  | 'peer-unavailable'
  | 'unknown-service'
  | 'no-route'
  | 'rate-limited'
  | 'version-not-supported'
  | 'internal';

interface ErrorSpec {
  readonly status: number;
  readonly reason: string;
  readonly text: string;
}

const SPECS: Readonly<Record<HttpErrorKind, ErrorSpec>> = {
  'bad-request': { status: 400, reason: 'Bad Request', text: 'malformed request' },
  'header-too-large': { status: 431, reason: 'Request Header Fields Too Large', text: 'request header fields too large' },
  'request-timeout': { status: 408, reason: 'Request Timeout', text: 'request not received in time' },
  'method-not-allowed': { status: 405, reason: 'Method Not Allowed', text: 'method not allowed' },
  'no-backend': { status: 503, reason: 'Service Unavailable', text: 'no backend available' },
  'backend-failed': { status: 502, reason: 'Bad Gateway', text: 'backend failed' },
  'backend-timeout': { status: 504, reason: 'Gateway Timeout', text: 'backend timed out' },
  'peer-unavailable': { status: 502, reason: 'Bad Gateway', text: 'no load-balancer node could serve the request' },
  'version-not-supported': { status: 505, reason: 'HTTP Version Not Supported', text: 'only HTTP/1.0 and HTTP/1.1 are served' },
  internal: { status: 500, reason: 'Internal Server Error', text: 'internal error' },
  'no-route': { status: 404, reason: 'Not Found', text: 'no route for this request' },
  'rate-limited': { status: 429, reason: 'Too Many Requests', text: 'rate limit exceeded' },
  'unknown-service': { status: 503, reason: 'Service Unavailable', text: 'service not configured on this node' },
};

export function errorStatus(kind: HttpErrorKind): number {
  return SPECS[kind].status;
}

const BODIES = new Map<HttpErrorKind, Buffer>();
for (const [kind, s] of Object.entries(SPECS) as Array<[HttpErrorKind, ErrorSpec]>) {
  BODIES.set(kind, Buffer.from(`${s.status} ${s.reason}: ${s.text}\n`, 'latin1'));
}

function buildRaw(kind: HttpErrorKind, close: boolean): Buffer {
  const s = SPECS[kind];
  const body = BODIES.get(kind)!;
  const head =
    `HTTP/1.1 ${s.status} ${s.reason}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
    `content-length: ${body.length}\r\ntandem-error: ${kind}\r\n${close ? 'connection: close\r\n' : ''}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** Every error response, head and body in one Buffer, made once: with and without Connection: close. */
const RAW_CLOSE = new Map<HttpErrorKind, Buffer>();
const RAW_KEEP = new Map<HttpErrorKind, Buffer>();
for (const kind of Object.keys(SPECS) as HttpErrorKind[]) {
  RAW_CLOSE.set(kind, buildRaw(kind, true));
  RAW_KEEP.set(kind, buildRaw(kind, false));
}

/** The error response that ends the connection (Connection: close). */
export function rawError(kind: HttpErrorKind): Buffer {
  return RAW_CLOSE.get(kind)!;
}

/** The error response as one pre-built Buffer; `close` adds Connection: close. Never modify it. */
export function errorBytes(kind: HttpErrorKind, close: boolean): Buffer {
  return (close ? RAW_CLOSE : RAW_KEEP).get(kind)!;
}

/** The interim response to `Expect: 100-continue` (RFC 9110 section 15.2.1). */
export const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
