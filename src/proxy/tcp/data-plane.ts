/**
 * The receiving end of TCP forwards: streams of channel 'tcp' that peers open to this node's
 * peerPort (docs/design.md, cluster links and security: every port that accepts traffic from peers rejects what is not
 * authenticated; a client must never be able to forge a forwarded flow or a client address).
 *
 * The cluster transport has already authenticated the peer. Each stream must then start with a
 * forward header (stream-header.ts) that passes, in order: layout, MAC (constant time), ingress =
 * the authenticated peer, nonce not seen (replay.ts; freshness is the stream's own handshake, no
 * clock is read). Anything else
 * is refused — the stream is destroyed without an answer — and counted in
 * tandem_tcp_forward_rejected_total{reason} (malformed, mac, misrouted, stale, replay, timeout,
 * unknown-service). A pre-opened stream (peer-pool.ts) may wait for its
 * header a long time; one that closes before sending a byte is not an error.
 */
import type { Duplex } from 'node:stream';
import type { ProxyContext } from '../context.js';
import type { TcpMetrics } from './metrics.js';
import { halfOpen, readExactly } from './pipe.js';
import { ReplayCache, type ReplayCacheOptions } from './replay.js';
import { ForwardStatus } from './forward.js';
import type { TcpServiceProxy } from './service.js';
import {
  HEADER_PREFIX_BYTES,
  decodeForwardHeader,
  deriveForwardKey,
  remainingHeaderBytes,
  type ForwardHeader,
} from './stream-header.js';

/** Metric labels, the words the UDP data plane uses for the same checks (`mac`, `misrouted`). */
export type ForwardRejectReason = 'malformed' | 'mac' | 'misrouted' | 'replay' | 'timeout' | 'unknown-service';

export interface TcpDataPlaneOptions {
  /** How long a stream may wait for its header: longer than the pool's idle recycling (30 s). Default 60 s. */
  readonly headerTimeoutMs?: number;
  /** Once the first header byte arrived, the rest must follow within this. Default 5 s. */
  readonly headerRestMs?: number;
  readonly replay?: ReplayCacheOptions;
}

const noop = () => {};
const UNKNOWN_SERVICE = Buffer.from([ForwardStatus.UNKNOWN_SERVICE]);

export class TcpDataPlane {
  readonly #ctx: ProxyContext;
  readonly #lookup: (service: string) => TcpServiceProxy | undefined;
  readonly #key: Buffer;
  readonly #replay: ReplayCache;
  readonly #m: TcpMetrics;
  readonly #headerTimeoutMs: number;
  readonly #headerRestMs: number;
  readonly #pending = new Set<Duplex>();
  #started = false;
  #stopped = false;

  /** `metrics`: the node's TCP metric set, shared with its TCP services (made once per node). */
  constructor(ctx: ProxyContext, lookup: (service: string) => TcpServiceProxy | undefined, metrics: TcpMetrics, opts: TcpDataPlaneOptions = {}) {
    this.#ctx = ctx;
    this.#lookup = lookup;
    this.#key = deriveForwardKey(ctx.secret);
    this.#replay = new ReplayCache(opts.replay);
    this.#m = metrics;
    this.#headerTimeoutMs = opts.headerTimeoutMs ?? 60_000;
    this.#headerRestMs = opts.headerRestMs ?? 5000;
  }

  /** Registers the 'tcp' channel handler (once per node). */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#ctx.dataPlane.onChannel('tcp', (socket, peerId) => {
      this.accept(socket, peerId).catch((err: unknown) => {
        this.#ctx.logger.error({ peer: peerId, err }, 'tcp forward handling failed');
        socket.destroy();
      });
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const s of this.#pending) s.destroy();
    this.#pending.clear();
  }

  /**
   * Handles one authenticated stream from `peerId`: reads and checks its header, then hands it to
   * the service. Resolves with the verified header, or the reason it was refused. Public so that
   * tests can feed it a stream directly.
   */
  async accept(stream: Duplex, peerId: string): Promise<ForwardHeader | ForwardRejectReason | 'closed'> {
    stream.on('error', noop);
    if (this.#stopped) {
      stream.destroy();
      return 'closed';
    }
    halfOpen(stream);
    this.#pending.add(stream);
    try {
      const h = await this.#readHeader(stream, peerId);
      if (typeof h === 'string') {
        if (h !== 'closed') {
          this.#m.forwardRejected.inc({ reason: h });
          this.#ctx.logger.warn({ peer: peerId, reason: h }, 'tcp forward refused');
        }
        stream.destroy();
        return h;
      }
      const svc = this.#lookup(h.service);
      if (!svc) {
        // A reload may have removed the service here and not yet there: the sender tries the next owner.
        this.#m.forwardRejected.inc({ reason: 'unknown-service' });
        stream.end(UNKNOWN_SERVICE);
        return 'unknown-service';
      }
      this.#pending.delete(stream);
      await svc.serveForwarded(stream, h);
      return h;
    } finally {
      this.#pending.delete(stream);
    }
  }

  async #readHeader(stream: Duplex, peerId: string): Promise<ForwardHeader | ForwardRejectReason | 'closed'> {
    const first = await readExactly(stream, 1, this.#headerTimeoutMs);
    if (first === null) return stream.destroyed || stream.readableEnded ? 'closed' : 'timeout';
    stream.unshift(first);
    const prefix = await readExactly(stream, HEADER_PREFIX_BYTES, this.#headerRestMs);
    if (prefix === null) return 'malformed';
    const rest = remainingHeaderBytes(prefix);
    if (rest === null) return 'malformed';
    const tail = await readExactly(stream, rest, this.#headerRestMs);
    if (tail === null) return 'malformed';
    const d = decodeForwardHeader(this.#key, Buffer.concat([prefix, tail]));
    if (!d.ok) return d.reason === 'bad_mac' ? 'mac' : d.reason;
    // A stream is never forwarded twice, so the ingress node is always the peer that sent it.
    if (d.header.ingress !== peerId) return 'misrouted';
    const v = this.#replay.check(d.header.ingress, d.header.nonce);
    if (v !== 'ok') return v;
    return d.header;
  }
}
