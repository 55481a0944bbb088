/**
 * The node's multiplexed data plane to its peers: a few long-lived authenticated connections per
 * peer (DataPlane.dial(peer, channel)), each carrying many streams. Made once by the composition
 * root and handed to the protocols that forward over it; the owner side registers one acceptor.
 *
 *   const s = mux.open('lb2', head, handler)   // at once; frames wait while the dial runs
 *   mux.onOpen((stream, head, peer) => handler | null)
 *
 * A dial that fails or times out resets the streams waiting on it with UNREACHABLE before
 * anything reached the peer: for the caller, "refused before any byte", safe to send elsewhere.
 */
import type { Duplex } from 'node:stream';
import { MuxConnection, type OpenHandler } from './connection.js';
import { ResetCode } from './frame.js';
import type { MuxMetrics } from './metrics.js';
import type { MuxHandler, MuxStream } from './stream.js';

export interface PeerMuxOptions {
  /** An authenticated stream to the peer (the cluster transport's dial for the mux's channel). */
  dial(peer: string): Promise<Duplex>;
  /** Connections kept per peer; streams go to the least loaded. Default 2. */
  connectionsPerPeer?: number;
  /** A new connection is opened (up to connectionsPerPeer) when every one carries this many. Default 64. */
  streamsPerConnection?: number;
  /** Longest wait for a dial; past it the waiting streams are lost. Default 3000. */
  dialTimeoutMs?: number;
  /** The node's multiplexer metrics (muxMetrics(), made once per node, shared by its muxes); none: not counted. */
  metrics?: MuxMetrics;
  /** Metric label for the channel (one mux per channel). Default 'http'. */
  channel?: string;
}

export class PeerMux {
  readonly #o: Required<Omit<PeerMuxOptions, 'metrics'>>;
  readonly #peers = new Map<string, MuxConnection[]>();
  readonly #accepted = new Set<MuxConnection>();
  readonly #m: MuxMetrics | null;
  /** Metric children, looked up once: stream opens are per request. */
  readonly #streamsOut: { inc(): void } | null;
  readonly #streamsIn: { inc(): void } | null;
  #acceptor: OpenHandler | null = null;
  #closed = false;

  constructor(o: PeerMuxOptions) {
    this.#o = {
      dial: (peer) => o.dial(peer),
      connectionsPerPeer: o.connectionsPerPeer ?? 2,
      streamsPerConnection: o.streamsPerConnection ?? 64,
      dialTimeoutMs: o.dialTimeoutMs ?? 3000,
      channel: o.channel ?? 'http',
    };
    this.#m = o.metrics ?? null;
    this.#streamsOut = this.#m?.streams.labels(this.#o.channel, 'out') ?? null;
    this.#streamsIn = this.#m?.streams.labels(this.#o.channel, 'in') ?? null;
  }

  /** Longest wait for a dial (the shortest connect timeout of the services using the mux). */
  set dialTimeoutMs(ms: number) {
    this.#o.dialTimeoutMs = ms;
  }

  get dialTimeoutMs(): number {
    return this.#o.dialTimeoutMs;
  }

  /** Open connections: dialed by us and accepted from peers. */
  get connections(): number {
    let n = this.#accepted.size;
    for (const list of this.#peers.values()) n += list.length;
    return n;
  }

  /**
   * Opens a stream to `peer` with `head` as its OPEN payload; `end` when nothing follows the head.
   * Returns at once; a failure reaches `handler.onReset` on a later tick.
   */
  open(peer: string, head: Buffer, handler: MuxHandler, end = false): MuxStream {
    const conn = this.#connectionFor(peer);
    this.#streamsOut?.inc();
    return conn.open(head, handler, end);
  }

  /** The owner side: called for every stream a peer opens. Return null to refuse it (REFUSED). */
  onOpen(acceptor: OpenHandler): void {
    this.#acceptor = acceptor;
  }

  /** An authenticated connection a peer dialed to us (the transport's channel handler). */
  accept(socket: Duplex, peer: string): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    const acceptor = this.#acceptor;
    const conn = new MuxConnection(peer, false, this.#events, (stream, head, p) => {
      this.#streamsIn?.inc();
      return acceptor === null ? null : acceptor(stream, head, p);
    });
    this.#accepted.add(conn);
    this.#m?.connections.inc(this.#labelsIn);
    conn.attach(socket);
  }

  /** Closes every connection; open streams get CONNECTION_LOST. */
  close(): void {
    this.#closed = true;
    for (const list of [...this.#peers.values()]) for (const c of [...list]) c.close('mux closed');
    for (const c of [...this.#accepted]) c.close('mux closed');
    this.#peers.clear();
    this.#accepted.clear();
  }

  // ---- internals ---------------------------------------------------------------------------

  get #labelsOut(): { channel: string; direction: string } {
    return { channel: this.#o.channel, direction: 'out' };
  }

  get #labelsIn(): { channel: string; direction: string } {
    return { channel: this.#o.channel, direction: 'in' };
  }

  readonly #events = {
    protocolError: (reason: string): void => {
      this.#m?.errors.inc({ channel: this.#o.channel, reason: reasonLabel(reason) });
    },
    refused: (reason: string): void => {
      this.#m?.errors.inc({ channel: this.#o.channel, reason: reasonLabel(reason) });
    },
    closed: (conn: MuxConnection): void => {
      if (conn.dialer) {
        const list = this.#peers.get(conn.peer);
        if (list !== undefined) {
          const i = list.indexOf(conn);
          if (i >= 0) list.splice(i, 1);
          if (list.length === 0) this.#peers.delete(conn.peer);
        }
      } else this.#accepted.delete(conn);
      this.#m?.connections.dec(conn.dialer ? this.#labelsOut : this.#labelsIn);
    },
  };

  #connectionFor(peer: string): MuxConnection {
    let list = this.#peers.get(peer);
    if (list === undefined) this.#peers.set(peer, (list = []));
    let best: MuxConnection | null = null;
    for (const c of list) if (!c.retiring && (best === null || c.active < best.active)) best = c;
    if (best !== null && (best.active < this.#o.streamsPerConnection || list.length >= this.#o.connectionsPerPeer)) return best;
    const conn = new MuxConnection(peer, true, this.#events);
    list.push(conn);
    this.#m?.connections.inc(this.#labelsOut);
    if (this.#closed) queueMicrotask(() => conn.close('mux closed'));
    else this.#dial(conn);
    // A retiring connection closes once its last stream is done.
    for (const c of list) if (c.retiring && c.active === 0) c.close('stream ids used up');
    return conn;
  }

  #dial(conn: MuxConnection): void {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      this.#m?.errors.inc({ channel: this.#o.channel, reason: 'dial-timeout' });
      conn.close(`dial to ${conn.peer} timed out`);
    }, this.#o.dialTimeoutMs);
    this.#o.dial(conn.peer).then(
      (socket) => {
        clearTimeout(timer);
        if (done || conn.isClosed) return void socket.destroy();
        done = true;
        conn.attach(socket);
      },
      (err: unknown) => {
        clearTimeout(timer);
        if (done) return;
        done = true;
        this.#m?.errors.inc({ channel: this.#o.channel, reason: 'dial-failed' });
        conn.close(`dial to ${conn.peer} failed: ${(err as Error).message ?? String(err)}`);
      },
    );
  }
}

/** Reasons become a small fixed label set (never free text in a label). */
function reasonLabel(reason: string): string {
  if (reason.startsWith('frame length') || reason.startsWith('frame of type')) return 'frame-size';
  if (reason.startsWith('unknown frame type')) return 'frame-type';
  if (reason.startsWith('stream id')) return 'stream-id';
  if (reason.startsWith('too many streams')) return 'too-many-streams';
  if (reason.startsWith('acceptor failed')) return 'acceptor-failed';
  if (reason.startsWith('data past credit')) return 'flow-control';
  if (reason === 'dial-timeout' || reason === 'dial-failed') return reason;
  return 'protocol';
}

export { ResetCode };
