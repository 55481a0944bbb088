/**
 * Header rules of a route (docs/http.md, "Header rules"), applied to a raw field list
 * ([name, value, name, value, ...] as llhttp gives it). Pure. Order: remove, then set (which
 * replaces every field of its name), then add — so that `set` wins over the original and `add`
 * appends to whatever is left. Hop-by-hop fields are still handled by the head writers after this.
 */
import type { HeaderRules } from '../config/routes-schema.js';

export function applyHeaderRules(raw: readonly string[], rules: HeaderRules): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (rules.remove.includes(name)) continue;
    if (rules.set.some(([n]) => n === name)) continue;
    out.push(raw[i], raw[i + 1]);
  }
  for (const [n, v] of rules.set) out.push(n, v);
  for (const [n, v] of rules.add) out.push(n, v);
  return out;
}

/** The first value of a field (lower-case name) in a raw field list. */
export function rawHeader(raw: readonly string[], lower: string): string | undefined {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const n = raw[i];
    if (n.length === lower.length && n.toLowerCase() === lower) return raw[i + 1];
  }
  return undefined;
}

/** A redirect's Location: `{host}` and `{path}` (the original target's path and query) filled in. */
export function redirectLocation(to: string, host: string, target: string): string {
  return to.replaceAll('{host}', host).replaceAll('{path}', target);
}
