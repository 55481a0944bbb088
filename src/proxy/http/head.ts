/**
 * Message heads on their way through a hop, as text written once: the request head for the next hop
 * (backend or owner) and the response head for the client. Pure functions over llhttp's flat field
 * list (`[name, value, …]`, names as received), so that the rules are unit-tested on their own.
 *
 * Rules (RFC 9110 section 7.6): a proxy removes the hop-by-hop fields — Connection, the fields
 * Connection names, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding (each hop redoes
 * the framing) and Upgrade (except when tunnelling an upgrade) — and appends itself to Via (section
 * 7.6.3), on requests and on responses. The original client address travels in X-Forwarded-For (de
 * facto) and Forwarded (RFC 7239), appended once, at the node that received the request.
 * `Expect: 100-continue` is answered by tandem itself when the body is wanted, so it does not travel.
 *
 * Names and values come from llhttp in strict mode: no CR, LF or NUL can be in them, so writing
 * them back as latin1 text cannot inject a line.
 */
import { STATUS_CODES } from 'node:http';

/** Field classes, found without lower-casing (see `is`). */
const enum F {
  OTHER,
  HOST,
  CONTENT_LENGTH,
  TRANSFER_ENCODING,
  CONNECTION,
  HOP, // keep-alive, proxy-connection, te, trailer
  UPGRADE,
  EXPECT,
  VIA,
  XFF,
  FORWARDED,
  XFP,
  COOKIE,
  TANDEM, // x-tandem-*: never accepted from a client
}

/** Prefix of field names tandem reserves; dropped from every request it receives. */
export const TANDEM_PREFIX = 'x-tandem-';

/**
 * Case-insensitive equality with a lower-case target made of a-z, 0-9 and '-': `c | 0x20` maps
 * exactly A-Z onto a-z and leaves digits and '-' alone, and no other byte lands on those.
 */
export function is(name: string, lower: string): boolean {
  const n = lower.length;
  if (name.length !== n) return false;
  for (let i = 0; i < n; i++) if ((name.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

function startsWithI(name: string, lower: string): boolean {
  const n = lower.length;
  if (name.length < n) return false;
  for (let i = 0; i < n; i++) if ((name.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

function classify(name: string): F {
  switch (name.length) {
    case 2:
      return is(name, 'te') ? F.HOP : F.OTHER;
    case 3:
      return is(name, 'via') ? F.VIA : F.OTHER;
    case 4:
      return is(name, 'host') ? F.HOST : F.OTHER;
    case 6:
      return is(name, 'cookie') ? F.COOKIE : is(name, 'expect') ? F.EXPECT : F.OTHER;
    case 7:
      return is(name, 'upgrade') ? F.UPGRADE : is(name, 'trailer') ? F.HOP : F.OTHER;
    case 9:
      if (is(name, 'forwarded')) return F.FORWARDED;
      break;
    case 10:
      if (is(name, 'connection')) return F.CONNECTION;
      if (is(name, 'keep-alive')) return F.HOP;
      break;
    case 14:
      if (is(name, 'content-length')) return F.CONTENT_LENGTH;
      break;
    case 15:
      if (is(name, 'x-forwarded-for')) return F.XFF;
      break;
    case 16:
      if (is(name, 'proxy-connection')) return F.HOP;
      break;
    case 17:
      if (is(name, 'transfer-encoding')) return F.TRANSFER_ENCODING;
      if (is(name, 'x-forwarded-proto')) return F.XFP;
      break;
  }
  return name.length >= 9 && startsWithI(name, TANDEM_PREFIX) ? F.TANDEM : F.OTHER;
}

function join(prev: string, value: string): string {
  return prev === '' ? value : `${prev}, ${value}`;
}

/** Connection tokens that name further fields to remove (RFC 9110 7.6.1); Host and Content-Length never. */
function nominate(value: string, into: string[] | null, onToken: (tok: string) => void): string[] | null {
  // The usual values name nothing: no split.
  if (is(value, 'keep-alive') || is(value, 'close')) {
    onToken(value.length === 5 ? 'close' : 'keep-alive');
    return into;
  }
  for (const t of value.split(',')) {
    const tok = t.trim().toLowerCase();
    if (tok === '') continue;
    onToken(tok);
    if (tok === 'close' || tok === 'keep-alive' || tok === 'upgrade' || tok === 'host' || tok === 'content-length') continue;
    (into ??= []).push(tok);
  }
  return into;
}

function nominated(list: readonly string[] | null, name: string): boolean {
  if (list === null) return false;
  for (let i = 0; i < list.length; i++) if (name.length === list[i].length && name.toLowerCase() === list[i]) return true;
  return false;
}

/** What one pass over a request's field lines found. */
export interface RequestHead {
  /** The Via, X-Forwarded-For and Forwarded values received (repeated fields joined), or ''. */
  via: string;
  xff: string;
  forwarded: string;
  /** First value of the flow-key header, when the spec names one. */
  flowValue: string | undefined;
  /** Cookie field value(s), when the spec is a cookie. */
  cookie: string | string[] | undefined;
  /** Declared Content-Length (llhttp already refused malformed or conflicting ones), -1 when absent. */
  contentLength: number;
  /** Transfer-Encoding was present (llhttp accepts it only with chunked last). */
  chunked: boolean;
  expectContinue: boolean;
  /** RFC 9112 section 3.2 wants exactly one Host in HTTP/1.1. */
  hostCount: number;
  /** The Upgrade value (kept aside; sent only when tunnelling). */
  upgrade: string;
  /** `Connection: close` / `keep-alive` tokens. */
  close: boolean;
  keepAlive: boolean;
  /** Names that Connection nominated (lower case), removed when the head is written on. */
  nominated: string[] | null;
}

/**
 * Scans a request's fields. `flowHeader` is the lower-case name of a `header:NAME` flow key,
 * `flowCookie` whether the key is a cookie. x-tandem-* fields are never read: a forwarded request's
 * flow travels in the authenticated peer stream's own header, never in fields a client could send.
 */
export function scanRequest(raw: readonly string[], flowHeader: string | null, flowCookie: boolean): RequestHead {
  const head: RequestHead = {
    via: '',
    xff: '',
    forwarded: '',
    flowValue: undefined,
    cookie: undefined,
    contentLength: -1,
    chunked: false,
    expectContinue: false,
    hostCount: 0,
    upgrade: '',
    close: false,
    keepAlive: false,
    nominated: null,
  };
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    if (flowHeader !== null && head.flowValue === undefined && is(name, flowHeader)) head.flowValue = value;
    switch (classify(name)) {
      case F.HOST:
        head.hostCount++;
        break;
      case F.CONTENT_LENGTH:
        head.contentLength = Number(value);
        break;
      case F.TRANSFER_ENCODING:
        head.chunked = true;
        break;
      case F.CONNECTION:
        head.nominated = nominate(value, head.nominated, (tok) => {
          if (tok === 'close') head.close = true;
          else if (tok === 'keep-alive') head.keepAlive = true;
        });
        break;
      case F.UPGRADE:
        head.upgrade = value;
        break;
      case F.EXPECT:
        if (is(value.trim(), '100-continue')) head.expectContinue = true;
        break;
      case F.VIA:
        head.via = join(head.via, value);
        break;
      case F.XFF:
        head.xff = join(head.xff, value);
        break;
      case F.FORWARDED:
        head.forwarded = join(head.forwarded, value);
        break;
      case F.COOKIE:
        if (flowCookie) head.cookie = head.cookie === undefined ? value : ([] as string[]).concat(head.cookie, value);
        break;
    }
  }
  return head;
}

/** This hop's Via entry: `<received-protocol> <received-by>` (RFC 9110 section 7.6.3). */
export function viaEntry(httpVersion: string, nodeId: string): string {
  return `${httpVersion} ${nodeId}`;
}

/** An RFC 7239 node: IPv4 bare, IPv6 in brackets and quoted (section 6, `node`, and section 4). */
export function forwardedNode(ip: string): string {
  return ip.includes(':') ? `"[${ip}]"` : ip;
}

/** The Forwarded element this node adds: `for=<client>;proto=<http|https>;by=_<node-id>` (obfnode, 6.3). */
export function forwardedElement(clientIp: string, nodeId: string, proto: 'http' | 'https' = 'http'): string {
  return `for=${forwardedNode(clientIp)};proto=${proto};by=_${nodeId}`;
}

/** How a request body travels to the next hop. */
export const enum Body {
  NONE,
  LENGTH,
  CHUNKED,
}

/** The framing of a request's body from its head (llhttp has validated it). */
export function requestBody(head: RequestHead): Body {
  return head.chunked ? Body.CHUNKED : head.contentLength > 0 ? Body.LENGTH : Body.NONE;
}

/**
 * The request head for the next hop, as one string: request line, the kept fields in their order,
 * Via (always), X-Forwarded-For and Forwarded for the client (`clientIp` null at an owner: the
 * receiving node added them), the framing of the body, and for an upgrade its Connection/Upgrade.
 */
export function writeRequestHead(
  method: string,
  url: string,
  raw: readonly string[],
  head: RequestHead,
  via: string,
  clientIp: string | null,
  nodeId: string,
  upgrade: boolean,
  proto: 'http' | 'https' = 'http',
): string {
  // Over TLS the receiving node says so (X-Forwarded-Proto, de facto): a client's own value is dropped.
  const ownProto = clientIp !== null && proto === 'https';
  let s = `${method} ${url} HTTP/1.1\r\n`;
  const nom = head.nominated;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    switch (classify(name)) {
      case F.OTHER:
      case F.HOST:
      case F.COOKIE:
        if (nom !== null && nominated(nom, name)) continue;
        s += `${name}: ${raw[i + 1]}\r\n`;
        continue;
      case F.XFP:
        if (ownProto) continue;
        s += `${name}: ${raw[i + 1]}\r\n`;
        continue;
      case F.CONTENT_LENGTH:
        // Kept as sent: llhttp accepted it, so it is one valid length (or a list of equal ones).
        if (!head.chunked) s += `${name}: ${raw[i + 1]}\r\n`;
        continue;
      default:
        continue;
    }
  }
  s += `via: ${join(head.via, via)}\r\n`;
  if (clientIp !== null) {
    s += `x-forwarded-for: ${join(head.xff, clientIp)}\r\nforwarded: ${join(head.forwarded, forwardedElement(clientIp, nodeId, proto))}\r\n`;
    if (ownProto) s += 'x-forwarded-proto: https\r\n';
  } else {
    if (head.xff !== '') s += `x-forwarded-for: ${head.xff}\r\n`;
    if (head.forwarded !== '') s += `forwarded: ${head.forwarded}\r\n`;
  }
  if (head.chunked) s += 'transfer-encoding: chunked\r\n';
  if (upgrade) s += `connection: upgrade\r\nupgrade: ${head.upgrade}\r\n`;
  return s + '\r\n';
}

/** What one pass over a response's field lines found. */
export interface ResponseHead {
  contentLength: number;
  chunked: boolean;
  /** The backend will close after this response (Connection: close). */
  close: boolean;
}

/** How a response body reaches the client. */
export const enum Framing {
  /** No body (HEAD, 1xx, 204, 304). */
  NONE,
  /** Content-Length passed on; body bytes as they come. */
  LENGTH,
  /** Re-encoded in chunks (the client speaks HTTP/1.1). */
  CHUNKED,
  /** Delimited by the connection's close (an HTTP/1.0 client and a body of unknown length). */
  CLOSE,
}

export function scanResponse(raw: readonly string[]): ResponseHead {
  const r: ResponseHead = { contentLength: -1, chunked: false, close: false };
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    const n = name.length;
    if (n === 14 && is(name, 'content-length')) r.contentLength = Number(raw[i + 1]);
    else if (n === 17 && is(name, 'transfer-encoding')) r.chunked = true;
    else if (n === 10 && is(name, 'connection') && /(?:^|[\s,])close(?:$|[\s,])/i.test(raw[i + 1])) r.close = true;
  }
  return r;
}

/** The framing toward the client of a response with a body (`noBody` false). */
export function responseFraming(r: ResponseHead, noBody: boolean, clientHttp10: boolean): Framing {
  if (noBody) return Framing.NONE;
  if (!r.chunked && r.contentLength >= 0) return r.contentLength === 0 ? Framing.NONE : Framing.LENGTH;
  return clientHttp10 ? Framing.CLOSE : Framing.CHUNKED;
}

/**
 * The response head for the client, as one string: status line (HTTP/1.1), the kept fields, Via
 * with `via` appended (one or more entries, in response order), the framing, and Connection: close
 * when the client connection ends after this response (or keep-alive for an HTTP/1.0 client that
 * keeps it).
 */
export function writeResponseHead(status: number, reason: string, raw: readonly string[], r: ResponseHead, framing: Framing, via: string, close: boolean, http10: boolean): string {
  let s = `HTTP/1.1 ${status} ${reason || STATUS_CODES[status] || 'Unknown'}\r\n`;
  let viaValue = '';
  let nom: string[] | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    const n = name.length;
    if (n === 10 && is(name, 'connection')) nom = nominate(raw[i + 1], nom, noop);
  }
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    switch (classify(name)) {
      case F.VIA:
        viaValue = join(viaValue, raw[i + 1]);
        continue;
      case F.CONTENT_LENGTH:
        if (!r.chunked) s += `${name}: ${raw[i + 1]}\r\n`;
        continue;
      case F.CONNECTION:
      case F.HOP:
      case F.TRANSFER_ENCODING:
      case F.UPGRADE:
        continue;
      default:
        if (nom !== null && nominated(nom, name)) continue;
        s += `${name}: ${raw[i + 1]}\r\n`;
    }
  }
  s += `via: ${join(viaValue, via)}\r\n`;
  if (framing === Framing.CHUNKED) s += 'transfer-encoding: chunked\r\n';
  if (close) s += 'connection: close\r\n';
  else if (http10) s += 'connection: keep-alive\r\n';
  return s + '\r\n';
}

function noop(): void {}

/**
 * RFC 9112 section 3.2: the request-target forms a proxy passes on — origin-form (`/path`),
 * absolute-form (`http://…`, `https://…`), and asterisk-form for OPTIONS only. Authority-form is
 * CONNECT's, which tandem refuses before this.
 */
export function isTargetAllowed(method: string, url: string): boolean {
  const c = url.charCodeAt(0);
  if (c === 47 /* / */) return true;
  if (url === '*') return method === 'OPTIONS';
  return startsWithI(url, 'http://') || startsWithI(url, 'https://');
}

/** RFC 9110 section 9.2.2: methods whose repetition has the same intended effect. */
export function isIdempotent(method: string): boolean {
  switch (method) {
    case 'GET':
    case 'HEAD':
    case 'OPTIONS':
    case 'TRACE':
    case 'PUT':
    case 'DELETE':
      return true;
    default:
      return false;
  }
}

/** `ip:port` / `[v6]:port` split (as formatHostPort writes it); undefined when malformed. */
export function parseClient(value: string): { ip: string; port: number } | undefined {
  const colon = value.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const port = Number(value.slice(colon + 1));
  let ip = value.slice(0, colon);
  if (ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
  if (!Number.isInteger(port) || port < 0 || port > 65535 || ip === '') return undefined;
  return { ip, port };
}
