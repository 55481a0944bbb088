/**
 * Authenticated connections between nodes (docs/design.md §5): one listener on the node's
 * host:peerPort for every kind of peer connection, and a dialer. Every connection, in both
 * directions, runs the challenge–response of handshake.ts before a single byte reaches its
 * owner; with `cluster.tls` set it runs inside mutually authenticated TLS as well.
 *
 * Data-plane API (for the HTTP, TCP and UDP forwarders):
 *
 *   transport.onChannel('http', (socket, peerId, session) => { ... })
 *   const socket = await transport.dial('lb2', 'http')
 *
 * Both ends get the socket as if fresh: no listeners, not flowing, with any bytes that arrived
 * behind the handshake unshifted back in. Use it like any new socket: a 'data' listener, pipe(),
 * or `httpServer.emit('connection', socket)`. What flows is the channel owner's protocol; the
 * handshake has already proved who the peer is (peerId) and gives both ends a per-connection
 * `session.key` for any MAC they want.
 *
 * dial() resolves as soon as the peer has proved itself and our proof is sent (3 messages; the
 * dialer can send its first bytes right behind the proof, saving a round trip). If the peer then
 * refuses us (our proof wrong, or no handler for the channel) it closes the connection before
 * sending anything: a data-plane caller sees a close with nothing received, i.e. "safe to retry
 * elsewhere" (docs/design.md §4).
 *
 * TLS: the server requests and verifies a client certificate against `ca` and the client verifies
 * the server's chain against `ca`. Host names are NOT checked (nodes are addressed by IP and the
 * node identity is proven by the handshake inside TLS), so certificates need no IP SANs.
 */
import { readFile } from 'node:fs/promises';
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { ErrorCodes, TandemError } from '../errors.js';
import type { ClusterMetrics } from './cluster-metrics.js';
import type { ChannelType, ClusterSettings, ClusterTuning, NodeSettings } from './cluster-options.js';
import { HandshakeError, deriveAuthKey, initiateHandshake, respondHandshake, type AuthFailureReason, type Session } from './handshake.js';

export type ChannelHandler = (socket: Socket, peerId: string, session: Session) => void;

interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer;
}

export interface PeerTransportOptions {
  readonly settings: ClusterSettings;
  readonly selfId: string;
  readonly logger: Logger;
  readonly metrics: ClusterMetrics;
  readonly tuning: ClusterTuning;
}

const KEEPALIVE_DELAY_MS = 5000;
const WARN_INTERVAL_MS = 10_000;

export class PeerTransport {
  readonly #o: PeerTransportOptions;
  readonly #self: NodeSettings;
  /** The current member set (setNodes() replaces it); a handshake from any other id is refused. */
  #nodes = new Map<string, NodeSettings>();
  #nodeIds: ReadonlySet<string>;
  readonly #authKey: Buffer;
  readonly #handlers = new Map<ChannelType, ChannelHandler>();
  readonly #sockets = new Set<Socket>();
  readonly #log: Logger;
  #server: net.Server | null = null;
  #tls: Promise<TlsMaterial | null> | null = null;
  #pending = 0;
  #closed = false;
  /** Per reason: when a warning was last logged and how many were suppressed since. */
  readonly #warned = new Map<string, { at: number; suppressed: number }>();

  constructor(o: PeerTransportOptions) {
    this.#o = o;
    for (const n of o.settings.nodes) this.#nodes.set(n.id, n);
    const self = this.#nodes.get(o.selfId);
    if (self === undefined) throw new TandemError(ErrorCodes.UNKNOWN_NODE, `node "${o.selfId}" is not in cluster.nodes`);
    this.#self = self;
    this.#nodeIds = new Set(this.#nodes.keys());
    this.#authKey = deriveAuthKey(o.settings.secret);
    this.#log = o.logger;
  }

  /**
   * The member set changed (discovery, reload). Peers not in it are refused from now on, at the
   * handshake, in both directions; connections already authenticated belong to their owners,
   * which close them as they see fit. Self keeps the address it listens on.
   */
  setNodes(nodes: readonly NodeSettings[]): void {
    const next = new Map<string, NodeSettings>();
    for (const n of nodes) if (n.id !== this.#o.selfId) next.set(n.id, n);
    next.set(this.#o.selfId, this.#self);
    this.#nodes = next;
    this.#nodeIds = new Set(next.keys());
  }

  /** Register the owner of one channel type (one handler per type; the last one wins). */
  onChannel(channel: ChannelType, handler: ChannelHandler): void {
    this.#handlers.set(channel, handler);
  }

  /** Start listening on self host:peerPort. Resolves once listening. */
  async listen(): Promise<void> {
    const material = await this.#material();
    const server = material === null ? net.createServer() : this.#tlsServer(material);
    this.#server = server;
    if (material === null) server.on('connection', (s: Socket) => this.#accept(s));
    else server.on('secureConnection', (s: tls.TLSSocket) => this.#accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.#self.host, port: this.#self.peerPort }, () => {
        server.removeListener('error', reject);
        server.on('error', (err) => this.#log.error({ err }, 'peer listener error'));
        resolve();
      });
    });
    this.#log.info({ host: this.#self.host, port: this.#self.peerPort, tls: material !== null }, 'peer port listening');
  }

  /** The bound address (tests bind port 0). */
  get address(): { host: string; port: number } | null {
    const a = this.#server?.address();
    return a !== null && a !== undefined && typeof a === 'object' ? { host: a.address, port: a.port } : null;
  }

  /**
   * Open an authenticated connection of the given channel type to a peer. Rejects with
   * UNKNOWN_NODE (not a configured peer), PEER_UNAVAILABLE (connect failed or timed out) or
   * AUTH_FAILED (the handshake failed; counted and logged).
   */
  async dial(peerId: string, channel: ChannelType, opts: { timeoutMs?: number } = {}): Promise<Socket> {
    const node = this.#nodes.get(peerId);
    if (node === undefined || peerId === this.#o.selfId) throw new TandemError(ErrorCodes.UNKNOWN_NODE, `"${peerId}" is not a peer of ${this.#o.selfId}`);
    if (this.#closed) throw new TandemError(ErrorCodes.PEER_UNAVAILABLE, 'cluster transport is closed');
    const material = await this.#material();
    const socket = await this.#connect(node, material, opts.timeoutMs ?? this.#o.tuning.connectTimeoutMs);
    try {
      await initiateHandshake(socket, {
        authKey: this.#authKey,
        cluster: this.#o.settings.name,
        selfId: this.#o.selfId,
        peerId,
        channel,
        timeoutMs: this.#o.tuning.handshakeTimeoutMs,
      });
    } catch (err) {
      socket.destroy();
      const e = err instanceof HandshakeError ? err : new HandshakeError('garbage', String(err), { cause: err });
      this.#authFailed(e.reason, `dial ${peerId}`, e);
      throw e;
    }
    return socket;
  }

  /** Stop listening and destroy every peer socket this transport opened or accepted. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    const server = this.#server;
    this.#server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #material(): Promise<TlsMaterial | null> {
    const files = this.#o.settings.tls;
    this.#tls ??=
      files === null
        ? Promise.resolve(null)
        : Promise.all([readFile(files.cert), readFile(files.key), readFile(files.ca)]).then(([cert, key, ca]) => ({ cert, key, ca }));
    return this.#tls;
  }

  #tlsServer(m: TlsMaterial): tls.Server {
    const server = tls.createServer({
      cert: m.cert,
      key: m.key,
      ca: m.ca,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      handshakeTimeout: this.#o.tuning.handshakeTimeoutMs,
    });
    // Track raw connections too: one still in its TLS handshake must not hold close() up.
    server.on('connection', (raw: Socket) => {
      this.#sockets.add(raw);
      raw.once('close', () => this.#sockets.delete(raw));
    });
    server.on('tlsClientError', (err: Error, s: tls.TLSSocket) => {
      this.#authFailed('tls', s.remoteAddress ?? 'unknown', err);
      s.destroy();
    });
    return server;
  }

  #track(s: Socket): void {
    this.#sockets.add(s);
    s.once('close', () => this.#sockets.delete(s));
    // Owners add their own listeners; this one keeps a late error from crashing the process.
    s.on('error', (err) => this.#log.debug({ err: err.message, remote: s.remoteAddress }, 'peer socket error'));
    s.setNoDelay(true);
    s.setKeepAlive(true, KEEPALIVE_DELAY_MS);
  }

  #accept(s: Socket): void {
    if (this.#closed) {
      s.destroy();
      return;
    }
    this.#track(s);
    const remote = `${s.remoteAddress}:${s.remotePort}`;
    if (this.#pending >= this.#o.tuning.maxPendingHandshakes) {
      this.#authFailed('busy', remote, new Error('too many handshakes in progress'));
      s.destroy();
      return;
    }
    this.#pending++;
    respondHandshake(s, {
      authKey: this.#authKey,
      cluster: this.#o.settings.name,
      selfId: this.#o.selfId,
      nodeIds: this.#nodeIds,
      timeoutMs: this.#o.tuning.handshakeTimeoutMs,
    }).then(
      (r) => {
        this.#pending--;
        const handler = this.#handlers.get(r.channel);
        if (handler === undefined || this.#closed) {
          this.#authFailed('no-handler', `${r.peerId} (${remote})`, new Error(`no handler for channel ${r.channel}`));
          s.destroy();
          return;
        }
        this.#log.debug({ peer: r.peerId, channel: r.channel, remote }, 'peer connection authenticated');
        handler(s, r.peerId, r.session);
      },
      (err: unknown) => {
        this.#pending--;
        s.destroy();
        if (this.#closed) return; // our own shutdown cut it short
        const e = err instanceof HandshakeError ? err : new HandshakeError('garbage', String(err), { cause: err });
        this.#authFailed(e.reason, remote, e);
      },
    );
  }

  #connect(node: NodeSettings, m: TlsMaterial | null, timeoutMs: number): Promise<Socket> {
    return new Promise<Socket>((resolve, reject) => {
      const s: Socket =
        m === null
          ? net.connect({ host: node.host, port: node.peerPort })
          : tls.connect({
              host: node.host,
              port: node.peerPort,
              cert: m.cert,
              key: m.key,
              ca: m.ca,
              minVersion: 'TLSv1.2',
              // Identity comes from the handshake; see the header comment.
              checkServerIdentity: () => undefined,
            });
      this.#track(s);
      const fail = (err: Error): void => {
        clearTimeout(timer);
        s.removeListener(m === null ? 'connect' : 'secureConnect', ok);
        s.destroy();
        const tlsFailure = m !== null && /certificate|ssl|tls|alert/i.test(err.message);
        if (tlsFailure) this.#authFailed('tls', node.id, err);
        reject(new TandemError(ErrorCodes.PEER_UNAVAILABLE, `cannot connect to ${node.id} at ${node.host}:${node.peerPort}: ${err.message}`, { cause: err }));
      };
      const ok = (): void => {
        clearTimeout(timer);
        s.removeListener('error', fail);
        resolve(s);
      };
      const timer = setTimeout(() => fail(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      s.once('error', fail);
      s.once(m === null ? 'connect' : 'secureConnect', ok);
    });
  }

  #authFailed(reason: AuthFailureReason, who: string, err: Error): void {
    this.#o.metrics.authFailures.inc({ reason });
    // Rate-limited per reason: a scanner hammering the port must not flood the log.
    const now = Date.now();
    const w = this.#warned.get(reason);
    if (w !== undefined && now - w.at < WARN_INTERVAL_MS) {
      w.suppressed++;
      return;
    }
    this.#warned.set(reason, { at: now, suppressed: 0 });
    this.#log.warn({ reason, peer: who, err: err.message, suppressedSinceLast: w?.suppressed ?? 0 }, 'peer authentication failed');
  }
}
