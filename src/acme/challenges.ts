/**
 * HTTP-01 answers this node knows (RFC 8555 section 8.3): token → key authorization, each with an
 * expiry so that an order abandoned by a dead node leaves nothing behind for long.
 */
export const CHALLENGE_PREFIX = '/.well-known/acme-challenge/';
const TOKEN = /^[A-Za-z0-9_-]{1,256}$/;

export class ChallengeTable {
  readonly #entries = new Map<string, { readonly keyAuthorization: string; readonly expiresAt: number }>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  get size(): number {
    return this.#entries.size;
  }

  put(token: string, keyAuthorization: string, expiresAt: number): void {
    this.#entries.set(token, { keyAuthorization, expiresAt });
  }

  remove(token: string): void {
    this.#entries.delete(token);
  }

  /** The answers still valid, to hand to a peer whose link comes up. */
  live(): { token: string; keyAuthorization: string; expiresAt: number }[] {
    const now = this.#now();
    return [...this.#entries].filter(([, e]) => e.expiresAt > now).map(([token, e]) => ({ token, ...e }));
  }

  /** Drops expired answers. */
  expire(): void {
    const now = this.#now();
    for (const [t, e] of this.#entries) if (e.expiresAt <= now) this.#entries.delete(t);
  }

  /**
   * The body to answer a request path with, or null when the path is no challenge this node
   * knows (the caller then routes the request as usual). The query string is ignored.
   */
  response(path: string): string | null {
    if (!path.startsWith(CHALLENGE_PREFIX)) return null;
    const q = path.indexOf('?');
    const token = path.slice(CHALLENGE_PREFIX.length, q < 0 ? undefined : q);
    if (!TOKEN.test(token)) return null;
    const e = this.#entries.get(token);
    if (e === undefined || e.expiresAt <= this.#now()) return null;
    return e.keyAuthorization;
  }
}
