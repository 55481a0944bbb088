/**
 * Route matching (pure): the first route, in config order, whose every condition holds. Indexed
 * so that the cost does not grow with the number of routes:
 *
 *   host      exact hosts in a Map, "*.suffix" (one label, as in TLS wildcards, RFC 6125 §6.4.3)
 *             in a Map by suffix, routes without a host in one bucket — at most three buckets;
 *   path      per bucket, a radix trie of the path prefixes: walking the request path once
 *             visits every route whose prefix it starts with;
 *   the rest  (method, header values) checked only on the routes those two leave, in order.
 *
 * A request costs O(length of its path) plus the routes that share its host and a prefix of its
 * path, whatever the table holds. Config order is kept: each trie node keeps its routes by
 * ascending index and the smallest passing index over all buckets wins.
 */
import { normalizeHost } from './normalize.js';

export interface RouteMatch {
  /** Exact, or "*.example.com" for any one label in front of example.com. */
  readonly host?: string;
  readonly pathPrefix?: string;
  readonly method?: string;
  /** Header values that must be equal (names case-insensitive, values exact). */
  readonly header?: Readonly<Record<string, string>>;
}

/** The request as matching sees it: normalised host and path (normalize.ts). */
export interface MatchRequest {
  readonly host: string;
  readonly path: string;
  readonly method: string;
  /** A header's value (lower-case name); undefined when absent. */
  header(name: string): string | undefined;
}

interface Compiled {
  readonly index: number;
  readonly method: string | null;
  /** [lower-case name, value] pairs. */
  readonly headers: ReadonlyArray<readonly [string, string]> | null;
}

/** A radix-trie node: the edge into it is `label`; children start with distinct characters. */
class TrieNode {
  label: string;
  children: TrieNode[] = [];
  /** Routes whose prefix ends here, by ascending index. */
  readonly routes: Compiled[] = [];

  constructor(label: string) {
    this.label = label;
  }
}

function commonPrefix(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

class Bucket {
  readonly root = new TrieNode('');

  add(prefix: string, r: Compiled): void {
    let n = this.root;
    let rest = prefix;
    outer: while (rest.length > 0) {
      for (let k = 0; k < n.children.length; k++) {
        let child = n.children[k];
        const common = commonPrefix(child.label, rest);
        if (common === 0) continue;
        if (common < child.label.length) {
          // Split the edge: the shared part becomes a node of its own.
          const mid = new TrieNode(child.label.slice(0, common));
          child.label = child.label.slice(common);
          mid.children.push(child);
          n.children[k] = mid;
          child = mid;
        }
        n = child;
        rest = rest.slice(common);
        continue outer;
      }
      const leaf = new TrieNode(rest);
      n.children.push(leaf);
      n = leaf;
      rest = '';
    }
    n.routes.push(r);
  }

  /** Smallest index below `best` that matches, or `best`. */
  best(req: MatchRequest, best: number): number {
    const path = req.path;
    let n: TrieNode = this.root;
    let i = 0;
    for (;;) {
      const rs = n.routes;
      for (let j = 0; j < rs.length; j++) {
        const r = rs[j];
        if (r.index >= best) break;
        if (passes(r, req)) {
          best = r.index;
          break;
        }
      }
      const cs = n.children;
      let next: TrieNode | null = null;
      for (let k = 0; k < cs.length; k++) {
        if (path.startsWith(cs[k].label, i)) {
          next = cs[k]!;
          break;
        }
      }
      if (next === null) return best;
      i += next.label.length;
      n = next;
    }
  }
}

function passes(r: Compiled, req: MatchRequest): boolean {
  if (r.method !== null && r.method !== req.method) return false;
  const hs = r.headers;
  if (hs !== null) for (let i = 0; i < hs.length; i++) if (req.header(hs[i][0]) !== hs[i][1]) return false;
  return true;
}

export class RouteMatcher {
  readonly #exact = new Map<string, Bucket>();
  readonly #wild = new Map<string, Bucket>();
  readonly #any = new Bucket();
  readonly #hasHosts: boolean;
  readonly size: number;

  constructor(matches: readonly RouteMatch[]) {
    this.size = matches.length;
    let hasHosts = false;
    matches.forEach((m, index) => {
      const c: Compiled = {
        index,
        method: m.method === undefined ? null : m.method.toUpperCase(),
        headers: m.header === undefined || Object.keys(m.header).length === 0 ? null : Object.entries(m.header).map(([k, v]) => [k.toLowerCase(), v] as const),
      };
      const prefix = m.pathPrefix ?? '';
      if (m.host === undefined) return this.#any.add(prefix, c);
      hasHosts = true;
      const h = m.host.toLowerCase();
      if (h.startsWith('*.')) bucketOf(this.#wild, normalizeHost(h.slice(1))).add(prefix, c);
      else bucketOf(this.#exact, normalizeHost(h)).add(prefix, c);
    });
    this.#hasHosts = hasHosts;
  }

  /** Index of the first route that matches, or -1. */
  match(req: MatchRequest): number {
    let best = this.#any.best(req, this.size);
    if (this.#hasHosts && req.host.length > 0) {
      const exact = this.#exact.get(req.host);
      if (exact !== undefined) best = exact.best(req, best);
      const dot = req.host.indexOf('.');
      if (dot > 0) {
        // "*.example.com" is stored under ".example.com": one label in front, not more.
        const wild = this.#wild.get(req.host.slice(dot));
        if (wild !== undefined) best = wild.best(req, best);
      }
    }
    return best === this.size ? -1 : best;
  }
}

function bucketOf(map: Map<string, Bucket>, key: string): Bucket {
  let b = map.get(key);
  if (b === undefined) map.set(key, (b = new Bucket()));
  return b;
}

/**
 * Whether every request `later` matches is matched by `earlier` too (so `later` can never win).
 * Used by validation to report unreachable routes.
 */
export function covers(earlier: RouteMatch, later: RouteMatch): boolean {
  if (earlier.host !== undefined) {
    if (later.host === undefined) return false;
    const e = earlier.host.toLowerCase();
    const l = later.host.toLowerCase();
    if (e !== l) {
      if (!e.startsWith('*.') || l.startsWith('*.')) return false;
      const dot = l.indexOf('.');
      if (dot <= 0 || normalizeHost(l.slice(dot)) !== normalizeHost(e.slice(1))) return false;
    }
  }
  if (earlier.pathPrefix !== undefined && !(later.pathPrefix ?? '').startsWith(earlier.pathPrefix)) return false;
  if (earlier.method !== undefined && earlier.method.toUpperCase() !== later.method?.toUpperCase()) return false;
  if (earlier.header !== undefined) {
    const lh = new Map(Object.entries(later.header ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    for (const [k, v] of Object.entries(earlier.header)) if (lh.get(k.toLowerCase()) !== v) return false;
  }
  return true;
}
