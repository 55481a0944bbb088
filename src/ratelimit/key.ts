/**
 * The key a rate limit counts a request under (docs/http.md, "Rate limits"): `client-ip`,
 * `header:NAME` (its first value) or `cookie:NAME`. Pure. A request without the header or cookie
 * is counted under the empty key, so that leaving it out does not escape the limit.
 */
import { rawHeader } from '../routes/header-rules.js';

export type LimitKeySpec = { readonly kind: 'client-ip' } | { readonly kind: 'header'; readonly name: string } | { readonly kind: 'cookie'; readonly name: string };

export function parseLimitKey(key: string): LimitKeySpec {
  if (key.startsWith('header:')) return { kind: 'header', name: key.slice(7).toLowerCase() };
  if (key.startsWith('cookie:')) return { kind: 'cookie', name: key.slice(7) };
  return { kind: 'client-ip' };
}

export function limitKey(spec: LimitKeySpec, ip: string, raw: readonly string[]): string {
  switch (spec.kind) {
    case 'client-ip':
      return ip;
    case 'header':
      return rawHeader(raw, spec.name) ?? '';
    case 'cookie':
      return cookieValue(raw, spec.name) ?? '';
  }
}

/** RFC 6265 section 5.4: "name=value" pairs separated by "; ", in every Cookie field. */
export function cookieValue(raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i].toLowerCase() !== 'cookie') continue;
    for (const part of raw[i + 1].split(';')) {
      const eq = part.indexOf('=');
      if (eq < 0) continue;
      if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    }
  }
  return undefined;
}
