import type { FlowEntry } from './flow-entry.js';

/**
 * Re-protection after node failures (docs/design.md §3.4, and §1 step 6 "re-own"). Pure and
 * deterministic: every node that sees the same alive set computes the same owners from the same
 * entry, so the new primary can replicate the change and the other nodes already agree with it
 * before it arrives.
 *
 * The rules keep movement minimal: a surviving owner is never replaced, and a surviving backup
 * is promoted rather than re-ranked, because it already knows the flow's backend (affinity
 * survives the failure, docs/design.md §1 step 5).
 */

/** ALL configured node ids for a flow, ranked best first (rendezvous order, docs/design.md §2). */
export type RankFn = (service: string, key: string) => readonly string[];

export interface Owners {
  readonly primary: string;
  readonly backup: string | null;
}

type OwnedEntry = Pick<FlowEntry, 'service' | 'key' | 'primary' | 'backup'>;

/**
 * New owners for an entry given the alive set, or null when nothing changes (both owners alive,
 * or no node alive at all). The result never has primary === backup; backup is null only when
 * a single ranked node is alive. rank() is called only when a replacement must be chosen.
 */
export function reprotect(entry: OwnedEntry, alive: ReadonlySet<string>, rank: RankFn): Owners | null {
  const { primary } = entry;
  // An entry naming the same node twice (corrupt or hand-made) is treated as having no backup.
  const backup = entry.backup === primary ? null : entry.backup;
  const primaryAlive = alive.has(primary);
  const backupAlive = backup !== null && alive.has(backup);

  let next: Owners | null;
  if (primaryAlive) {
    if (backupAlive) return null;
    next = { primary, backup: firstAlive(rank(entry.service, entry.key), alive, primary) };
  } else if (backupAlive) {
    // Promote the backup: it holds the recorded backend, so the flow keeps its server.
    next = { primary: backup, backup: firstAlive(rank(entry.service, entry.key), alive, backup) };
  } else {
    // Neither owner survives: re-own from the alive nodes in rank order (docs/design.md §1 step 6).
    const ranked = rank(entry.service, entry.key);
    const first = firstAlive(ranked, alive, null);
    if (first === null) return null;
    next = { primary: first, backup: firstAlive(ranked, alive, first) };
  }
  return next.primary === entry.primary && next.backup === entry.backup ? null : next;
}

/**
 * The entries whose owners change, with their new owners, in input order. Tombstones are
 * skipped: an ended flow has nothing to protect, and its tombstone only needs to outlive stale
 * copies, whoever owns it.
 */
export function reprotectAll(
  entries: Iterable<FlowEntry>,
  alive: ReadonlySet<string>,
  rank: RankFn,
): Array<{ entry: FlowEntry; owners: Owners }> {
  const out: Array<{ entry: FlowEntry; owners: Owners }> = [];
  for (const entry of entries) {
    if (entry.ended) continue;
    const owners = reprotect(entry, alive, rank);
    if (owners !== null) out.push({ entry, owners });
  }
  return out;
}

function firstAlive(ranked: readonly string[], alive: ReadonlySet<string>, except: string | null): string | null {
  for (const id of ranked) if (id !== except && alive.has(id)) return id;
  return null;
}
