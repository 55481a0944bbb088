/**
 * Server names: normalisation, the names a certificate covers, and which certificate answers a
 * name (SNI). Pure, no I/O.
 *
 * Matching follows RFC 6125 section 6.4 as browsers apply it (CA/Browser Forum Baseline
 * Requirements 3.2.2.6): DNS names compare case-insensitively in ASCII (A-labels; an
 * internationalised name arrives as punycode both in SNI and in the certificate), a trailing dot
 * is not part of the name (RFC 6066 section 3 sends names without it, but some clients add it),
 * and a wildcard is allowed only as the whole left-most label, standing for exactly one label:
 * `*.example.com` covers `a.example.com`, not `example.com` nor `a.b.example.com`. Partial
 * wildcards (`w*.example.com`) are not honoured; such a name is ignored.
 *
 * Selection: an exact name beats a wildcard whatever the order of the certificates; among equal
 * candidates the first listed wins; a name that nothing covers (or no SNI at all) gets the first
 * certificate, the default.
 */

/** Longest DNS name (RFC 1035 section 2.3.4: 255 octets on the wire, 253 characters as text). */
export const MAX_NAME_LENGTH = 253;

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * The canonical form of a DNS name: lower-case ASCII, no trailing dot; null when it is not a
 * syntactically valid DNS name (empty labels, characters outside letters, digits, '-' and '_',
 * labels over 63 characters, over 253 in all, or an IP address literal, which SNI must not carry).
 * `_` is accepted because it occurs in real service names even though host names exclude it.
 */
export function normalizeName(name: string): string | null {
  let n = name;
  if (n.endsWith('.')) n = n.slice(0, -1);
  if (n.length === 0 || n.length > MAX_NAME_LENGTH) return null;
  n = n.toLowerCase();
  const labels = n.split('.');
  for (const l of labels) if (!LABEL.test(l)) return null;
  // All-numeric last label: an IPv4 literal or nonsense, never a DNS name (RFC 3696 section 2).
  if (/^[0-9]+$/.test(labels[labels.length - 1])) return null;
  return n;
}

/**
 * The canonical form of a name a certificate lists: a DNS name, or `*.` followed by one, with at
 * least two labels after the wildcard so that `*.com`-like names never match. Null otherwise.
 */
export function normalizePattern(pattern: string): string | null {
  if (pattern.startsWith('*.')) {
    const rest = normalizeName(pattern.slice(2));
    return rest !== null && rest.includes('.') ? `*.${rest}` : null;
  }
  return normalizeName(pattern);
}

/**
 * The DNS names of a `subjectAltName` string as node:crypto's X509Certificate gives it:
 * `DNS:a.example, DNS:*.a.example, IP Address:127.0.0.1`. Node quotes a value that holds a
 * comma, a quote or a non-printable character as a JSON string (since 17.3, CVE-2021-44532);
 * such a value is not a valid DNS name anyway and is decoded only to be dropped by the caller.
 */
export function parseSubjectAltName(san: string | undefined): string[] {
  if (san === undefined || san === '') return [];
  const out: string[] = [];
  let i = 0;
  while (i < san.length) {
    const colon = san.indexOf(':', i);
    if (colon < 0) break;
    const type = san.slice(i, colon).trim();
    let j = colon + 1;
    let value: string;
    if (san[j] === '"') {
      let k = j + 1;
      while (k < san.length && san[k] !== '"') k += san[k] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(san.slice(j, k + 1)) as string;
      } catch {
        value = '';
      }
      j = k + 1;
    } else {
      const comma = san.indexOf(', ', j);
      const end = comma < 0 ? san.length : comma;
      value = san.slice(j, end);
      j = end;
    }
    if (type === 'DNS') out.push(value);
    const next = san.indexOf(', ', j);
    i = next < 0 ? san.length : next + 2;
  }
  return out;
}

/** The common name (CN) in a subject string as X509Certificate gives it ("CN=a.example\nO=…"). */
export function commonName(subject: string): string | null {
  for (const line of subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return null;
}

/** Which names a certificate answers: its SAN DNS names, or its CN when it has none (legacy). */
export function certificateNames(subjectAltName: string | undefined, subject: string): string[] {
  const raw = parseSubjectAltName(subjectAltName);
  if (raw.length === 0) {
    const cn = commonName(subject);
    if (cn !== null) raw.push(cn);
  }
  const out: string[] = [];
  for (const r of raw) {
    const p = normalizePattern(r);
    if (p !== null && !out.includes(p)) out.push(p);
  }
  return out;
}

/** The result of a lookup: the index of the certificate, and whether a name matched. */
export interface NameMatch {
  readonly index: number;
  /** 'exact' or 'wildcard' when a certificate covers the name; 'default' when none does; 'none' without SNI. */
  readonly how: 'exact' | 'wildcard' | 'default' | 'none';
}

const NONE: NameMatch = Object.freeze({ index: 0, how: 'none' });
const DEFAULT: NameMatch = Object.freeze({ index: 0, how: 'default' });

/**
 * An index from names to certificates, built once per certificate set. Lookups are two map
 * probes at most; the normalisation of the asked name is the only allocation.
 */
export class NameIndex {
  readonly #exact = new Map<string, NameMatch>();
  readonly #wildcard = new Map<string, NameMatch>();

  /** `names[i]` are the patterns of certificate i, as certificateNames() returns them. */
  constructor(names: readonly (readonly string[])[]) {
    names.forEach((list, index) => {
      for (const p of list) {
        if (p.startsWith('*.')) {
          const rest = p.slice(2);
          if (!this.#wildcard.has(rest)) this.#wildcard.set(rest, Object.freeze({ index, how: 'wildcard' }));
        } else if (!this.#exact.has(p)) this.#exact.set(p, Object.freeze({ index, how: 'exact' }));
      }
    });
  }

  /** The certificate for a server name (null or '' for a ClientHello without SNI). */
  lookup(serverName: string | null): NameMatch {
    if (serverName === null || serverName === '') return NONE;
    const n = normalizeName(serverName);
    if (n === null) return DEFAULT;
    const exact = this.#exact.get(n);
    if (exact !== undefined) return exact;
    const dot = n.indexOf('.');
    if (dot > 0) {
      const w = this.#wildcard.get(n.slice(dot + 1));
      if (w !== undefined) return w;
    }
    return DEFAULT;
  }
}
