/**
 * Cluster-wide backend drain. The drain state travels in the replicated flow table as entries of a
 * reserved pseudo-service (a name the config schema cannot produce), keyed "service|address".
 * That gives it versions, merge-by-version, snapshots for restarted nodes and convergence after a
 * partition with no second protocol: the same machinery that keeps flows keeps drains.
 */
import type { Logger } from 'pino';
import type { FlowEntry } from '../cluster/flow-entry.js';
import type { EventLog } from './events.js';

/** Service names must start with a letter or digit, so this can never clash with a real one. */
export const CONTROL_SERVICE = '~backends';
const DRAINING = 'draining';
const ACTIVE = 'active';

export const isControl = (e: Pick<FlowEntry, 'service'>) => e.service === CONTROL_SERVICE;

export function drainKey(service: string, address: string): string {
  return `${service}|${address}`;
}

export function drainEntry(service: string, address: string, draining: boolean, version: number, writer: string, now: number): FlowEntry {
  return {
    service: CONTROL_SERVICE,
    key: drainKey(service, address),
    primary: writer,
    backup: null,
    backend: draining ? DRAINING : ACTIVE,
    version,
    writer,
    lastActive: now,
    ended: false,
  };
}

/** The (service, address, draining) an entry of the control service stands for, or null. */
export function parseDrain(e: FlowEntry): { service: string; address: string; draining: boolean } | null {
  if (!isControl(e)) return null;
  const bar = e.key.indexOf('|');
  if (bar <= 0) return null;
  return { service: e.key.slice(0, bar), address: e.key.slice(bar + 1), draining: e.backend === DRAINING && !e.ended };
}

export interface DrainDeps {
  readonly selfId: string;
  /** The node's flow table: the drain states are entries of CONTROL_SERVICE in it. */
  readonly table: { merge(e: FlowEntry): unknown; entries(service?: string): Iterable<FlowEntry> };
  /** Replicate a write to every peer. */
  publish(e: FlowEntry): void;
  /** HLC tick for a local write. */
  version(): number;
  /** The backend of a service's pool in force, if this node has it. */
  backend(service: string, address: string): { draining: boolean } | undefined;
  readonly events: Pick<EventLog, 'add'>;
  readonly logger: Logger;
}

/** The node's side of the drain states: written here or received, applied to the pools. */
export class BackendDrains {
  readonly #d: DrainDeps;

  constructor(deps: DrainDeps) {
    this.#d = deps;
  }

  /**
   * Sets a backend draining (or not) on every node: written locally, replicated like a flow.
   * Returns false when the service or backend is unknown here.
   */
  set(service: string, address: string, draining: boolean): boolean {
    if (!this.#d.backend(service, address)) return false;
    const e = drainEntry(service, address, draining, this.#d.version(), this.#d.selfId, Date.now());
    this.#d.table.merge(e);
    this.#d.publish(e);
    this.apply(e);
    this.#d.logger.info({ service, backend: address, draining }, draining ? 'backend draining' : 'backend undrained');
    this.#d.events.add('drain', `${service} ${address} ${draining ? 'draining' : 'undrained'}`, { service, address, draining });
    return true;
  }

  /** A drain state (written here, received, or in the table) onto the backend it names. */
  apply(e: FlowEntry): void {
    const d = parseDrain(e);
    if (!d) return;
    const b = this.#d.backend(d.service, d.address);
    if (b && b.draining !== d.draining) {
      b.draining = d.draining;
      if (e.writer !== this.#d.selfId) this.#d.events.add('drain', `${d.service} ${d.address} ${d.draining ? 'draining' : 'undrained'} (by ${e.writer})`, { ...d });
    }
  }

  /** Every drain state in the table (after start or a reload made new pools). */
  applyAll(): void {
    for (const e of this.#d.table.entries(CONTROL_SERVICE)) this.apply(e);
  }
}
