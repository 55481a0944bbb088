/**
 * Cluster-wide backend drain. The drain state travels in the replicated flow table as entries of a
 * reserved pseudo-service (a name the config schema cannot produce), keyed "service|address".
 * That gives it versions, merge-by-version, snapshots for restarted nodes and convergence after a
 * partition with no second protocol: the same machinery that keeps flows keeps drains.
 */
import type { FlowEntry } from '../cluster/flow-entry.js';

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
