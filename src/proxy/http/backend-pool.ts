/**
 * undici Pools to a service's backends, one per address: keep-alive connections, one request at a
 * time on each (pipelining 1, so that a slow response never holds up another client's request).
 * The pools outlive reloads that keep the backend; a changed connect timeout renews them.
 */
import { Pool } from 'undici';
import type { UpstreamPool } from '../../upstream/pool.js';
import { formatHostPort } from '../../flowkey/index.js';

/** Idle backend connections close after this (undici's default; backends usually allow more). */
const BACKEND_KEEP_ALIVE_MS = 4000;
/** Response head limit from a backend; larger is a 502. */
const BACKEND_MAX_HEADER_SIZE = 32 * 1024;

function noop(): void {}

export class BackendClients {
  readonly #pools = new Map<string, Pool>();
  #connectMs: number;

  constructor(connectMs: number) {
    this.#connectMs = connectMs;
  }

  /** The pool for `address` (a backend of `upstream`), created on first use; null if unknown. */
  get(address: string, upstream: UpstreamPool): Pool | null {
    const found = this.#pools.get(address);
    if (found !== undefined) return found;
    const b = upstream.get(address);
    if (b === undefined) return null;
    const pool = new Pool(`http://${formatHostPort(b.host, b.port)}`, {
      pipelining: 1,
      connect: { timeout: this.#connectMs, noDelay: true },
      keepAliveTimeout: BACKEND_KEEP_ALIVE_MS,
      maxHeaderSize: BACKEND_MAX_HEADER_SIZE,
    });
    // Connect failures reach the waiting request; the event itself needs no handling.
    pool.on('connectionError', noop);
    this.#pools.set(address, pool);
    return pool;
  }

  /** A reload: pools of removed backends (all, when the connect timeout changed) close after their requests. */
  update(addresses: readonly string[], connectMs: number): void {
    const keep = new Set(addresses);
    const renew = connectMs !== this.#connectMs;
    this.#connectMs = connectMs;
    for (const [address, pool] of this.#pools) {
      if (renew || !keep.has(address)) {
        this.#pools.delete(address);
        void pool.close().catch(noop);
      }
    }
  }

  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(noop)));
  }
}
