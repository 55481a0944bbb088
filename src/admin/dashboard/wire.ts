/**
 * The dashboard's wire format: what `GET /api/stream` sends and what `GET /api/dashboard/counters`
 * answers. Types only, shared by the server (Node) and the page (browser bundle), so that the two
 * sides cannot drift apart silently.
 */

export type NodeState = 'alive' | 'suspect' | 'dead';

/** Per-second rates of one node's client-facing traffic; null fields when unknown. */
export interface Rates {
  /** HTTP requests answered per second (client-facing). */
  readonly http: number;
  /** TCP connections accepted per second. */
  readonly tcp: number;
  /** UDP client datagrams received per second. */
  readonly udp: number;
}

export interface NodeView {
  readonly id: string;
  readonly host: string;
  readonly adminPort: number;
  /** As the node serving the page sees it (itself: always alive). */
  readonly state: NodeState;
  readonly weight: number;
  readonly self: boolean;
  /** Flows this node holds as primary and as backup, from the serving node's replicated table. */
  readonly primary: number;
  readonly backup: number;
  /** Null while the node has not answered a sample yet (or is dead). */
  readonly rates: Rates | null;
  /** Age of the oldest replication batch this node has not acknowledged (serving node's view). */
  readonly replicationLagMs: number | null;
  readonly lastHeartbeatAgoMs: number | null;
  readonly ready: boolean | null;
  readonly uptimeSec: number | null;
  /** The pushed config revision the node runs (from its etcd status; null: its file's services, or unknown). */
  readonly configRevision?: number | null;
}

export interface BackendView {
  readonly address: string;
  readonly weight: number;
  readonly effectiveWeight: number;
  /** up, down, ejected, draining: as the serving node sees it. */
  readonly state: 'up' | 'down' | 'ejected' | 'draining';
  readonly healthy: boolean;
  readonly draining: boolean;
  /** Summed over the nodes that answered the last sample. */
  readonly active: number;
  /** Communications sent to this backend per second, summed over the nodes that answered. */
  readonly ratePerSec: number;
}

/** A route of an http service (its pool is the view's backends, its flows live under SERVICE/ROUTE). */
export interface RouteInfo {
  readonly service: string;
  readonly name: string;
  /** What it matches, e.g. "host api.test · path /v1/ · GET"; "everything" for a catch-all. */
  readonly match: string;
  /** "301 → https://{host}{path}" when the route redirects; null otherwise. */
  readonly redirect: string | null;
  /** "100/s burst 20 by client-ip" when the route is rate-limited; null otherwise. */
  readonly rateLimit: string | null;
}

/** TLS of a service that terminates it: what it offers, its certificates, handshakes tier-wide. */
export interface TlsView {
  readonly alpn: readonly string[];
  readonly sessionTickets: string;
  /** Certificates as the serving node loaded them (index in its store), by expiry. */
  readonly certificates: ReadonlyArray<{ readonly id: string; readonly notAfter: number }>;
  /** Summed over the nodes that answered the last sample. */
  readonly handshakes: number;
  readonly resumed: number;
  readonly failures: number;
  /** ACME certificates of this service (tls.acme), as the serving node sees them. */
  readonly acme: ReadonlyArray<{ readonly id: string; readonly state: string; readonly owner: string; readonly notAfter: string | null; readonly lastError: string | null }>;
}

export interface ServiceView {
  /** The service's name, or SERVICE/ROUTE for a route's pool. */
  readonly name: string;
  readonly protocol: string;
  readonly port: number;
  readonly policy: string;
  readonly flowKey: string;
  readonly flows: number;
  readonly backends: readonly BackendView[];
  /** Set for a route of an http service; null for a service's default pool. */
  readonly route: RouteInfo | null;
  /** Set for a service with `tls:` (on its default pool's view); null otherwise. */
  readonly tls: TlsView | null;
}

export interface Snapshot {
  readonly at: number;
  readonly self: string;
  readonly cluster: string;
  readonly nodes: readonly NodeView[];
  readonly flows: { readonly total: number; readonly countedAt: number };
  readonly services: readonly ServiceView[];
  /** Membership through etcd as the serving node sees it; null when not configured. */
  readonly discovery?: { readonly state: 'connecting' | 'connected' | 'degraded'; readonly error: string | null } | null;
  /** The pushed config revision the serving node runs; null while it runs its file's services. */
  readonly configRevision?: number | null;
}

export interface TimelineEvent {
  readonly seq: number;
  readonly at: number;
  readonly node: string;
  readonly kind: string;
  readonly message: string;
}

/** The first message of every stream: who serves it and the recent timeline (oldest first). */
export interface Hello {
  readonly self: string;
  readonly startedAt: number;
  readonly events: readonly TimelineEvent[];
}

/** `GET /api/dashboard/counters`: cumulative counters, differenced by the sampling node. */
export interface Counters {
  readonly node: string;
  readonly at: number;
  readonly startedAt: number;
  readonly ready: boolean;
  readonly http: number;
  readonly tcp: number;
  readonly udp: number;
  /** service (or SERVICE/ROUTE) → backend address → cumulative communications and active now, on this node. */
  readonly backends: Readonly<Record<string, Readonly<Record<string, { readonly total: number; readonly active: number }>>>>;
  /** TLS services → cumulative handshakes on this node and its certificates' expiry (ms). */
  readonly tls?: Readonly<Record<string, TlsCounters>>;
}

export interface TlsCounters {
  readonly handshakes: number;
  readonly resumed: number;
  readonly failures: number;
  readonly certificates: ReadonlyArray<{ readonly id: string; readonly notAfter: number }>;
}

/** `GET /api/dashboard/lookup?service=S&key=K`: the flow as the serving node holds it, and the ranking. */
export interface Lookup {
  readonly service: string;
  readonly key: string;
  readonly servedBy: string;
  readonly knownService: boolean;
  readonly flow: {
    readonly primary: string;
    readonly backup: string | null;
    readonly backend: string | null;
    readonly writer: string;
    readonly lastActive: number;
  } | null;
  /** Where a new flow for this key would go now (alive nodes only). */
  readonly wouldOwn: { readonly primary: string; readonly backup: string | null };
  /** Every configured node by score, highest first. */
  readonly ranking: ReadonlyArray<{ readonly id: string; readonly weight: number; readonly score: number; readonly state: NodeState }>;
}
