/**
 * HTTP/2 message heads to and from the engine's HTTP/1.1 form (RFC 9113 section 8). Pure: no I/O,
 * unit-tested on their own (test/proxy/http/h2-head.test.ts).
 *
 * Request (client → engine): the pseudo-header fields become the request line (`:method`,
 * `:path`) and Host (`:authority`, RFC 9113 section 8.3.1; a Host field is only a fallback, and
 * one that names another authority makes the request malformed); `cookie` fields, which HTTP/2
 * lets a client split (section 8.2.3), are joined with "; " into one; connection-specific fields
 * (section 8.2.2: Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade, and TE
 * other than "trailers") make the request malformed — nghttp2 refuses them already, this is the
 * second line. The result is the flat `[name, value, …]` list the engine's head functions take
 * (head.ts), so routing, flow keys, header rules and the head for the next hop are the same code
 * as for HTTP/1.1.
 *
 * Response (engine → client): the fields of the HTTP/1.1 response tandem wrote for the client
 * become an HTTP/2 header object with `:status`, names lower-cased (section 8.2.1), hop-by-hop
 * fields left out (section 8.2.2).
 */
import type { OutgoingHttpHeaders } from 'node:http2';

/** A request's header list at most this (RFC 9113 section 6.5.2 size: name, value and 32 bytes per field); twice the HTTP/1.1 head limit. */
export const H2_MAX_HEADER_LIST_SIZE = 32 * 1024;
export const H2_MAX_HEADER_PAIRS = 128;

/** The RFC 9113 section 6.5.2 size of a flat raw header list. */
export function headerListSize(raw: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i++) n += raw[i].length;
  return n + 16 * raw.length;
}

/** A client's HTTP/2 request head, as the engine takes it. */
export interface H2RequestHead {
  readonly method: string;
  /** `:path` (origin-form, or `*` for OPTIONS). */
  readonly path: string;
  /** Host first (from :authority, else a Host field, else ''), then the other fields in order; one joined cookie last. */
  readonly fields: string[];
  /** Why the head is malformed (answered 400), or null. */
  readonly problem: string | null;
}

/**
 * The head of a client request from node:http2's flat raw header list (`[name, value, …]`,
 * pseudo-header fields first, names lower case as RFC 9113 section 8.2.1 requires).
 */
export function h2RequestHead(raw: readonly string[]): H2RequestHead {
  let method = '';
  let path = '';
  let authority: string | undefined;
  let host: string | undefined;
  let cookie: string | undefined;
  let problem: string | null = null;
  const fields: string[] = ['host', ''];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    if (name.charCodeAt(0) === 58 /* : */) {
      switch (name) {
        case ':method':
          method = value;
          break;
        case ':path':
          path = value;
          break;
        case ':authority':
          authority = value;
          break;
        case ':scheme':
          break;
        default:
          // :protocol (extended CONNECT, RFC 8441) and anything else: not served.
          problem ??= `pseudo-header ${name}`;
      }
      continue;
    }
    switch (name) {
      case 'host':
        if (host === undefined) host = value;
        else problem ??= 'repeated host';
        continue;
      case 'cookie':
        cookie = cookie === undefined ? value : `${cookie}; ${value}`;
        continue;
      case 'connection':
      case 'keep-alive':
      case 'proxy-connection':
      case 'transfer-encoding':
      case 'upgrade':
        problem ??= `connection-specific field ${name}`;
        continue;
      case 'te':
        if (value.trim().toLowerCase() !== 'trailers') problem ??= 'te other than trailers';
        continue;
    }
    fields.push(name, value);
  }
  if (authority !== undefined && host !== undefined && authority.toLowerCase() !== host.toLowerCase()) problem ??= 'host differs from :authority';
  fields[1] = authority ?? host ?? '';
  if (cookie !== undefined) fields.push('cookie', cookie);
  // RFC 9113 section 8.5: CONNECT has no :path (and is refused by the engine with 405).
  if (method === '' || (path === '' && method !== 'CONNECT')) problem ??= 'missing :method or :path';
  return { method, path, fields, problem };
}

/** Fields that are never sent in an HTTP/2 response (RFC 9113 section 8.2.2). */
function isConnectionSpecific(lower: string): boolean {
  switch (lower) {
    case 'connection':
    case 'keep-alive':
    case 'proxy-connection':
    case 'transfer-encoding':
    case 'upgrade':
    case 'te':
    case 'http2-settings':
      return true;
    default:
      return false;
  }
}

/** The HTTP/2 response head for the fields of an HTTP/1.1 response head (as the engine wrote it for the client). */
export function h2ResponseHeaders(status: number, raw: readonly string[]): OutgoingHttpHeaders {
  const h: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  h[':status'] = String(status);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (isConnectionSpecific(name)) continue;
    const value = raw[i + 1];
    const prev = h[name];
    if (prev === undefined) h[name] = value;
    else if (typeof prev === 'string') h[name] = [prev, value];
    else prev.push(value);
  }
  return h;
}

/**
 * The same head with every repeated field cut to its first value: node:http2 refuses repeats of
 * fields it knows as single-valued (content-type, location, …), which an HTTP/1.1 backend may send.
 */
export function firstValues(h: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = Object.create(null) as OutgoingHttpHeaders;
  for (const [k, v] of Object.entries(h)) out[k] = Array.isArray(v) && k !== 'set-cookie' ? v[0] : v;
  return out;
}
