/**
 * What a route matches on, made canonical (pure). Routes match the normalised form; the request
 * is forwarded with its original bytes (a proxy that rewrites the path it forwards changes what
 * the backend sees and opens smuggling-by-normalisation gaps).
 *
 * - Host (RFC 9110 §7.2, RFC 3986 §3.2.2): lower case, port removed, one trailing dot removed;
 *   an IPv6 literal keeps its brackets. For an absolute-form target the authority of the target
 *   wins over the Host field (RFC 9112 §3.2.2).
 * - Path (RFC 3986 §6.2.2): percent-encodings of unreserved characters decoded, the hex of the
 *   others upper-cased, dot segments removed (§5.2.4), the query left out. An encoded "/" (%2F)
 *   stays encoded: it is data, not a separator, so "/a%2Fb" never matches a prefix "/a/".
 */

const HEX = '0123456789ABCDEF';

function isUnreserved(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** The host a route matches: "" when there is none. */
export function normalizeHost(raw: string | undefined): string {
  if (raw === undefined) return '';
  let h = raw;
  if (h.charCodeAt(0) === 0x20 || h.charCodeAt(h.length - 1) === 0x20 || h.charCodeAt(0) === 0x09) h = h.trim();
  if (h.length === 0) return '';
  if (h.charCodeAt(0) === 0x5b /* [ */) {
    const close = h.indexOf(']');
    return close < 0 ? h.toLowerCase() : h.slice(0, close + 1).toLowerCase();
  }
  const colon = h.lastIndexOf(':');
  if (colon >= 0) h = h.slice(0, colon);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h.toLowerCase();
}

export interface Target {
  /** The normalised host of an absolute-form target, or null for origin-form. */
  readonly host: string | null;
  /** The normalised path (no query). */
  readonly path: string;
}

/** Splits a request target (origin-form or absolute-form) and normalises its path. */
export function normalizeTarget(target: string): Target {
  let host: string | null = null;
  let rest = target;
  if (target.charCodeAt(0) !== 0x2f /* / */) {
    // absolute-form: scheme "://" authority path-abempty [ "?" query ]
    const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)(.*)$/.exec(target);
    if (m !== null) {
      const authority = m[1];
      const at = authority.lastIndexOf('@');
      host = normalizeHost(at >= 0 ? authority.slice(at + 1) : authority);
      rest = m[2].length === 0 ? '/' : m[2];
    } else if (target === '*') return { host: null, path: '*' };
  }
  let q = rest.indexOf('?');
  const hash = rest.indexOf('#');
  if (hash >= 0 && (q < 0 || hash < q)) q = hash;
  const rawPath = q < 0 ? rest : rest.slice(0, q);
  return { host, path: removeDotSegments(decodeUnreserved(rawPath)) };
}

/** Percent-decodes unreserved characters only; upper-cases the hex of what stays encoded. */
export function decodeUnreserved(p: string): string {
  if (p.indexOf('%') < 0) return p;
  let out = '';
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c === 0x25 && i + 2 < p.length) {
      const hi = hexValue(p.charCodeAt(i + 1));
      const lo = hexValue(p.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        const v = hi * 16 + lo;
        out += isUnreserved(v) ? String.fromCharCode(v) : `%${HEX[hi]}${HEX[lo]}`;
        i += 2;
        continue;
      }
    }
    out += p[i];
  }
  return out;
}

/** RFC 3986 §5.2.4, for an absolute path; the result always starts with "/". */
export function removeDotSegments(path: string): string {
  // Most paths have no dot segment ("/app.js" has a dot but none): leave them untouched.
  if (path.indexOf('/.') < 0) return path.length === 0 ? '/' : path;
  const segs = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i];
    const last = i === segs.length - 1;
    if (s === '.') {
      if (last) out.push('');
    } else if (s === '..') {
      out.pop();
      if (last) out.push('');
    } else out.push(s);
  }
  return '/' + out.join('/');
}
