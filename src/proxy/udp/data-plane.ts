/**
 * The UDP data plane between nodes: one datagram socket per node on host:peerPort (UDP; the TCP
 * port of the same number carries the cluster links, and the two do not clash). Client datagrams
 * travel to a flow's owner (type FORWARD) and backend replies back to the ingress node (type
 * REPLY), each encapsulated and authenticated on its own (encap.ts) — no per-datagram set-up, no
 * connection state, nothing to re-establish after a peer restarts.
 *
 * What a receiver accepts (everything else is dropped and counted in tandem_udp_rejected_total):
 *   1. well-formed framing of this version                          (else `malformed`)
 *   2. a sender id that is a configured peer, not this node         (else `unknown-sender`)
 *   3. sent from that peer's host:peerPort                          (else `source-mismatch`)
 *   4. a correct HMAC                                               (else `mac`)
 *   5. addressed to this node's incarnation, from the incarnation the
 *      sender announced on its control link (no clock involved)      (else `stale`)
 *   6. FORWARD from its own ingress node; REPLY addressed to this node (else `misrouted`)
 *   7. a sequence number new to the sender's replay window          (else `replay`)
 * Checks 2-3 come before the HMAC so that junk costs no hashing; they are not the security (a
 * source address can be spoofed), the MAC is. The cost per accepted datagram is one HMAC-SHA256
 * on the receiver and one on the sender: a few microseconds for typical sizes.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { lookup as dnsLookup } from 'node:dns';
import type { ProxyContext } from '../context.js';
import type { NodeConfig } from '../../config/schema.js';
import { normalizeAddress } from '../../flowkey/index.js';
import { EncapType, deriveUdpKey, encodeEncap, parseEncap, verifyEncap, type ClientAddress } from './encap.js';
import { DatagramFreshness } from './replay.js';
import type { UdpMetrics } from './metrics.js';

/** The flow fields of a datagram between nodes. */
export interface PlaneFlow {
  readonly service: string;
  readonly key: string;
  readonly client: ClientAddress;
  readonly ingress: string;
}

interface Peer {
  readonly id: string;
  /** An IP literal; for a configured hostname, its first address once resolved (null before). */
  host: string | null;
  readonly port: number;
}

/** What became of a datagram handed to the plane: `unavailable` when that peer cannot be reached from here. */
export type PlaneSend = 'sent' | 'unavailable' | 'too-large';

/** What the plane hands a verified datagram to: a udp service (service.ts implements it). */
export interface PlaneReceiver {
  serveForwarded(key: string, client: ClientAddress, ingress: string, payload: Buffer): void;
  deliverReply(key: string, client: ClientAddress, payload: Buffer): void;
}

export class UdpDataPlane {
  readonly #ctx: ProxyContext;
  readonly #lookup: (service: string) => PlaneReceiver | undefined;
  readonly #key: Buffer;
  readonly #incarnation: Buffer;
  readonly #peerIncarnation: (id: string) => Buffer | null;
  readonly #fresh: DatagramFreshness;
  #counter = 0n;
  readonly #metrics: UdpMetrics;
  /** The node's UDP metric set (made once per node), which the node's UDP services count into too. */
  readonly metrics: UdpMetrics;
  #socket: Socket | null = null;
  #nodesRef: readonly NodeConfig[] | null = null;
  #peers = new Map<string, Peer>();
  /** Counters for tests and the report; Prometheus has the same by reason. */
  readonly stats = { sent: 0, received: 0, rejected: 0 };

  constructor(ctx: ProxyContext, lookup: (service: string) => PlaneReceiver | undefined, metrics: UdpMetrics) {
    this.#ctx = ctx;
    this.#lookup = lookup;
    this.#key = deriveUdpKey(ctx.secret);
    const dp = ctx.dataPlane;
    if (dp.incarnation === undefined || dp.peerIncarnation === undefined) throw new TypeError('the UDP data plane needs a DataPlane with incarnation and peerIncarnation (the Cluster has both)');
    this.#incarnation = dp.incarnation;
    this.#peerIncarnation = dp.peerIncarnation.bind(dp);
    this.#fresh = new DatagramFreshness(dp.incarnation);
    this.#metrics = this.metrics = metrics;
  }

  get selfId(): string {
    return this.#ctx.self.id;
  }

  /** The bound address (tests). */
  address(): { address: string; port: number } | null {
    if (!this.#socket) return null;
    const a = this.#socket.address();
    return { address: a.address, port: a.port };
  }

  async start(): Promise<void> {
    if (this.#socket) return;
    const { host, peerPort } = this.#ctx.self;
    const socket = createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4' });
    socket.on('message', (msg, rinfo) => this.#onMessage(msg, rinfo));
    socket.on('error', (err) => this.#ctx.logger.warn({ err }, 'udp data plane socket error'));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(peerPort, host, () => {
        socket.off('error', reject);
        resolve();
      });
    }).catch((err: unknown) => {
      socket.close();
      throw err;
    });
    this.#socket = socket;
  }

  async stop(): Promise<void> {
    const s = this.#socket;
    this.#socket = null;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /**
   * A client datagram to the flow's owner `peerId`. Not counted when it cannot be sent: the hop
   * loop tries the next owner and counts what finally became of the datagram.
   */
  forward(peerId: string, f: PlaneFlow, payload: Buffer): PlaneSend {
    return this.#send(peerId, EncapType.FORWARD, f, payload);
  }

  /** A backend reply to the ingress node `f.ingress`; a reply that cannot be sent is dropped and counted. */
  reply(f: PlaneFlow, payload: Buffer): PlaneSend {
    const r = this.#send(f.ingress, EncapType.REPLY, f, payload);
    if (r !== 'sent') this.#metrics.drop(f.service, r);
    return r;
  }

  #send(peerId: string, type: 1 | 2, f: PlaneFlow, payload: Buffer): PlaneSend {
    const socket = this.#socket;
    const peer = this.#peer(peerId);
    if (!socket || !peer || peer.host === null || peerId === this.selfId) return 'unavailable';
    // The peer's incarnation from its last OPEN: none yet (it never reached us) is no data plane.
    const theirs = this.#peerIncarnation(peerId);
    if (theirs === null) return 'unavailable';
    const buf = encodeEncap(this.#key, { type, sender: this.selfId, ...f }, { sender: this.#incarnation, receiver: theirs }, ++this.#counter, payload);
    if (!buf) return 'too-large';
    this.stats.sent++;
    // Fire and forget: UDP gives no delivery signal worth waiting for, and nothing queues here.
    socket.send(buf, peer.port, peer.host, this.#sendError(f.service));
    return 'sent';
  }

  /** One send callback per service, made once (a datagram allocates no closure for it). */
  readonly #onSend = new Map<string, (err: Error | null) => void>();
  #sendError(service: string): (err: Error | null) => void {
    let cb = this.#onSend.get(service);
    if (cb === undefined) {
      cb = (err) => {
        if (err) this.#metrics.drop(service, 'send-error');
      };
      this.#onSend.set(service, cb);
    }
    return cb;
  }

  #onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    const p = parseEncap(msg);
    if (!p) return this.#reject('malformed');
    const peer = p.sender === this.selfId ? undefined : this.#peer(p.sender);
    if (!peer) return this.#reject('unknown-sender');
    if (rinfo.port !== peer.port || normalizeAddress(rinfo.address) !== peer.host) return this.#reject('source-mismatch');
    if (!verifyEncap(this.#key, p)) return this.#reject('mac');
    if (!this.#fresh.current(this.#peerIncarnation(p.sender), p.senderIncarnation, p.receiverIncarnation)) return this.#reject('stale');
    if (p.type === EncapType.FORWARD ? p.ingress !== p.sender : p.ingress !== this.selfId) return this.#reject('misrouted');
    if (!this.#fresh.accept(p.sender, p.senderIncarnation, p.counter)) return this.#reject('replay');
    this.stats.received++;
    const proxy = this.#lookup(p.service);
    if (!proxy) {
      this.#metrics.drop(p.service, 'unknown-service');
      return;
    }
    if (p.type === EncapType.FORWARD) proxy.serveForwarded(p.key, p.client, p.ingress, p.payload);
    else proxy.deliverReply(p.key, p.client, p.payload);
  }

  #reject(reason: Parameters<UdpMetrics['reject']>[0]): void {
    this.stats.rejected++;
    this.#metrics.reject(reason);
  }

  /** A configured peer by id; the table follows ctx.nodes() (a reload may change it). */
  #peer(id: string): Peer | undefined {
    const nodes = this.#ctx.nodes();
    if (nodes !== this.#nodesRef) {
      this.#nodesRef = nodes;
      this.#peers = new Map(nodes.map((n) => [n.id, this.#makePeer(n)]));
    }
    return this.#peers.get(id);
  }

  #makePeer(n: NodeConfig): Peer {
    if (isIP(n.host) !== 0) return { id: n.id, host: normalizeAddress(n.host), port: n.peerPort };
    // A hostname: resolve once, so that neither the source check nor a send does a lookup per
    // datagram. Until it resolves, datagrams to and from that peer are dropped and counted.
    const peer: Peer = { id: n.id, host: null, port: n.peerPort };
    const family = isIP(this.#ctx.self.host) === 6 ? 6 : 4;
    dnsLookup(n.host, { family }, (err, address) => {
      if (err) this.#ctx.logger.warn({ err, peer: n.id, host: n.host }, 'cannot resolve peer host for the udp data plane');
      else peer.host = normalizeAddress(address);
    });
    return peer;
  }
}
