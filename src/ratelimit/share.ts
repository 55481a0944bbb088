/**
 * The node's cluster-wide rate limiters (docs/rate-limits.md): one ClusterRateLimiter per service
 * or route with `rateLimit`, by flow-service name ("SERVICE" or "SERVICE/ROUTE"), and the sharing
 * of their counts. Every syncMs the node takes each limiter's counts of the period (sync()),
 * encodes them in one RATE_COUNTS control frame (codec.ts) and sends it to every peer; a received
 * frame is handed to the limiters by name (receive()). A frame that does not decode is refused
 * whole and counted; the link stays (a bad count is no reason to drop a member).
 *
 * A reload keeps the limiter (and its keys' state) of a service or route whose limit is unchanged.
 */
import type { Counter, Registry } from 'prom-client';
import { counter, gauge } from '../metrics.js';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { RateLimitConfig } from '../config/routes-schema.js';
import { FrameType, ByteWriter } from '../cluster/frame.js';
import { ClusterRateLimiter, type KeyCounts } from './limiter.js';
import { decodeCounts, encodeCounts } from './codec.js';

/** The part of Cluster (cluster.ts) the share uses. */
export interface RateSharePlane {
  readonly selfId: string;
  readonly nodeIds: readonly string[];
  alive(): ReadonlySet<string>;
  onControlFrame(type: number, handler: (peerId: string, payload: Buffer) => void): void;
  sendControl(peerId: string, frame: Buffer): boolean;
}

export interface RateLimitShareOptions {
  readonly plane: RateSharePlane;
  readonly registry: Registry;
  readonly logger: Logger;
  /** The sync period (docs/rate-limits.md: the error bound scales with it). */
  readonly syncMs?: number;
}

interface Held {
  readonly cfg: RateLimitConfig;
  readonly limiter: ClusterRateLimiter;
}

export const RATE_SYNC_MS = 50;

export class RateLimitShare {
  readonly #o: RateLimitShareOptions;
  readonly #syncMs: number;
  #limiters = new Map<string, Held>();
  #timer: NodeJS.Timeout | null = null;
  readonly #frames: Counter<'result'>;

  constructor(o: RateLimitShareOptions) {
    this.#o = o;
    this.#syncMs = o.syncMs ?? RATE_SYNC_MS;
    // The share is made once per node (src/node/node.ts), so are its metrics. The key counts are
    // read from the limiters at scrape time: the request path pays nothing for them.
    this.#frames = counter(o.registry, {
      name: 'tandem_ratelimit_frames_total',
      help: 'Rate-limit count frames received from peers, by result: applied, refused (did not decode).',
      labelNames: ['result'],
    });
    const held = () => this.#limiters;
    gauge(o.registry, {
      name: 'tandem_ratelimit_keys',
      help: 'Keys a rate limiter holds on this node, and keys it forgot because of maxKeys (kind="evicted", cumulative).',
      labelNames: ['limiter', 'kind'],
      collect() {
        this.reset();
        for (const [name, h] of held()) {
          this.set({ limiter: name, kind: 'held' }, h.limiter.size);
          this.set({ limiter: name, kind: 'evicted' }, h.limiter.evicted);
        }
      },
    });
    o.plane.onControlFrame(FrameType.RATE_COUNTS, (peer, payload) => this.#onFrame(peer, payload));
  }

  /** The limiter of a service or route, by flow-service name. */
  limiter(flowService: string): ClusterRateLimiter | undefined {
    return this.#limiters.get(flowService)?.limiter;
  }

  /** Brings the limiters in line with the config in force: unchanged limits keep their state. */
  apply(config: Config): void {
    const next = new Map<string, Held>();
    const want = (name: string, cfg: RateLimitConfig | null): void => {
      if (cfg === null) return;
      const old = this.#limiters.get(name);
      if (old !== undefined && sameLimit(old.cfg, cfg)) return void next.set(name, old);
      next.set(name, { cfg, limiter: new ClusterRateLimiter({ spec: { requestsPerSecond: cfg.requestsPerSecond, burst: cfg.burst }, syncMs: this.#syncMs, maxKeys: cfg.maxKeys }) });
    };
    for (const s of config.services) {
      if (s.protocol !== 'http') continue;
      want(s.name, s.rateLimit);
      for (const r of s.routes) want(r.flowService, r.rateLimit);
    }
    this.#limiters = next;
    if (next.size > 0 && this.#timer === null) {
      this.#timer = setInterval(this.#tick, this.#syncMs);
      this.#timer.unref();
    } else if (next.size === 0) this.stop();
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  readonly #tick = (): void => {
    const now = Date.now();
    const plane = this.#o.plane;
    const alive = plane.alive().size;
    const batch = new Map<string, readonly KeyCounts[]>();
    for (const [name, h] of this.#limiters) {
      h.limiter.nodes = alive;
      const counts = h.limiter.sync(now);
      if (counts.length > 0) batch.set(name, counts);
    }
    if (batch.size === 0) return;
    const payload = encodeCounts(batch);
    const f = ByteWriter.frame(FrameType.RATE_COUNTS, payload.length + 8);
    f.bytes(payload);
    const frame = f.finish();
    for (const id of plane.nodeIds) if (id !== plane.selfId) plane.sendControl(id, frame);
  };

  #onFrame(peer: string, payload: Buffer): void {
    let batch: Map<string, KeyCounts[]>;
    try {
      batch = decodeCounts(payload);
    } catch (err) {
      this.#frames.inc({ result: 'refused' });
      this.#o.logger.debug({ err, peer }, 'rate-limit counts frame refused');
      return;
    }
    this.#frames.inc({ result: 'applied' });
    const now = Date.now();
    // A name this node does not limit (a reload under way on one side) is skipped.
    for (const [name, counts] of batch) this.#limiters.get(name)?.limiter.receive(peer, counts, now);
  }
}

function sameLimit(a: RateLimitConfig, b: RateLimitConfig): boolean {
  return a.requestsPerSecond === b.requestsPerSecond && a.burst === b.burst && a.key === b.key && a.maxKeys === b.maxKeys;
}

