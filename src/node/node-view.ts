/**
 * What the node's observers — the admin routes, the metrics binder and the dashboard — may read
 * of a running node (`NodeView`), and the few things the admin API may ask it to do
 * (`NodeControl`). `TandemNode` (node.ts) implements both; the observers import only this file,
 * never the composition root, so they cannot reach into its parts and no import cycle runs
 * through node.ts.
 */
import type { Registry } from 'prom-client';
import type { Config, ServiceConfig } from '../config/schema.js';
import type { FlowEntry } from '../cluster/flow-entry.js';
import type { PeerStats } from '../cluster/cluster.js';
import type { RouterStats } from '../cluster/router.js';
import type { AcmeManager } from '../acme/manager.js';
import type { PeerState } from '../proxy/context.js';
import type { BackendState } from '../upstream/pool.js';
import type { EventLog } from './events.js';
import type { NodeMembers } from './members.js';

/** Reads of this node's replicated flow table. */
export interface FlowTableView {
  get(service: string, key: string): FlowEntry | undefined;
  /** Live entries, of one service or of all, in the table's order. */
  entries(service?: string): Iterable<FlowEntry>;
  size(service?: string): number;
  services(): readonly string[];
}

/** One backend of a service as this node's pool sees it. */
export type BackendReadout = Readonly<
  Pick<BackendState, 'address' | 'configWeight' | 'weight' | 'healthy' | 'draining' | 'ejected' | 'ejectedUntil' | 'active' | 'total' | 'ejections'>
>;

export interface OwnedCounts {
  readonly total: number;
  readonly primary: number;
  readonly backup: number;
}

export interface NodeStatus {
  readonly id: string;
  readonly ready: boolean;
  readonly draining: boolean;
  readonly uptimeSec: number;
  readonly flows: OwnedCounts;
  readonly ratePerSec: number;
}

export interface RankedNode {
  readonly id: string;
  readonly weight: number;
  readonly score: number;
  readonly state: PeerState;
}

export interface Owners {
  readonly primary: string;
  readonly backup: string | null;
}

export interface AdminStats {
  readonly requests: number;
  readonly unauthorized: number;
  readonly badRequests: number;
}

export interface NodeView {
  readonly id: string;
  /** Wall-clock ms when this process's node was created. */
  readonly startedAt: number;
  /** Synced, serving and not draining (`/readyz`). */
  readonly ready: boolean;
  readonly draining: boolean;
  /** The running config (swapped whole on reload: read it anew each time). */
  readonly config: Config;
  readonly table: FlowTableView;
  readonly events: Pick<EventLog, 'since' | 'subscribe'>;
  readonly registry: Pick<Registry, 'metrics' | 'contentType' | 'getSingleMetric'>;
  readonly routerStats: Readonly<RouterStats>;
  readonly adminStats: AdminStats;
  /** A node's state as this node sees it ('alive' for itself). */
  stateOf(id: string): PeerState;
  /** Link and replication figures of every peer. */
  peers(): readonly PeerStats[];
  service(name: string): ServiceConfig | undefined;
  /** The backends of a service on this node; undefined when the service does not run here. */
  backends(service: string): readonly BackendReadout[] | undefined;
  /** Flow entries (not the table's control entries). */
  flows(): Iterable<FlowEntry>;
  ownedCounts(): OwnedCounts;
  status(): NodeStatus;
  /** The full rendezvous ranking for a key over all configured nodes. */
  ranking(key: string): RankedNode[];
  /** Where a new flow for this key would go now. */
  wouldOwn(key: string): Owners;
  /** The member set and the etcd session: discovery state, config revision, per-member records. */
  readonly membership: Pick<NodeMembers, 'info' | 'discovery' | 'config'>;
  /** ACME certificates, read only (the dashboard's TLS view). */
  readonly acme: Pick<AcmeManager, 'certificates'>;
}

export interface NodeControl extends NodeView {
  /** ACME certificates: the listing, forced renewal, services still on a self-signed fallback. */
  readonly acme: Pick<AcmeManager, 'certificates' | 'renew' | 'fallbacks'>;
  /** Drain (or undrain) a backend on every node; false when the service or backend is unknown here. */
  setDraining(service: string, address: string, draining: boolean): boolean;
  /** Reload from the config file the node was started with; an invalid file is refused whole. */
  reloadFromFile(): Promise<{ ok: boolean; problems: string[] }>;
}
