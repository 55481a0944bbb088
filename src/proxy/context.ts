/**
 * What a protocol proxy gets from its node. The proxies move bytes; the routing rule lives in
 * FlowRouter; liveness, data-plane links and replication live in the cluster.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { FlowRouter } from '../cluster/router.js';
import type { Forwarder } from './hops.js';
import type { PeerMux } from './mux/peer-mux.js';
import type { UpstreamPool } from '../upstream/pool.js';
import type { ClusterRateLimiter } from '../ratelimit/limiter.js';
import type { ServiceConfig, NodeConfig } from '../config/schema.js';
import type { EpochSecretSource } from '../cluster/ticket-key-share.js';
import type { CertificateStore } from '../tls/store.js';

export type PeerState = 'alive' | 'suspect' | 'dead';
export type DataChannel = 'http' | 'tcp';

/** The part of the cluster the proxies use (implemented by src/cluster/cluster.ts). */
export interface DataPlane {
  readonly selfId: string;
  stateOf(id: string): PeerState;
  /** A failed forward: the peer becomes suspect at once (docs/design.md §5). */
  markSuspect(id: string): void;
  /** An authenticated stream to a peer's peerPort for the given channel. */
  dial(peerId: string, channel: DataChannel): Promise<Duplex>;
  /** Peer state changes (the Cluster is an EventEmitter); optional so that test doubles may omit it. */
  on?(event: 'peer-state', listener: (id: string, state: PeerState, prev: PeerState) => void): unknown;
  off?(event: 'peer-state', listener: (id: string, state: PeerState, prev: PeerState) => void): unknown;
  /** A peer silent for the failure timeout whose link was closed, though a witness may still hear it. */
  on?(event: 'peer-unreachable', listener: (id: string) => void): unknown;
  off?(event: 'peer-unreachable', listener: (id: string) => void): unknown;
  /** Accept authenticated streams of a channel from peers. */
  onChannel(channel: DataChannel, handler: (socket: Duplex, peerId: string, session: { key: Buffer }) => void): void;
  /**
   * This node's incarnation (8 random bytes per process start) and the one each peer announced on
   * its authenticated control link (null before its first OPEN). The UDP data plane binds every
   * datagram to both: freshness from the links, not from wall clocks (docs/protocol.md). Optional
   * for test doubles of the other proxies; the UDP data plane refuses to start without them.
   */
  readonly incarnation?: Buffer;
  peerIncarnation?(id: string): Buffer | null;
}

/** What a service that terminates TLS needs from its node (docs/tls.md). */
export interface TlsContext {
  /** Part of the session-id context, so that sessions never resume across clusters. */
  readonly clusterName: string;
  /** Ticket-key epochs: the cluster's share (`sessionTickets: cluster`) and this node's own (`node`). */
  readonly clusterTickets: EpochSecretSource;
  readonly nodeTickets: EpochSecretSource;
  /** ACME certificates (`tls.acme`): the store of such a service is fed by the node's ACME manager. */
  readonly acme?: AcmeFeed;
}

/** What a TLS service needs of the node's ACME manager (src/acme/manager.ts). */
export interface AcmeFeed {
  /** The certificate the service's store should hold now (ACME's, or the self-signed fallback). */
  pemFor(service: string): { readonly cert: string; readonly key: string } | null;
  /** Keep `store` holding the service's certificate, now and on every change. */
  attach(service: string, store: CertificateStore): void;
  detach(store: CertificateStore): void;
  /**
   * The key authorization of an HTTP-01 challenge this tier's ACME order is waiting on (RFC 8555
   * section 8.3), for a path under /.well-known/acme-challenge/; null when the token is not ours.
   */
  challengeResponse(path: string): string | null;
}

export interface ProxyContext {
  readonly self: NodeConfig;
  readonly nodes: () => readonly NodeConfig[];
  readonly router: FlowRouter;
  readonly dataPlane: DataPlane;
  /** The node's one forwarding loop (hops.ts), shared by every protocol. */
  readonly forwarder: Forwarder;
  /** The node's multiplexer on the 'http' data channel: forwarded HTTP requests, both directions. */
  readonly httpMux: PeerMux;
  /** The cluster secret, for keys of data-plane MACs (derive with HKDF, never use it raw). */
  readonly secret: string;
  readonly logger: Logger;
  readonly registry: Registry;
  /** For http services with `tls:`; a node always gives it (test doubles without TLS may not). */
  readonly tls?: TlsContext;
  /** The service's pool, looked up at call time so that a reload's new pool is used. */
  pool(service: string): UpstreamPool | undefined;
  service(name: string): ServiceConfig | undefined;
  /** The cluster-wide rate limiter of a service or route (by flow-service name), when it has one. */
  limiter?(flowService: string): ClusterRateLimiter | undefined;
}

/** One client-facing service on this node. */
export interface ServiceProxy {
  readonly name: string;
  start(): Promise<void>;
  /** A reload changed the service's settings (same protocol and port). */
  update(cfg: ServiceConfig): void;
  /** Stop accepting; resolve when open work ended or after `timeoutMs`. */
  drain(timeoutMs: number): Promise<void>;
  /** Close everything now. */
  stop(): Promise<void>;
}
