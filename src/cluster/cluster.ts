/**
 * The cluster layer's facade (docs/design.md §§3 and 5): N tandem processes, one replicated
 * flow table. It wires
 *   peer-transport.ts — the authenticated peer port (handshake.ts) and dialer, optional TLS;
 *   membership.ts     — control links in a full mesh, heartbeats, alive/suspect/dead;
 *   replication.ts    — sequenced, acknowledged, resumable replication of local changes;
 *   snapshot.ts       — full resyncs and the ready rule.
 * Wire format: docs/protocol.md.
 *
 * Routing view (decision): alive() returns the nodes NOT seen dead — alive and suspect, self
 * included. A suspect node is still a rendezvous candidate so that one late heartbeat does not
 * reshuffle the owners of new flows; the router demotes it (stateOf() === 'suspect': try the
 * backup first) and a failed forward falls back to the backup anyway (docs/design.md §1,
 * step 5). Only 'dead' removes a node from the candidates.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { ErrorCodes, TandemError } from '../errors.js';
import type { FlowEntry } from './flow-entry.js';
import { ClusterMetrics } from './cluster-metrics.js';
import {
  DEFAULT_SNAPSHOT_TIMEOUT_MS,
  DEFAULT_TUNING,
  type ChannelType,
  type ClusterSettings,
  type ClusterTuning,
  type FlowTableLike,
  type HlcLike,
  type NodeSettings,
  type PeerState,
} from './cluster-options.js';
import type { Session } from './handshake.js';
import { Membership } from './membership.js';
import { PeerTransport } from './peer-transport.js';
import { Replicator, newIncarnation } from './replication.js';
import { Readiness } from './snapshot.js';
import { EXTENSION_FRAME_TYPES } from './frame.js';

export type { PeerState } from './cluster-options.js';
export type DataChannel = Exclude<ChannelType, 'control'>;
export type DataChannelHandler = (socket: Socket, peerId: string, session: Session) => void;
/** Gets the payload of a control frame (a view into received bytes: copy what must outlive the call). */
export type ControlFrameHandler = (peerId: string, payload: Buffer) => void;

export interface ClusterOptions {
  /** `config.cluster`. */
  readonly settings: ClusterSettings;
  readonly selfId: string;
  readonly table: FlowTableLike;
  readonly hlc: HlcLike;
  readonly logger: Logger;
  readonly registry: Registry;
  /** Internal knobs (tests); defaults in cluster-options.ts. */
  readonly tuning?: Partial<ClusterTuning>;
}

export interface PeerStats {
  readonly id: string;
  readonly state: PeerState;
  /** Since the last frame of any kind from the peer; null if never heard from. */
  readonly lastHeartbeatAgoMs: number | null;
  /** Age of the oldest batch the peer has not acknowledged; 0 when caught up. */
  readonly replicationLagMs: number;
  /** Entries in the retransmission log the peer has not acknowledged. */
  readonly pendingEntries: number;
  readonly connected: boolean;
  /** Since any peer that sends its view last heard this one (peer-view.ts); null if none did. */
  readonly witnessedAgoMs: number | null;
  /** A linked peer that hears this one now, through which it can be reached; null if none. */
  readonly witness: string | null;
}

export interface ClusterStats {
  readonly self: string;
  readonly ready: boolean;
  readonly peers: PeerStats[];
}

export interface ClusterEvents {
  'peer-state': [id: string, state: PeerState, prev: PeerState];
  /** A control link silent for failureTimeoutMs was closed; the peer may still be suspect (witnessed), not dead. */
  'peer-unreachable': [id: string];
  ready: [];
  /** Entries from a peer that changed the local table (after the merge). */
  'remote-entries': [entries: FlowEntry[], from: string];
}

export class Cluster extends EventEmitter<ClusterEvents> {
  readonly #selfId: string;
  readonly #log: Logger;
  readonly #transport: PeerTransport;
  readonly #membership: Membership;
  readonly #replicator: Replicator;
  readonly #readiness: Readiness;
  #nodes: readonly NodeSettings[];
  #nodeIds: readonly string[];
  readonly #controlHandlers = new Map<number, ControlFrameHandler>();
  readonly #linkUpHandlers: Array<(peerId: string) => void> = [];
  readonly #incarnation = newIncarnation();
  #state: 'new' | 'started' | 'stopped' = 'new';

  constructor(opts: ClusterOptions) {
    super();
    const s = opts.settings;
    if (!s.nodes.some((n) => n.id === opts.selfId)) throw new TandemError(ErrorCodes.UNKNOWN_NODE, `node "${opts.selfId}" is not in cluster.nodes`);
    if (!(s.heartbeatMs > 0) || !(s.failureTimeoutMs > s.heartbeatMs)) {
      throw new TandemError(ErrorCodes.CONFIG_INVALID, `cluster: need 0 < heartbeatMs < failureTimeoutMs, got ${s.heartbeatMs} and ${s.failureTimeoutMs}`);
    }
    this.#selfId = opts.selfId;
    this.#nodes = s.nodes;
    this.#nodeIds = s.nodes.map((n) => n.id);
    const tuning: ClusterTuning = { ...DEFAULT_TUNING, ...opts.tuning };
    // Used as given: the node passes a child logger already bound to its id and component.
    const log = opts.logger;
    this.#log = log;
    const metrics = new ClusterMetrics(opts.registry);
    const peerIds = this.#nodeIds.filter((id) => id !== opts.selfId);
    this.#transport = new PeerTransport({ settings: s, selfId: opts.selfId, logger: log, metrics, tuning });
    this.#readiness = new Readiness(peerIds, s.snapshotTimeoutMs ?? DEFAULT_SNAPSHOT_TIMEOUT_MS, (why) => {
      log.info({ why }, 'flow table synced: ready');
      this.emit('ready');
    });
    this.#replicator = new Replicator({
      selfId: opts.selfId,
      peerIds,
      table: opts.table,
      hlc: opts.hlc,
      metrics,
      logger: log,
      tuning,
      incarnation: this.#incarnation,
      isReady: () => this.#readiness.ready,
      onRemoteEntries: (entries, from) => {
        // A listener's bug must not be blamed on the peer (it would drop the control link).
        try {
          this.emit('remote-entries', entries, from);
        } catch (err) {
          log.error({ err }, "a 'remote-entries' listener threw");
        }
      },
      onSnapshotComplete: (peerId, senderReady) => this.#readiness.snapshotComplete(peerId, senderReady),
    });
    metrics.setLagSource(() => this.#replicator.lagSeconds());
    const hlc = opts.hlc;
    if (hlc.aheadMs !== undefined) metrics.setAheadSource(() => hlc.aheadMs!());
    this.#membership = new Membership({
      settings: s,
      selfId: opts.selfId,
      transport: this.#transport,
      metrics,
      logger: log,
      tuning,
      onLinkUp: (link) => {
        this.#replicator.linkUp(link);
        for (const h of this.#linkUpHandlers) {
          try {
            h(link.peerId);
          } catch (err) {
            log.error({ err }, 'a control link-up handler threw');
          }
        }
      },
      onLinkDown: (link) => this.#replicator.linkDown(link),
      onFrame: (link, frame) => {
        const h = this.#controlHandlers.get(frame.type);
        if (h !== undefined) h(link.peerId, frame.payload);
        else if (!EXTENSION_FRAME_TYPES.has(frame.type)) this.#replicator.handleFrame(link, frame);
      },
      onUnreachable: (id) => {
        try {
          this.emit('peer-unreachable', id);
        } catch (err) {
          log.error({ err }, "a 'peer-unreachable' listener threw");
        }
      },
      onStateChange: (id, state, prev) => {
        try {
          this.emit('peer-state', id, state, prev);
        } catch (err) {
          log.error({ err }, "a 'peer-state' listener threw");
        }
      },
    });
  }

  /**
   * Replace the member set (discovery found or lost nodes; a reload changed the file's). New
   * peers are linked and replicated to like any other; a removed peer's link is closed and its
   * streams forgotten; a peer whose address changed is redialled. Self must stay in the set.
   * Removing a peer emits no 'peer-state': the caller removes a peer once it is dead, after the
   * usual death handling (docs/operations.md, "Membership through etcd").
   */
  setNodes(nodes: readonly NodeSettings[]): { added: string[]; removed: string[]; changed: string[] } {
    if (!nodes.some((n) => n.id === this.#selfId)) throw new TandemError(ErrorCodes.UNKNOWN_NODE, `node "${this.#selfId}" is not in the new member set`);
    const before = new Map(this.#nodes.map((n) => [n.id, n]));
    const after = new Map(nodes.map((n) => [n.id, n]));
    const added: string[] = [];
    const removed: string[] = [];
    const changed: string[] = [];
    for (const [id, n] of after) {
      if (id === this.#selfId) continue;
      const old = before.get(id);
      if (old === undefined) added.push(id);
      else if (old.host !== n.host || old.peerPort !== n.peerPort) changed.push(id);
    }
    for (const id of before.keys()) if (!after.has(id)) removed.push(id);
    this.#nodes = nodes;
    this.#nodeIds = nodes.map((n) => n.id);
    this.#transport.setNodes(nodes);
    for (const id of removed) {
      this.#membership.removePeer(id);
      this.#replicator.removePeer(id);
    }
    for (const id of added) {
      this.#replicator.addPeer(id);
      this.#membership.addPeer(id);
    }
    for (const id of changed) this.#membership.relink(id);
    this.#readiness.setPeers(this.#nodeIds.filter((id) => id !== this.#selfId));
    if (added.length + removed.length + changed.length > 0) this.#log.info({ added, removed, changed }, 'member set changed');
    return { added, removed, changed };
  }

  /** Listen on the peer port and start dialling peers. Resolves once listening. */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error(`Cluster.start() called on a ${this.#state} cluster`);
    this.#state = 'started';
    await this.#transport.listen();
    this.#membership.start();
    this.#readiness.start();
  }

  /** Close every link and socket, stop every timer. Idempotent. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#state = 'stopped';
    this.#readiness.stop();
    this.#membership.stop();
    this.#replicator.close();
    await this.#transport.close();
  }

  /**
   * Send every published change now and wait until each connected peer acknowledged it, at most
   * timeoutMs. Call before stop() in a graceful shutdown. Resolves true when all acknowledged.
   */
  flush(timeoutMs = 1000): Promise<boolean> {
    if (this.#state !== 'started') return Promise.resolve(true);
    return this.#replicator.flush(timeoutMs);
  }

  get selfId(): string {
    return this.#selfId;
  }

  /** True once the table is synced (snapshot.ts, Readiness, for the rule). */
  get ready(): boolean {
    return this.#readiness.ready;
  }

  /** Every member's id, self included, in member-set order (config order without discovery). */
  get nodeIds(): readonly string[] {
    return this.#nodeIds;
  }

  /** Self is always alive. Throws UNKNOWN_NODE for an id not in cluster.nodes. */
  stateOf(id: string): PeerState {
    return this.#membership.stateOf(id);
  }

  /** Whether the control link to `id` is up now: a suspect peer whose link is gone has crashed or is cut off. */
  linkUp(id: string): boolean {
    return this.#membership.linkUp(id);
  }

  /**
   * The next hop toward `target` for a claim (claims.ts): the target while its control link is up,
   * else a peer that hears it; null when neither. Only peers that speak views (peer-view.ts).
   */
  claimVia(target: string): string | null {
    if (this.claimDirect(target)) return target;
    const w = this.#membership.witnessOf(target);
    return w !== null && this.#membership.speaksViews(w) ? w : null;
  }

  /** Whether `peer` can be sent a claim straight away: linked, and it speaks views. */
  claimDirect(peer: string): boolean {
    return this.#membership.linkUp(peer) && this.#membership.speaksViews(peer);
  }

  /** Nodes not seen dead (alive or suspect), self included: the routing candidates. */
  alive(): ReadonlySet<string> {
    const out = new Set<string>();
    for (const id of this.#nodeIds) if (id === this.#selfId || this.#membership.stateOf(id) !== 'dead') out.add(id);
    return out;
  }

  /** A data-plane forward to the peer failed: suspect it now rather than at the next beat. */
  markSuspect(id: string): void {
    this.#membership.markSuspect(id);
  }

  /** Replicate a change this node made (already merged into its own table) to every peer. */
  publish(entry: FlowEntry): void {
    this.#replicator.publish(entry);
  }

  /** Own a data-plane channel type on the accepting side (peer-transport.ts for the contract). */
  onChannel(channel: DataChannel, handler: DataChannelHandler): void {
    if ((channel as ChannelType) === 'control') throw new TypeError('the control channel belongs to the cluster layer');
    this.#transport.onChannel(channel, handler);
  }

  /**
   * Own an extension control-frame type (frame.ts, EXTENSION_FRAME_TYPES): cluster-wide state
   * that travels beside the flow table on the control links, such as TLS ticket keys. A throw
   * from the handler drops the link like any bad frame (docs/protocol.md, "What a bad peer gets").
   */
  onControlFrame(type: number, handler: ControlFrameHandler): void {
    if (!EXTENSION_FRAME_TYPES.has(type)) throw new TypeError(`frame type 0x${type.toString(16)} is not an extension frame`);
    this.#controlHandlers.set(type, handler);
  }

  /** Called each time a control link to a peer comes up, after OPEN was sent: send current state there. */
  onControlLinkUp(handler: (peerId: string) => void): void {
    this.#linkUpHandlers.push(handler);
  }

  /** Queue a frame on the control link to a peer; false when there is no link (nothing is queued then). */
  sendControl(peerId: string, frame: Buffer): boolean {
    const link = this.#membership.link(peerId);
    if (link === null || link.closed) return false;
    link.send(frame);
    return true;
  }

  /**
   * This process's incarnation (8 random bytes, announced in OPEN on every control link) and the
   * one a peer last announced to us, or null before its first OPEN: per-link epochs agreed over
   * the authenticated links, for data-plane freshness without wall clocks (docs/protocol.md).
   */
  get incarnation(): Buffer {
    return this.#incarnation;
  }

  peerIncarnation(id: string): Buffer | null {
    return this.#replicator.peerIncarnation(id);
  }

  /** An authenticated data-plane connection to a peer (peer-transport.ts, dial()). */
  dial(peerId: string, channel: DataChannel, opts?: { timeoutMs?: number }): Promise<Socket> {
    return this.#transport.dial(peerId, channel, opts);
  }

  stats(): ClusterStats {
    const peers: PeerStats[] = [];
    for (const id of this.#membership.peerIds) {
      const r = this.#replicator.peerStats(id);
      peers.push({
        id,
        state: this.#membership.stateOf(id),
        lastHeartbeatAgoMs: this.#membership.lastHeardAgoMs(id),
        replicationLagMs: r.replicationLagMs,
        pendingEntries: r.pendingEntries,
        connected: this.#membership.link(id) !== null,
        witnessedAgoMs: this.#membership.witnessedAgoMs(id),
        witness: this.#membership.witnessOf(id),
      });
    }
    return { self: this.#selfId, ready: this.ready, peers };
  }

  /** For tests and diagnostics: the control link socket's remote end, or null. */
  controlLinkRemote(id: string): string | null {
    return this.#membership.link(id)?.remote ?? null;
  }

  /** For tests: drop the control link to a peer (it is redialled as after any failure). */
  dropControlLink(id: string): void {
    this.#membership.link(id)?.close();
    this.#log.debug({ peer: id }, 'control link dropped on request');
  }

  /** Weight of a member (1 when not set). */
  weightOf(id: string): number {
    return this.#nodes.find((n) => n.id === id)?.weight ?? 1;
  }
}
