/**
 * `GET /api/stream`: the dashboard's server-sent events. One snapshot a second (built once and
 * written to every open page), the node's timeline events as they happen, and a heartbeat comment.
 * All the work — the snapshot timer, peer sampling, the event subscription — runs only while at
 * least one page is connected, and stops with the last one.
 */
import type { ServerResponse } from 'node:http';
import type { NodeView } from '../../node/node-view.js';
import type { NodeEvent } from '../../node/events.js';
import type { AdminReply, AdminRequest } from '../server.js';
import { PeerSampler } from './sampler.js';
import { OwnerCounts, buildSnapshot } from './snapshot.js';
import type { Hello, TimelineEvent } from './wire.js';

export interface StreamOptions {
  /** Concurrent streams per node; one more is answered 503. */
  readonly maxStreams?: number;
  readonly intervalMs?: number;
  readonly heartbeatMs?: number;
  /** Browsers wait this long before reconnecting (the `retry:` field). */
  readonly retryMs?: number;
}

/** A page that cannot keep up is cut off rather than buffered without bound. */
const MAX_BUFFERED = 1 << 20;
const BACKLOG = 200;

export class DashboardStream {
  readonly #node: NodeView;
  readonly #clients = new Set<ServerResponse>();
  readonly #sampler: PeerSampler;
  readonly #owners: OwnerCounts;
  readonly #max: number;
  readonly #intervalMs: number;
  readonly #heartbeatMs: number;
  readonly #retryMs: number;
  #tick: NodeJS.Timeout | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #soon: NodeJS.Timeout | null = null;
  #unsubscribe: (() => void) | null = null;

  constructor(node: NodeView, opts: StreamOptions = {}) {
    this.#node = node;
    this.#sampler = new PeerSampler(node);
    this.#owners = new OwnerCounts(node);
    this.#max = opts.maxStreams ?? 32;
    this.#intervalMs = opts.intervalMs ?? 1000;
    this.#heartbeatMs = opts.heartbeatMs ?? 15_000;
    this.#retryMs = opts.retryMs ?? 1000;
  }

  get clients(): number {
    return this.#clients.size;
  }

  open(req: AdminRequest, res: ServerResponse): AdminReply {
    if (this.#clients.size >= this.#max) {
      return {
        status: 503,
        json: { error: `too many dashboard streams on this node (limit ${this.#max}); close a dashboard page and retry` },
        headers: { 'retry-after': '5' },
      };
    }
    // HEAD gets the headers a GET would, not a stream that never ends.
    if (req.raw.method === 'HEAD') return { status: 200, text: '', contentType: 'text/event-stream; charset=utf-8' };
    const socket = req.raw.socket;
    socket.setNoDelay(true);
    socket.setTimeout(0);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      // Reverse proxies (nginx) would otherwise buffer the stream.
      'x-accel-buffering': 'no',
    });
    const hello: Hello = {
      self: this.#node.id,
      startedAt: this.#node.startedAt,
      events: this.#node.events.since(0).slice(-BACKLOG).map(toTimeline),
    };
    res.write(`retry: ${this.#retryMs}\n\n`);
    res.write(frame('hello', hello));
    this.#clients.add(res);
    const close = () => this.#remove(res);
    res.once('close', close);
    res.once('error', close);
    if (this.#clients.size === 1) this.#startWork();
    else this.#scheduleSoon(0);
    return { stream: true };
  }

  #remove(res: ServerResponse): void {
    if (!this.#clients.delete(res)) return;
    if (this.#clients.size === 0) this.#stopWork();
  }

  #startWork(): void {
    this.#sampler.start();
    this.#unsubscribe = this.#node.events.subscribe((e) => this.#onEvent(e));
    this.#tick = setInterval(() => this.#sendSnapshot(), this.#intervalMs);
    this.#tick.unref();
    this.#heartbeat = setInterval(() => this.#broadcast(': heartbeat\n\n'), this.#heartbeatMs);
    this.#heartbeat.unref();
    // The first snapshot as soon as the first peer samples can have answered.
    this.#scheduleSoon(150);
  }

  #stopWork(): void {
    this.#sampler.stop();
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    for (const t of [this.#tick, this.#heartbeat, this.#soon]) if (t) clearTimeout(t);
    this.#tick = this.#heartbeat = this.#soon = null;
  }

  #onEvent(e: NodeEvent): void {
    this.#broadcast(frame('node-event', toTimeline(e)));
    // A membership change or a drain should show now, not at the next tick (a dead node within
    // the failure timeout plus a few milliseconds, not plus a second).
    if (e.kind === 'membership' || e.kind === 'reprotect' || e.kind === 'reown') this.#owners.invalidate();
    if (e.kind !== 'lifecycle') this.#scheduleSoon(20);
  }

  #scheduleSoon(ms: number): void {
    if (this.#soon || this.#clients.size === 0) return;
    this.#soon = setTimeout(() => {
      this.#soon = null;
      this.#sendSnapshot();
    }, ms);
    this.#soon.unref();
  }

  #sendSnapshot(): void {
    if (this.#clients.size === 0) return;
    this.#broadcast(frame('snapshot', buildSnapshot(this.#node, this.#owners, this.#sampler)));
  }

  #broadcast(chunk: string): void {
    for (const res of this.#clients) {
      if (res.writableLength > MAX_BUFFERED) {
        res.destroy();
        this.#remove(res);
        continue;
      }
      res.write(chunk);
    }
  }
}

function toTimeline(e: NodeEvent): TimelineEvent {
  return { seq: e.seq, at: e.at, node: e.node, kind: e.kind, message: e.message };
}

/** One SSE message. JSON has no raw newlines, so one `data:` line holds it. */
function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
