/**
 * Who is alive (docs/design.md §5, "Membership"): one control link per pair of nodes, full
 * mesh, and a per-peer judgement from what arrives on it.
 *
 * Links: the node whose id sorts lower dials, the other accepts, so a pair never races two links
 * against each other. The dialer reconnects with capped exponential back-off and full jitter
 * ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015): delay = cap(base * 2^n) * U(0.5, 1).
 * An accepted link for a peer that already has one replaces it (the peer restarted or saw the old
 * one die first).
 *
 * Judgement, re-evaluated every heartbeatMs / 2 (except on a tick that comes late because the
 * event loop was blocked) and on every link change:
 *   alive   — the link is up and a frame arrived within 1.5 * heartbeatMs (any frame counts:
 *             replication traffic is as good a sign of life as a heartbeat);
 *   suspect — neither alive nor dead: one beat missed, the link just dropped, or markSuspect()
 *             was called (a failed data-plane forward) and no frame arrived since;
 *   dead    — silent for failureTimeoutMs, or never heard from since this process started, and
 *             no peer that sends us its view heard it within failureTimeoutMs either (witnesses,
 *             peer-view.ts): a node that another hears is running, whatever this link says, and
 *             stays suspect, so that a partial partition does not split the tier's views.
 * A link silent for failureTimeoutMs is also closed, so a half-open TCP connection (peer host
 * gone without a FIN/RST) gets redialled.
 */
import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { ErrorCodes, TandemError } from '../errors.js';
import type { ClusterMetrics } from './cluster-metrics.js';
import type { ClusterSettings, ClusterTuning, PeerState } from './cluster-options.js';
import { ControlLink } from './control-link.js';
import { FrameType, type Frame } from './frame.js';
import { Witnesses, decodeView, encodeViewHeartbeat, type ViewItem } from './peer-view.js';
import type { PeerTransport } from './peer-transport.js';

export interface MembershipOptions {
  readonly settings: ClusterSettings;
  readonly selfId: string;
  readonly transport: PeerTransport;
  readonly metrics: ClusterMetrics;
  readonly logger: Logger;
  readonly tuning: ClusterTuning;
  readonly onLinkUp: (link: ControlLink) => void;
  readonly onLinkDown: (link: ControlLink) => void;
  /** Every control frame except heartbeats. */
  readonly onFrame: (link: ControlLink, frame: Frame) => void;
  readonly onStateChange: (id: string, state: PeerState, prev: PeerState) => void;
  /**
   * A link silent for failureTimeoutMs was closed: the peer cannot be reached from here, though a
   * witness may still hear it (then it stays suspect). Attempts in flight to it will not finish.
   */
  readonly onUnreachable?: (id: string) => void;
}

interface Peer {
  readonly id: string;
  readonly dials: boolean;
  state: PeerState;
  /** performance.now() of the last frame from this peer; -Infinity before the first. */
  lastHeard: number;
  /** markSuspect() time; the peer stays suspect until a frame arrives after it. */
  suspectedAt: number;
  link: ControlLink | null;
  /** Removed from the member set: its timers are stopped and its events ignored. */
  removed: boolean;
  dialing: boolean;
  attempt: number;
  retry: NodeJS.Timeout | null;
  /** performance.now() when this node's view last went out on the link. */
  viewSentAt: number;
}

export class Membership {
  readonly #o: MembershipOptions;
  readonly #peers = new Map<string, Peer>();
  readonly #suspectAfterMs: number;
  readonly #tickMs: number;
  readonly #witnesses = new Witnesses();
  #tick: NodeJS.Timeout | null = null;
  #lastTick = 0;
  #stopped = true;

  constructor(o: MembershipOptions) {
    this.#o = o;
    this.#suspectAfterMs = 1.5 * o.settings.heartbeatMs;
    this.#tickMs = Math.max(5, Math.floor(o.settings.heartbeatMs / 2));
    for (const n of o.settings.nodes) if (n.id !== o.selfId) this.addPeer(n.id);
  }

  /**
   * A node joined the member set (discovery, reload). It starts dead (never heard from) and is
   * dialled at once if this node is the dialling side of the pair.
   */
  addPeer(id: string): void {
    if (id === this.#o.selfId || this.#peers.has(id)) return;
    const p: Peer = { id, dials: this.#o.selfId < id, state: 'dead', lastHeard: -Infinity, suspectedAt: -Infinity, link: null, removed: false, dialing: false, attempt: 0, retry: null, viewSentAt: -Infinity };
    this.#peers.set(id, p);
    this.#o.metrics.setPeerState(id, 'dead');
    if (!this.#stopped && p.dials) this.#dial(p);
  }

  /** A node left the member set: close its link, stop redialling it, forget it. No state event. */
  removePeer(id: string): void {
    const p = this.#peers.get(id);
    if (p === undefined) return;
    p.removed = true;
    this.#peers.delete(id);
    if (p.retry !== null) clearTimeout(p.retry);
    p.retry = null;
    p.link?.close();
    this.#witnesses.forget(id);
    this.#o.metrics.forgetPeer(id);
  }

  /** A member's address changed: drop its link so that it is redialled at the new one. */
  relink(id: string): void {
    const p = this.#peers.get(id);
    if (p === undefined) return;
    p.attempt = 0;
    if (p.link !== null) p.link.close();
    else if (p.dials && p.retry === null) this.#dial(p);
  }

  start(): void {
    this.#stopped = false;
    this.#o.transport.onChannel('control', (socket, peerId) => this.#attach(peerId, socket));
    for (const p of this.#peers.values()) if (p.dials) this.#dial(p);
    this.#lastTick = performance.now();
    this.#tick = setInterval(() => this.#onTick(), this.#tickMs);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#tick !== null) clearInterval(this.#tick);
    this.#tick = null;
    for (const p of this.#peers.values()) {
      if (p.retry !== null) clearTimeout(p.retry);
      p.retry = null;
      p.link?.close();
    }
  }

  get peerIds(): string[] {
    return [...this.#peers.keys()];
  }

  stateOf(id: string): PeerState {
    if (id === this.#o.selfId) return 'alive';
    const p = this.#peers.get(id);
    if (p === undefined) throw new TandemError(ErrorCodes.UNKNOWN_NODE, `unknown node "${id}"`);
    return p.state;
  }

  /** Whether the control link to `id` is up (self: true; an unknown id: false). */
  linkUp(id: string): boolean {
    if (id === this.#o.selfId) return true;
    return (this.#peers.get(id)?.link ?? null) !== null;
  }

  /** Milliseconds since the last frame from the peer, null if never. */
  lastHeardAgoMs(id: string): number | null {
    const p = this.#peers.get(id);
    if (p === undefined || p.lastHeard === -Infinity) return null;
    return performance.now() - p.lastHeard;
  }

  /**
   * A peer that heard `id` within failureTimeoutMs and whose own link from here is up: the way to
   * reach a node that this one cannot hear (claims.ts); null when there is none. The window is the
   * one that keeps `id` from being declared dead, not the 1.5 heartbeats of `alive`: a witness's
   * report is up to a heartbeat old when it arrives and says up to a heartbeat of silence, so a
   * tighter window loses the witness between two views, and a node that then decided a new flow
   * itself would give it a second backend (found by test/reliability/link-faults.test.ts: 1 to 4
   * of 60 sessions). A witness that cannot reach `id` after all refuses the relay at once.
   */
  witnessOf(id: string): string | null {
    const w = this.#witnesses.witness(id, performance.now(), this.#o.settings.failureTimeoutMs);
    return w !== null && this.linkUp(w) && this.#peers.get(w)?.state === 'alive' ? w : null;
  }

  /** Milliseconds since any witness heard `id`; null when none did. */
  witnessedAgoMs(id: string): number | null {
    const s = this.#witnesses.silence(id, performance.now());
    return s === Infinity ? null : s;
  }

  /** Whether the peer sent a view: it runs a version that knows the frames built on one. */
  speaksViews(id: string): boolean {
    return this.#witnesses.sentView(id);
  }

  link(id: string): ControlLink | null {
    return this.#peers.get(id)?.link ?? null;
  }

  markSuspect(id: string): void {
    const p = this.#peers.get(id);
    if (p === undefined || p.state !== 'alive') return;
    p.suspectedAt = performance.now();
    this.#evaluate(p);
  }

  #attach(peerId: string, socket: Socket): void {
    const p = this.#peers.get(peerId);
    if (p === undefined || p.removed || this.#stopped) {
      socket.destroy();
      return;
    }
    const old = p.link;
    p.link = null;
    if (old !== null) {
      this.#o.logger.info({ peer: peerId }, 'control link replaced by a newer connection');
      old.close();
    }
    const link = new ControlLink(socket, peerId, {
      metrics: this.#o.metrics,
      logger: this.#o.logger,
      maxFrameBytes: this.#o.tuning.maxFrameBytes,
      highWaterBytes: this.#o.tuning.sendHighWaterBytes,
      onFrame: (l, f) => this.#onFrame(p, l, f),
      onClose: (l) => this.#onClose(p, l),
    });
    p.link = link;
    p.attempt = 0;
    this.#o.logger.debug({ peer: peerId, remote: link.remote }, 'control link up');
    this.#o.onLinkUp(link);
  }

  #onFrame(p: Peer, link: ControlLink, f: Frame): void {
    if (p.link !== link) return;
    p.lastHeard = link.lastReceived;
    if (f.type === FrameType.HEARTBEAT) {
      // Malformed → FRAME_MALFORMED, which drops the link like any bad frame.
      const view = decodeView(f.payload);
      if (view !== null) this.#witnesses.record(p.id, view, p.lastHeard);
    }
    if (p.state !== 'alive') this.#evaluate(p);
    if (f.type !== FrameType.HEARTBEAT) this.#o.onFrame(link, f);
  }

  #onClose(p: Peer, link: ControlLink): void {
    if (p.link !== link) return;
    p.link = null;
    this.#o.logger.debug({ peer: p.id }, 'control link down');
    this.#o.onLinkDown(link);
    if (this.#stopped || p.removed) return;
    this.#evaluate(p);
    if (p.dials) this.#scheduleDial(p);
  }

  #dial(p: Peer): void {
    if (this.#stopped || p.removed || p.link !== null || p.dialing) return;
    p.dialing = true;
    this.#o.transport.dial(p.id, 'control').then(
      (socket) => {
        p.dialing = false;
        if (this.#stopped || p.removed) {
          socket.destroy();
          return;
        }
        this.#attach(p.id, socket);
      },
      (err: unknown) => {
        p.dialing = false;
        if (p.attempt === 0) this.#o.logger.debug({ peer: p.id, err: (err as Error).message }, 'control link dial failed');
        this.#scheduleDial(p);
      },
    );
  }

  #scheduleDial(p: Peer): void {
    if (this.#stopped || p.removed || p.retry !== null) return;
    const { reconnectBaseMs, reconnectMaxMs } = this.#o.tuning;
    const delay = Math.min(reconnectMaxMs, reconnectBaseMs * 2 ** Math.min(p.attempt, 20)) * (0.5 + Math.random() / 2);
    p.attempt++;
    p.retry = setTimeout(() => {
      p.retry = null;
      this.#dial(p);
    }, delay);
  }

  #onTick(): void {
    const now = performance.now();
    const hb = this.#o.settings.heartbeatMs;
    // After the event loop was blocked (a long GC, a huge batch), timers run before the I/O that
    // queued meanwhile: every peer would look silent. Judge nobody on such a tick; the next one
    // comes after the pending frames were read.
    const late = now - this.#lastTick > this.#tickMs + hb;
    this.#lastTick = now;
    // One view per tick, sent to every peer due one; it is also the heartbeat. Sent every beat,
    // busy link or not: a witness's report must stay fresh while replication keeps the link busy.
    let beat: Buffer | null = null;
    const send = (p: Peer, link: ControlLink): void => {
      beat ??= encodeViewHeartbeat(this.#view(now));
      link.send(beat);
      p.viewSentAt = now;
    };
    for (const p of this.#peers.values()) {
      const link = p.link;
      if (late) {
        if (link !== null) send(p, link);
        continue;
      }
      if (link !== null) {
        if (now - link.lastReceived > this.#o.settings.failureTimeoutMs) {
          this.#o.logger.info({ peer: p.id }, 'closing a silent control link');
          link.close(); // evaluates and schedules the redial via #onClose
          this.#o.onUnreachable?.(p.id);
          continue;
        }
        // 0.9: the tick is hb/2, so a beat due "now" is not pushed a whole tick later.
        if (now - p.viewSentAt >= 0.9 * hb) send(p, link);
      }
      this.#evaluate(p, now);
    }
  }

  #view(now: number): ViewItem[] {
    const out: ViewItem[] = [];
    for (const p of this.#peers.values()) out.push({ id: p.id, silenceMs: p.lastHeard === -Infinity ? null : now - p.lastHeard });
    return out;
  }

  #evaluate(p: Peer, now = performance.now()): void {
    const silence = now - p.lastHeard;
    let next: PeerState;
    if (p.link !== null && silence <= this.#suspectAfterMs && p.lastHeard > p.suspectedAt) next = 'alive';
    else if (silence > this.#o.settings.failureTimeoutMs && this.#witnesses.silence(p.id, now) > this.#o.settings.failureTimeoutMs) next = 'dead';
    else next = 'suspect';
    if (next === p.state) return;
    const prev = p.state;
    p.state = next;
    this.#o.metrics.setPeerState(p.id, next);
    this.#o.logger.info({ peer: p.id, state: next, prev }, 'peer state changed');
    this.#o.onStateChange(p.id, next, prev);
  }
}
