/**
 * Pooled HTTP/1.1 connections to peers, for forwarded requests (DESIGN.md section 4: "HTTP over
 * authenticated, pooled peer connections"). One undici Pool per peer whose `connect` hook returns a
 * stream from the cluster's data plane, already mutually authenticated: a connection costs one
 * TCP and one auth handshake, then carries request after request (keep-alive), never one per
 * request. Shared by every HTTP service of a node (the pools hang off the node's DataPlane).
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Pool } from 'undici';
import type { DataPlane } from '../context.js';
import { TandemError, ErrorCodes } from '../../errors.js';

/** Idle peer connections close after this; the peer side keeps them longer (see data-plane.ts). */
export const PEER_KEEP_ALIVE_MS = 60_000;
/** The peer side's keep-alive: longer, so that the forwarding side always closes first (no race). */
export const PEER_SERVER_KEEP_ALIVE_MS = 5 * 60_000;
/** Forwarded requests carry the client's fields plus a few; room above the client-side limit. */
export const PEER_MAX_HEADER_SIZE = 64 * 1024;

type ConnectCallback = (...args: [null, Socket] | [Error, null]) => void;

export class PeerPools {
  readonly #dp: DataPlane;
  readonly #pools = new Map<string, Pool>();
  /** Longest wait for an authenticated stream; a dial that takes longer counts as a failed forward. */
  dialTimeoutMs = 3000;
  /** Upper bound of connections per peer (requests queue beyond it). */
  connectionsPerPeer = 512;
  #closed = false;

  constructor(dp: DataPlane) {
    this.#dp = dp;
  }

  /** The pool for `peerId`, created on first use. */
  get(peerId: string): Pool {
    let pool = this.#pools.get(peerId);
    if (pool !== undefined) return pool;
    if (this.#closed) throw new TandemError(ErrorCodes.PEER_UNAVAILABLE, 'peer pools closed');
    const dp = this.#dp;
    // The origin only names the pool; the Host field of each request is the client's own.
    pool = new Pool('http://tandem-peer', {
      connect: (_opts: unknown, cb: ConnectCallback) => this.#dial(dp, peerId, cb),
      connections: this.connectionsPerPeer,
      pipelining: 1,
      keepAliveTimeout: PEER_KEEP_ALIVE_MS,
      keepAliveMaxTimeout: PEER_KEEP_ALIVE_MS,
      maxHeaderSize: PEER_MAX_HEADER_SIZE,
    });
    // A failed dial is reported to the waiting requests; the pool's own event needs no handler
    // beyond keeping it from being an unhandled 'error'.
    pool.on('connectionError', noop);
    this.#pools.set(peerId, pool);
    return pool;
  }

  #dial(dp: DataPlane, peerId: string, cb: ConnectCallback): void {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      cb(new TandemError(ErrorCodes.PEER_UNAVAILABLE, `dial to ${peerId} timed out`), null);
    }, this.dialTimeoutMs);
    dp.dial(peerId, 'http').then(
      (socket: Duplex) => {
        if (done) {
          socket.destroy();
          return;
        }
        done = true;
        clearTimeout(timer);
        (socket as Partial<Socket>).setNoDelay?.(true);
        // undici drives any Duplex; the type says Socket because that is what its own connector makes.
        cb(null, socket as Socket);
      },
      (err: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        cb(new TandemError(ErrorCodes.PEER_UNAVAILABLE, `dial to ${peerId} failed`, { cause: err }), null);
      },
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(noop)));
  }
}

function noop(): void {}

interface Shared {
  pools: PeerPools;
  users: number;
}
const shared = new WeakMap<DataPlane, Shared>();

/** The node's peer pools (one set per DataPlane), counted so that the last user closes them. */
export function acquirePeerPools(dp: DataPlane): PeerPools {
  let s = shared.get(dp);
  if (s === undefined || s.users === 0) {
    s = { pools: new PeerPools(dp), users: 0 };
    shared.set(dp, s);
  }
  s.users++;
  return s.pools;
}

export async function releasePeerPools(dp: DataPlane, pools: PeerPools): Promise<void> {
  const s = shared.get(dp);
  if (s === undefined || s.pools !== pools) return;
  if (--s.users > 0) return;
  shared.delete(dp);
  await pools.close();
}
