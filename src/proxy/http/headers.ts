/**
 * Header rewriting for the HTTP proxy: one pass over a message's raw field lines that drops the
 * connection-specific fields, remembers what the proxy needs (flow key source, framing, Expect,
 * tandem's own peer fields) and leaves a flat `[name, value, ...]` list that undici and node:http
 * take as they are. Pure functions, no I/O, so that the rules are unit-tested on their own.
 *
 * Rules (RFC 9110 section 7.6): a proxy removes the hop-by-hop fields — Connection, the fields
 * Connection names, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding (the framing is
 * redone by the next hop's stack) and Upgrade (except when tunnelling an upgrade) — and appends
 * itself to Via (section 7.6.3). The original client address travels in X-Forwarded-For (de facto)
 * and Forwarded (RFC 7239), both appended to whatever the client sent, once, at the receiving node.
 */

/** Fields that never cross a hop (RFC 9110 section 7.6.1, plus the legacy Proxy-Connection). */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Fields a client may not get removed by naming them in Connection. Naming Host or Content-Length
 * would break framing or routing at the backend; tandem's own fields are added after filtering.
 */
const NEVER_NOMINATED: ReadonlySet<string> = new Set(['host', 'content-length']);

/** Prefix of the fields peers use to carry a forwarded request's flow; never accepted from clients. */
export const TANDEM_PREFIX = 'x-tandem-';
export const H_SERVICE = 'x-tandem-service';
export const H_FLOW_KEY = 'x-tandem-flow-key';
export const H_CLIENT = 'x-tandem-client';

/** What one pass over a request's field lines found. */
export interface RequestHead {
  /** Field lines to send on, flat `[name, value, ...]`, original case; Via/XFF/Forwarded not yet added. */
  readonly headers: string[];
  /** The Via, X-Forwarded-For and Forwarded values received (repeated fields joined), or ''. */
  via: string;
  xff: string;
  forwarded: string;
  /** First value of the flow-key header, when the spec names one. */
  flowValue: string | undefined;
  /** Cookie field value(s), when the spec is a cookie. */
  cookie: string | string[] | undefined;
  /** Declared Content-Length, -1 when absent. */
  contentLength: number;
  /** Transfer-Encoding was present: a body of unknown length follows. */
  chunked: boolean;
  /** `Expect: 100-continue` (RFC 9110 section 10.1.1). */
  expectContinue: boolean;
  /** Number of Host field lines: RFC 9112 section 3.2 wants exactly one in HTTP/1.1. */
  hostCount: number;
  /** The Upgrade value (kept aside; sent only when tunnelling). */
  upgrade: string;
  /** Tandem's peer fields (only read when the request came from a peer). */
  service: string | undefined;
  flowKey: string | undefined;
  client: string | undefined;
}

function join(prev: string, value: string): string {
  return prev === '' ? value : `${prev}, ${value}`;
}

/**
 * Scans `raw` (node:http's `rawHeaders`). `flowHeader` is the lower-case header name of a
 * `header:NAME` flow key, `flowCookie` whether the key is a cookie. With `fromPeer` the x-tandem-*
 * fields are read (the peer link is authenticated); otherwise they are dropped unread, so that a
 * client can never forge a flow key or a client address.
 */
export function scanRequestHead(raw: readonly string[], flowHeader: string | null, flowCookie: boolean, fromPeer: boolean): RequestHead {
  const headers: string[] = [];
  const head: RequestHead = {
    headers,
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
    service: undefined,
    flowKey: undefined,
    client: undefined,
  };
  let nominated: string[] | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    const lc = name.toLowerCase();
    if (lc === flowHeader && head.flowValue === undefined) head.flowValue = value;
    switch (lc) {
      case 'connection': {
        // Tokens other than the standard options name further hop-by-hop fields (RFC 9110 7.6.1).
        for (const t of value.split(',')) {
          const tok = t.trim().toLowerCase();
          if (tok === '' || tok === 'close' || tok === 'keep-alive' || tok === 'upgrade' || NEVER_NOMINATED.has(tok)) continue;
          (nominated ??= []).push(tok);
        }
        continue;
      }
      case 'upgrade':
        head.upgrade = value;
        continue;
      case 'transfer-encoding':
        head.chunked = true;
        continue;
      case 'keep-alive':
      case 'proxy-connection':
      case 'te':
      case 'trailer':
        continue;
      case 'expect':
        // The proxy answers 100-continue itself when the body is wanted; undici sends no Expect.
        if (value.trim().toLowerCase() === '100-continue') head.expectContinue = true;
        continue;
      case 'via':
        head.via = join(head.via, value);
        continue;
      case 'x-forwarded-for':
        head.xff = join(head.xff, value);
        continue;
      case 'forwarded':
        head.forwarded = join(head.forwarded, value);
        continue;
      case 'host':
        head.hostCount++;
        break;
      case 'content-length':
        // node:http already refused conflicting or malformed lengths (strict parser).
        head.contentLength = Number(value);
        break;
      case 'cookie':
        if (flowCookie) head.cookie = head.cookie === undefined ? value : ([] as string[]).concat(head.cookie, value);
        break;
      case H_SERVICE:
        if (fromPeer) head.service = value;
        continue;
      case H_FLOW_KEY:
        if (fromPeer) head.flowKey = value;
        continue;
      case H_CLIENT:
        if (fromPeer) head.client = value;
        continue;
      default:
        if (lc.startsWith(TANDEM_PREFIX)) continue;
    }
    headers.push(name, value);
  }
  if (nominated !== null) removeNamed(headers, nominated);
  return head;
}

/** Removes, in place, the field lines whose lower-cased name is in `names`. */
function removeNamed(headers: string[], names: readonly string[]): void {
  let w = 0;
  for (let r = 0; r + 1 < headers.length; r += 2) {
    if (names.includes(headers[r].toLowerCase())) continue;
    headers[w++] = headers[r];
    headers[w++] = headers[r + 1];
  }
  headers.length = w;
}

/** This hop's Via entry: `<received-protocol> <received-by>` (RFC 9110 section 7.6.3). */
export function viaEntry(httpVersion: string, nodeId: string): string {
  return `${httpVersion} ${nodeId}`;
}

/** An RFC 7239 node: IPv4 bare, IPv6 in brackets and quoted (section 6, `node`, and section 4). */
export function forwardedNode(ip: string): string {
  return ip.includes(':') ? `"[${ip}]"` : ip;
}

/** The Forwarded element this node adds: `for=<client>;proto=http;by=_<node-id>` (obfnode, 6.3). */
export function forwardedElement(clientIp: string, nodeId: string): string {
  return `for=${forwardedNode(clientIp)};proto=http;by=_${nodeId}`;
}

/**
 * Appends Via (always), and at the receiving node X-Forwarded-For and Forwarded for the client.
 * `clientIp` null means "came from a peer": the peer already added the client, and the peer's own
 * address must not appear as if it were the client.
 */
export function addProxyHeaders(head: RequestHead, via: string, clientIp: string | null, nodeId: string): void {
  const h = head.headers;
  h.push('via', join(head.via, via));
  if (clientIp !== null) {
    h.push('x-forwarded-for', join(head.xff, clientIp));
    h.push('forwarded', join(head.forwarded, forwardedElement(clientIp, nodeId)));
  } else {
    if (head.xff !== '') h.push('x-forwarded-for', head.xff);
    if (head.forwarded !== '') h.push('forwarded', head.forwarded);
  }
}

/** A flow key as an x-tandem-flow-key value: keys may hold any printable character. */
export function encodeFlowKey(key: string): string {
  return encodeURIComponent(key);
}

/** The inverse of encodeFlowKey; undefined when malformed. */
export function decodeFlowKey(value: string): string | undefined {
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}

/** Splits `ip:port` / `[v6]:port` (as formatHostPort writes it); undefined when malformed. */
export function parseClient(value: string): { ip: string; port: number } | undefined {
  const colon = value.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const port = Number(value.slice(colon + 1));
  let ip = value.slice(0, colon);
  if (ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
  if (!Number.isInteger(port) || port < 0 || port > 65535 || ip === '') return undefined;
  return { ip, port };
}

/**
 * A response's field lines from undici's raw `Buffer[]` for node:http's `writeHead(status, array)`:
 * hop-by-hop fields dropped (the client-side stack redoes framing and keep-alive) and this hop
 * appended to Via, as RFC 9110 section 7.6.3 asks of every intermediary for responses too.
 * latin1 keeps every byte as it came (node:http writes header strings back as latin1).
 */
export function responseHeaders(raw: readonly Buffer[], via: string): string[] {
  const out: string[] = [];
  let viaValue = '';
  let nominated: string[] | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i].toString('latin1');
    const value = raw[i + 1].toString('latin1');
    const n = name.length;
    // Only names of these lengths can be hop-by-hop or Via; skip lower-casing the rest.
    if (n === 2 || n === 3 || n === 7 || n === 10 || n === 16 || n === 17) {
      const lc = name.toLowerCase();
      if (lc === 'via') {
        viaValue = join(viaValue, value);
        continue;
      }
      if (lc === 'connection') {
        for (const t of value.split(',')) {
          const tok = t.trim().toLowerCase();
          if (tok !== '' && tok !== 'close' && tok !== 'keep-alive' && !NEVER_NOMINATED.has(tok)) (nominated ??= []).push(tok);
        }
        continue;
      }
      if (HOP_BY_HOP.has(lc)) continue;
    }
    out.push(name, value);
  }
  if (nominated !== null) removeNamed(out, nominated);
  out.push('via', join(viaValue, via));
  return out;
}

/**
 * The head of a request written by hand (upgrade tunnels): request line, fields, blank line.
 * Values came from node:http's strict parser or from tandem itself, so no CR/LF can be in them.
 */
export function requestHeadText(method: string, url: string, headers: readonly string[]): string {
  let s = `${method} ${url} HTTP/1.1\r\n`;
  for (let i = 0; i + 1 < headers.length; i += 2) s += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return s + '\r\n';
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
