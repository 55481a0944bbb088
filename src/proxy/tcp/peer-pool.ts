/**
 * Pre-opened data-plane streams to each peer so that a new client connection does
 * not pay a peer handshake (docs/tcp.md, "Pre-opened streams").
 *
 * A dial costs a TCP handshake plus the transport's challenge–response; a pooled stream costs
 * nothing but the forward header. Each peer that is not seen dead gets up to `size` idle streams,
 * refilled in the background with at most `parallel` dials in flight per peer (so a burst of takes
 * cannot become a dial storm), with a back-off after a failed dial. Idle streams are recycled after `maxIdleMs`,
 * well inside the receiver's wait for a header, and dropped as soon as the peer closes them (a
 * peer that dies closes them all, which is how a stale stream is usually noticed before use).
 *
 * One pool per node (tcpPeerPool(), made by the composition root), shared by its TCP services:
 * started while the node runs a TCP service, stopped (idle streams closed) when it runs none.
 */
import type { Duplex } from 'node:stream';
import type { ProxyContext } from '../context.js';
import type { TcpMetrics } from './metrics.js';

export interface PeerPoolOptions {
  /** Idle streams kept per peer when forwards are rare. Default 8; 0 disables pre-opening. */
  readonly size?: number;
  /** The most idle streams kept per peer while forwards outrun the pool. Default 64. */
  readonly maxSize?: number;
  /** Background dials in flight per peer (more while the pool is grown, up to 4×). Default 2. */
  readonly parallel?: number;
  /** An idle stream older than this is closed and replaced. Default 30 s. */
  readonly maxIdleMs?: number;
  /** Wait after a failed dial before the next background dial to that peer. Default 1 s. */
  readonly retryMs?: number;
  /** Background maintenance period (cheap: a pass over the peers). Default 250 ms. */
  readonly tickMs?: number;
  /** Told of every take: served from the pool, or had to dial (for metrics). */
  readonly onTake?: (pooled: boolean) => void;
  /** Told of every dial and whether it failed. */
  readonly onDial?: (ok: boolean) => void;
}

interface Idle {
  readonly stream: Duplex;
  readonly since: number;
  readonly gone: () => void;
}

interface PeerSlots {
  idle: Idle[];
  dialing: number;
  retryAt: number;
  /** Idle streams wanted now: doubled by a take that found none, shrunk back by quiet ticks. */
  want: number;
  missed: boolean;
}

export interface PeerPoolStats {
  /** Takes served from the pool. */
  hits: number;
  /** Takes that had to dial. */
  misses: number;
  dials: number;
  dialFailures: number;
}

export class PeerPool {
  readonly #dial: (peer: string) => Promise<Duplex>;
  readonly #peers: () => readonly string[];
  readonly #size: number;
  readonly #maxSize: number;
  readonly #parallel: number;
  readonly #maxIdleMs: number;
  readonly #retryMs: number;
  readonly #tickMs: number;
  readonly #onTake: (pooled: boolean) => void;
  readonly #onDial: (ok: boolean) => void;
  readonly #slots = new Map<string, PeerSlots>();
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  readonly stats: PeerPoolStats = { hits: 0, misses: 0, dials: 0, dialFailures: 0 };

  /** `peers` lists the peers worth keeping warm (not self, not seen dead), read at every tick. */
  constructor(dial: (peer: string) => Promise<Duplex>, peers: () => readonly string[], opts: PeerPoolOptions = {}) {
    this.#dial = dial;
    this.#peers = peers;
    this.#size = Math.max(0, opts.size ?? 8);
    this.#maxSize = Math.max(this.#size, opts.maxSize ?? 64);
    this.#parallel = Math.max(1, opts.parallel ?? 2);
    this.#maxIdleMs = opts.maxIdleMs ?? 30_000;
    this.#retryMs = opts.retryMs ?? 1000;
    this.#tickMs = opts.tickMs ?? 250;
    this.#onTake = opts.onTake ?? (() => {});
    this.#onDial = opts.onDial ?? (() => {});
  }

  start(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setInterval(() => this.#tick(), this.#tickMs);
    this.#timer.unref();
    this.#tick();
  }

  /** Idle streams wanted for `peer` now (grows while takes find none, shrinks back when quiet). */
  target(peer: string): number {
    return this.#slots.get(peer)?.want ?? this.#size;
  }

  /** Idle streams currently held for `peer`. */
  idle(peer: string): number {
    return this.#slots.get(peer)?.idle.length ?? 0;
  }

  /** A stream to `peer`: an idle pre-opened one when there is one (pooled: true), else a fresh dial. */
  async take(peer: string): Promise<{ stream: Duplex; pooled: boolean }> {
    const slots = this.#slots.get(peer);
    while (slots && slots.idle.length > 0) {
      const item = slots.idle.pop()!;
      this.#detach(item);
      if (item.stream.destroyed || !item.stream.writable) continue;
      this.stats.hits++;
      this.#onTake(true);
      this.#refill(peer);
      return { stream: item.stream, pooled: true };
    }
    this.stats.misses++;
    // Forwards outran the pool: keep more streams warm for this peer (a dial costs a TCP and an
    // authentication handshake, which at high connection rates is most of a forward's cost).
    const s = this.#slotsOf(peer);
    s.want = Math.min(this.#maxSize, Math.max(1, s.want * 2));
    s.missed = true;
    this.#onTake(false);
    const stream = await this.dial(peer);
    this.#refill(peer);
    return { stream, pooled: false };
  }

  /** A fresh stream, bypassing the pool (used to retry after a pooled stream turned out stale). */
  async dial(peer: string): Promise<Duplex> {
    this.stats.dials++;
    try {
      const s = await this.#dial(peer);
      this.#onDial(true);
      return s;
    } catch (err) {
      this.stats.dialFailures++;
      this.#onDial(false);
      throw err;
    }
  }

  /** Stops keeping streams warm and closes the idle ones; start() may follow. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    for (const slots of this.#slots.values()) this.#drop(slots, () => true);
  }

  /** For good: nothing is kept or dialled any more. */
  close(): void {
    this.#closed = true;
    this.stop();
    this.#slots.clear();
  }

  #slotsOf(peer: string): PeerSlots {
    let s = this.#slots.get(peer);
    if (!s) this.#slots.set(peer, (s = { idle: [], dialing: 0, retryAt: 0, want: this.#size, missed: false }));
    return s;
  }

  #tick(): void {
    if (this.#closed) return;
    const now = Date.now();
    const want = new Set(this.#peers());
    for (const [peer, slots] of this.#slots) {
      if (!want.has(peer)) {
        this.#drop(slots, () => true);
        if (slots.dialing === 0) this.#slots.delete(peer);
        continue;
      }
      this.#drop(slots, (i) => now - i.since > this.#maxIdleMs);
      if (!slots.missed && slots.want > this.#size) slots.want = Math.max(this.#size, slots.want - Math.ceil(slots.want / 8));
      slots.missed = false;
    }
    for (const peer of want) this.#refill(peer);
  }

  #drop(slots: PeerSlots, pred: (i: Idle) => boolean): void {
    const keep: Idle[] = [];
    for (const item of slots.idle) {
      if (pred(item)) {
        this.#detach(item);
        item.stream.destroy();
      } else {
        keep.push(item);
      }
    }
    slots.idle = keep;
  }

  #refill(peer: string): void {
    if (this.#closed || this.#size === 0 || !this.#timer) return;
    const slots = this.#slotsOf(peer);
    const parallel = Math.min(this.#parallel * 4, Math.max(this.#parallel, slots.want >> 3));
    while (slots.dialing < parallel && slots.idle.length + slots.dialing < slots.want && Date.now() >= slots.retryAt) {
      slots.dialing++;
      this.dial(peer).then(
        (stream) => {
          slots.dialing--;
          if (this.#closed || !this.#timer || !this.#peers().includes(peer)) {
            stream.destroy();
            return;
          }
          this.#park(slots, stream);
          this.#refill(peer);
        },
        () => {
          slots.dialing--;
          slots.retryAt = Date.now() + this.#retryMs;
        },
      );
    }
  }

  #park(slots: PeerSlots, stream: Duplex): void {
    // An idle stream that the peer closes, errors, or (wrongly) sends on is useless: drop it.
    const gone = () => {
      const i = slots.idle.findIndex((x) => x.stream === stream);
      if (i >= 0) {
        this.#detach(slots.idle[i]);
        slots.idle.splice(i, 1);
      }
      stream.destroy();
      if (!this.#closed) slots.retryAt = 0;
    };
    const item: Idle = { stream, since: Date.now(), gone };
    stream.on('close', gone);
    stream.on('end', gone);
    stream.on('error', gone);
    stream.on('readable', gone);
    slots.idle.push(item);
  }

  #detach(item: Idle): void {
    item.stream.off('close', item.gone);
    item.stream.off('end', item.gone);
    item.stream.off('error', item.gone);
    item.stream.off('readable', item.gone);
  }
}

/**
 * The node's pool of streams to its peers for TCP forwards, made once by the composition root
 * (src/node/services.ts) and handed to every TCP service: it keeps warm the peers that are
 * configured, not this node, and not seen dead.
 */
export function tcpPeerPool(ctx: Pick<ProxyContext, 'nodes' | 'dataPlane'>, m: TcpMetrics, opts?: PeerPoolOptions): PeerPool {
  const dp = ctx.dataPlane;
  const peers = () => ctx.nodes().map((n) => n.id).filter((id) => id !== dp.selfId && dp.stateOf(id) !== 'dead');
  const pooled = m.peerStreams.labels({ event: 'take-pooled' });
  const dialled = m.peerStreams.labels({ event: 'take-dialled' });
  const dial = m.peerStreams.labels({ event: 'dial' });
  const dialFailed = m.peerStreams.labels({ event: 'dial-failed' });
  const hooks: PeerPoolOptions = {
    onTake: (p) => (p ? pooled : dialled).inc(),
    onDial: (ok) => (ok ? dial : dialFailed).inc(),
  };
  return new PeerPool((peer) => dp.dial(peer, 'tcp'), peers, { ...hooks, ...opts });
}
