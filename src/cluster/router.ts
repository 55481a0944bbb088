/**
 * The routing rule of docs/design.md §1, shared by the HTTP, TCP and UDP proxies. It decides;
 * the proxies move bytes. No I/O here: liveness, replication and the clock come in as functions,
 * so that the rule is testable on its own.
 *
 * A flow's life on one node:
 *   lookup()  — steps 1-2: find the entry or create it with the top two alive nodes as owners.
 *   hops()    — steps 3-5: where to send it, in order: the alive owners (self = serve locally).
 *               A communication that came from a peer is always served here (no loops).
 *   reown()   — step 6: neither owner is available; rank the alive nodes again, keep the backend.
 *   assign()  — step 3 on the serving node: the recorded backend if still usable, else a new one,
 *               recorded and replicated so that the backup knows it.
 *   active()/end() — lifecycle: refreshes are batched (refreshDue), ends replicate a tombstone.
 */
import type { FlowEntry } from './flow-entry.js';
import { reprotectAll } from './reprotect.js';

export type Hop = { readonly kind: 'local' } | { readonly kind: 'peer'; readonly id: string };
export const LOCAL: Hop = Object.freeze({ kind: 'local' });

export interface RouterDeps {
  readonly selfId: string;
  /** Top two of `candidates` for the key (rendezvous). */
  owners(key: string, candidates: readonly string[]): { primary: string; backup: string | null };
  /** All configured node ids ranked for the key, best first (rendezvous). */
  rank(service: string, key: string): readonly string[];
  /** Ids this node sees alive or suspect, self included. */
  candidates(): readonly string[];
  /** State of a node as this node sees it. */
  state(id: string): 'alive' | 'suspect' | 'dead';
  /** Whether the control link to a node is up; absent: assumed up. */
  linkUp?(id: string): boolean;
  /** Replicate a change made here to every peer. */
  publish(entry: FlowEntry): void;
  /** Store an entry in the local table (merge by version). */
  merge(entry: FlowEntry): boolean;
  get(service: string, key: string): FlowEntry | undefined;
  /** Including tombstones. */
  getAny(service: string, key: string): FlowEntry | undefined;
  /** HLC tick for a local write. */
  version(): number;
  now(): number;
}

export interface RouterStats {
  /** Communications routed by this node (every lookup). */
  lookups: number;
  created: number;
  reowned: number;
  backendsAssigned: number;
  backendsMoved: number;
  reprotected: number;
  ended: number;
}

export class FlowRouter {
  readonly #d: RouterDeps;
  /** Entries served here since the last refresh, by service → key. Refreshes are batched. */
  #active = new Map<string, Map<string, FlowEntry>>();
  readonly stats: RouterStats = { lookups: 0, created: 0, reowned: 0, backendsAssigned: 0, backendsMoved: 0, reprotected: 0, ended: 0 };

  constructor(deps: RouterDeps) {
    this.#d = deps;
  }

  get selfId(): string {
    return this.#d.selfId;
  }

  /**
   * Steps 1-2: the entry for the key, created (and replicated) when absent.
   *
   * A creation is written with a weak, deterministic version: 1 (or one above a tombstone of the
   * key) under the primary's name. Two nodes that create the same flow with the same view of the
   * cluster write the identical entry, and any real write — the primary's backend choice, a
   * re-own, a refresh — carries an HLC version far above it. Without this, a node that had not yet
   * received the primary's backend choice would "create" the flow with a newer version and no
   * backend, and that version would win the merge everywhere: the flow would lose its backend.
   */
  lookup(service: string, key: string): FlowEntry {
    this.stats.lookups++;
    const found = this.#d.get(service, key);
    if (found) return found;
    const { primary, backup } = this.#d.owners(key, this.#d.candidates());
    const tomb = this.#d.getAny(service, key);
    const entry: FlowEntry = {
      service,
      key,
      primary,
      backup,
      backend: null,
      version: tomb ? tomb.version + 1 : 1,
      writer: primary,
      lastActive: this.#d.now(),
      ended: false,
    };
    this.#write(entry);
    this.stats.created++;
    return entry;
  }

  /**
   * Steps 3-5: the hops to try, in order. Owners seen dead are skipped; a suspect primary goes
   * after an alive backup, because the failover must not wait for a connect timeout to a node
   * that has already missed its heartbeats — but only once this node's entry records a backend,
   * or when the control link to the primary is down (the process is gone or cut off: UDP, which
   * has no failed attempt to fail over on, would lose the flow's datagrams there). Otherwise the
   * flow is new (or its backend has not reached this node yet), the primary, still linked, may be
   * choosing one right now, and a backup that served it would choose another: one missed
   * heartbeat must not give a flow two backends. Empty when neither owner is available (→ reown()).
   */
  hops(entry: FlowEntry, fromPeer: boolean): Hop[] {
    if (fromPeer) return [LOCAL];
    const out: Hop[] = [];
    const { primary, backup } = entry;
    const ps = this.#d.state(primary);
    const bs = backup === null ? 'dead' : this.#d.state(backup);
    const primaryFirst = ps === 'alive' || (ps === 'suspect' && entry.backend === null && (this.#d.linkUp?.(primary) ?? true));
    if (primaryFirst) out.push(this.#hop(primary));
    if (backup !== null && bs !== 'dead') out.push(this.#hop(backup));
    if (ps === 'suspect' && !primaryFirst) out.push(this.#hop(primary));
    return out;
  }

  /**
   * Step 6: neither owner is available; re-rank the alive nodes, keep the backend, replicate.
   * `exclude` are nodes that just failed this communication (tried and suspect, not yet dead):
   * they are left out of the ranking unless nothing else is left.
   */
  reown(entry: FlowEntry, exclude: readonly string[] = []): FlowEntry {
    let candidates = this.#d.candidates();
    if (exclude.length > 0) {
      const rest = candidates.filter((id) => !exclude.includes(id));
      if (rest.length > 0) candidates = rest;
    }
    const { primary, backup } = this.#d.owners(entry.key, candidates);
    const next: FlowEntry = { ...entry, primary, backup, version: this.#d.version(), writer: this.#d.selfId, lastActive: this.#d.now() };
    this.#write(next);
    this.stats.reowned++;
    return next;
  }

  /**
   * Step 3 on the serving node: the backend of the flow. The recorded backend is kept while
   * `usable` says so (affinity survives node failure); otherwise `choose` picks one and the choice
   * is recorded and replicated. Returns null when no backend is available.
   */
  assign(entry: FlowEntry, usable: (address: string) => boolean, choose: (key: string) => string | null): { entry: FlowEntry; backend: string | null } {
    const current = this.#d.get(entry.service, entry.key) ?? entry;
    if (current.backend !== null && usable(current.backend)) return { entry: current, backend: current.backend };
    const backend = choose(current.key);
    if (backend === null) return { entry: current, backend: null };
    if (current.backend !== null) this.stats.backendsMoved++;
    else this.stats.backendsAssigned++;
    const next: FlowEntry = { ...current, backend, version: this.#d.version(), writer: this.#d.selfId, lastActive: this.#d.now(), ended: false };
    this.#write(next);
    return { entry: next, backend };
  }

  /**
   * A claim reached this node as the flow's primary (claims.ts): the entry with its backend,
   * chosen now as assign() would if the flow has none — unless this node's own entry names another
   * primary, which decides instead (null). Null too when no backend is available.
   */
  decide(service: string, key: string, usable: (address: string) => boolean, choose: (key: string) => string | null): FlowEntry | null {
    const found = this.#d.get(service, key);
    if (found !== undefined && found.backend !== null && usable(found.backend)) return found;
    const entry = found ?? this.lookup(service, key);
    if (entry.primary !== this.#d.selfId) return null;
    const r = this.assign(entry, usable, choose);
    return r.backend === null ? null : r.entry;
  }

  /** The flow was served here just now; its refresh goes out with the next batch. */
  active(entry: FlowEntry): void {
    let m = this.#active.get(entry.service);
    if (!m) this.#active.set(entry.service, (m = new Map<string, FlowEntry>()));
    m.set(entry.key, entry);
  }

  /**
   * Replicates a new lastActive for every flow served here since the last call. Called on a timer
   * well inside the idle timeout, so one busy flow costs one message per period, not per request.
   */
  flushRefreshes(): number {
    let n = 0;
    const now = this.#d.now();
    for (const [service, m] of this.#active) {
      for (const key of m.keys()) {
        const current = this.#d.get(service, key);
        if (!current) continue;
        this.#write({ ...current, lastActive: now, version: this.#d.version(), writer: this.#d.selfId });
        n++;
      }
    }
    this.#active.clear();
    return n;
  }

  /** The flow ended (a `connection`-keyed stream closed): replicate a tombstone. */
  end(service: string, key: string): void {
    const current = this.#d.get(service, key);
    this.#active.get(service)?.delete(key);
    if (!current) return;
    this.#write({ ...current, ended: true, version: this.#d.version(), writer: this.#d.selfId, lastActive: this.#d.now() });
    this.stats.ended++;
  }

  /**
   * Re-protection after a membership change (docs/design.md §3.4): for every entry that lost an
   * owner, promote the backup and pick the next ranked alive node. Every node computes the same
   * result from the entry and the alive set, and writes it with version + 1 under the new primary's
   * name, so nodes that share a view agree at once. Every node that writes such an entry also
   * replicates it: views differ in a partial partition (lb1 → lb2 cut, lb3 hears both), where the
   * node this one names as new primary may never have seen the death and would never publish the
   * entry, which would then exist here only and keep the tables apart for good (found by
   * test/reliability/link-faults.test.ts). Where views agree the copies are identical and their
   * merge changes nothing. Any later real write has a far higher HLC version and wins.
   * Returns the entries written.
   */
  reprotectAll(entries: Iterable<FlowEntry>, alive: ReadonlySet<string>): FlowEntry[] {
    const written: FlowEntry[] = [];
    // Computed over the whole set before writing: merging while iterating the table would reorder it.
    for (const { entry, owners } of reprotectAll(entries, alive, (service, key) => this.#d.rank(service, key))) {
      const next: FlowEntry = { ...entry, primary: owners.primary, backup: owners.backup, version: entry.version + 1, writer: owners.primary };
      if (!this.#d.merge(next)) continue;
      this.#d.publish(next);
      written.push(next);
    }
    this.stats.reprotected += written.length;
    return written;
  }

  #hop(id: string): Hop {
    return id === this.#d.selfId ? LOCAL : { kind: 'peer', id };
  }

  #write(entry: FlowEntry): void {
    this.#d.merge(entry);
    this.#d.publish(entry);
  }
}
