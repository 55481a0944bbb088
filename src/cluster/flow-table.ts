import { TandemError, ErrorCodes } from '../errors.js';
import { compareVersion, type FlowEntry } from './flow-entry.js';

/**
 * The per-node replicated flow table (docs/design.md §§3.1-3.3): last-writer-wins by (version, writer),
 * bounded per service, with idle expiry and short-lived tombstones.
 *
 * Convergence: merge keeps an entry iff it is strictly newer than what is stored, so the stored
 * entry per key is the maximum of every version delivered, whatever the order or duplication of
 * deliveries (a max is commutative, associative and idempotent: a state-based LWW register).
 * Eviction and expiry are local decisions outside that argument; replication refreshes restore
 * whatever a node dropped too early.
 */

export interface FlowTableLimits {
  maxEntries: number;
  idleTimeoutMs: number;
}

export interface FlowTableOptions {
  /** Per service (from config); must also answer for unknown services with a default. */
  readonly limits: (service: string) => FlowTableLimits;
  /**
   * How long ended entries are kept, measured from their lastActive (when the end was written here,
   * or received: replication stamps the receiver's clock). Default 30 s.
   */
  tombstoneMs?: number;
  now?: () => number;
  /**
   * Called for live entries dropped by the bound ('lru') or by idle expiry ('idle'), after the
   * table is consistent again, so the callback may itself merge (e.g. an end announcement).
   */
  onEvict?: (entry: FlowEntry, reason: 'lru' | 'idle') => void;
}

export interface FlowTableStats {
  /** Live entries dropped to make room for a new key. */
  readonly evictedLru: number;
  /** Live entries dropped by expire() because lastActive is older than idleTimeoutMs. */
  readonly evictedIdle: number;
  /** Tombstones dropped to make room for a new key (before any live entry is). */
  readonly tombstonesEvicted: number;
  /** Tombstones cleaned by expire() after tombstoneMs. */
  readonly tombstonesExpired: number;
  /** merge() calls that changed the table. */
  readonly merged: number;
  /** merge() calls refused because the stored version was equal or newer. */
  readonly stale: number;
  /** merge() calls refused because the version is not a non-negative safe integer. */
  readonly invalid: number;
}

export const DEFAULT_TOMBSTONE_MS = 30_000;

/**
 * Live entries and tombstones of one service in two Maps. A Map iterates in insertion order, so
 * delete + set moves a key to the end and `keys().next()` is the least recently used: an LRU with
 * no per-entry node objects (the memory target is < 200 bytes per entry). Keeping tombstones in
 * their own Map lets eviction drop the oldest tombstone before any live flow, and lets expire()
 * walk each kind in its own age order.
 */
interface ServiceTable {
  readonly live: Map<string, FlowEntry>;
  readonly dead: Map<string, FlowEntry>;
  /**
   * Eviction cursors over `live` and `dead`. A Map iterator started afresh walks every slot that
   * earlier deletions freed until V8 next rehashes the Map, so `keys().next()` per eviction costs
   * O(evictions since the last rehash): ~20 µs per new key in a full table of 100k, ~45 µs at the
   * default 1M (measured), i.e. a flood of new keys would saturate the node on this alone. A
   * cursor kept across evictions only moves forward (a Map iterator stays valid under mutation,
   * skips deleted entries and reaches entries added after it was made), and everything behind it
   * has been evicted, so it always yields the least recently used entry in O(1) amortised.
   */
  liveCursor: Iterator<FlowEntry> | null;
  deadCursor: Iterator<FlowEntry> | null;
}

/** The oldest entry of a map through its cursor (see ServiceTable), or undefined when empty. */
function oldest(t: ServiceTable, which: 'live' | 'dead'): FlowEntry | undefined {
  const key = which === 'live' ? 'liveCursor' : 'deadCursor';
  let cursor = t[key];
  for (let fresh = false; ; fresh = true) {
    cursor ??= t[which].values();
    const r = cursor.next();
    if (!r.done) {
      t[key] = cursor;
      return r.value;
    }
    // A finished iterator stays finished even if entries are added later: start a new one once.
    t[key] = cursor = null;
    if (fresh || t[which].size === 0) return undefined;
  }
}

type MutableStats = { -readonly [K in keyof FlowTableStats]: FlowTableStats[K] };

export class FlowTable {
  readonly #tables = new Map<string, ServiceTable>();
  readonly #limits: (service: string) => FlowTableLimits;
  readonly #tombstoneMs: number;
  readonly #now: () => number;
  readonly #onEvict: ((entry: FlowEntry, reason: 'lru' | 'idle') => void) | undefined;
  readonly #stats: MutableStats = {
    evictedLru: 0,
    evictedIdle: 0,
    tombstonesEvicted: 0,
    tombstonesExpired: 0,
    merged: 0,
    stale: 0,
    invalid: 0,
  };

  constructor(opts: FlowTableOptions) {
    const tombstoneMs = opts.tombstoneMs ?? DEFAULT_TOMBSTONE_MS;
    if (!(tombstoneMs >= 0) || !Number.isFinite(tombstoneMs)) {
      throw new TandemError(ErrorCodes.CONFIG_INVALID, `flow table tombstoneMs must be a finite number >= 0, got ${tombstoneMs}`);
    }
    this.#limits = opts.limits;
    this.#tombstoneMs = tombstoneMs;
    this.#now = opts.now ?? Date.now;
    this.#onEvict = opts.onEvict;
  }

  /** Counters for metrics; a live view, not a copy. */
  get stats(): FlowTableStats {
    return this.#stats;
  }

  /** The live entry for a key; tombstones read as absent. */
  get(service: string, key: string): FlowEntry | undefined {
    return this.#tables.get(service)?.live.get(key);
  }

  /** The stored entry for a key, tombstone included. */
  getAny(service: string, key: string): FlowEntry | undefined {
    const t = this.#tables.get(service);
    if (t === undefined) return undefined;
    return t.live.get(key) ?? t.dead.get(key);
  }

  /**
   * Store the entry iff it is strictly newer than the stored one (or none is stored); the same
   * path for local writes and remote ones. The entry is frozen and stored as is, never copied.
   * A new key in a full service first evicts the oldest tombstone, else the LRU live entry.
   */
  merge(entry: FlowEntry): boolean {
    // A NaN version would compare lower than everything yet never be replaced once stored
    // (every comparison against it is false): refuse it rather than let it pin a key.
    if (!Number.isSafeInteger(entry.version) || entry.version < 0) {
      this.#stats.invalid++;
      return false;
    }
    let t = this.#tables.get(entry.service);
    if (t === undefined) {
      t = { live: new Map(), dead: new Map(), liveCursor: null, deadCursor: null };
      this.#tables.set(entry.service, t);
    }
    const key = entry.key;
    const old = t.live.get(key) ?? t.dead.get(key);
    let victims: FlowEntry[] | undefined;
    if (old !== undefined) {
      if (compareVersion(entry, old) <= 0) {
        this.#stats.stale++;
        return false;
      }
      // Delete first so that the set below moves the key to the most recent end.
      (old.ended ? t.dead : t.live).delete(key);
    } else {
      victims = this.#makeRoom(t, entry.service);
    }
    Object.freeze(entry);
    (entry.ended ? t.dead : t.live).set(key, entry);
    this.#stats.merged++;
    if (victims !== undefined) for (const v of victims) this.#onEvict?.(v, 'lru');
    return true;
  }

  /**
   * Mark a live entry most recently used, without a new version. This protects it from LRU
   * eviction only: idle expiry reads the replicated lastActive, which the acting owner refreshes
   * in batches (docs/design.md §3.3).
   */
  touch(service: string, key: string): void {
    const live = this.#tables.get(service)?.live;
    if (live === undefined) return;
    const e = live.get(key);
    if (e === undefined) return;
    live.delete(key);
    live.set(key, e);
  }

  /**
   * Drop live entries idle for idleTimeoutMs (by lastActive) and tombstones older than
   * tombstoneMs (by lastActive too: when the end was written or received here). Both count in this
   * node's own clock — never the wall part of a version, which a peer's fast clock may have dragged
   * ahead (hlc.ts) — so a peer whose clock is off makes no entry expire early or late. Returns the
   * number of live entries evicted.
   *
   * Approximation, for O(expired) cost instead of O(table): each Map is walked from its oldest
   * end and the walk stops at the first entry not yet due. Map order is the order of the last
   * merge or touch, which tracks lastActive closely but not exactly: touch() and a remote refresh
   * carrying an older lastActive can put a due entry behind one that is not, delaying its expiry
   * until the entries ahead of it expire or move (at most about one more idle timeout).
   */
  expire(now: number = this.#now()): number {
    let victims: FlowEntry[] | undefined;
    const tombCutoff = now - this.#tombstoneMs;
    for (const [service, t] of this.#tables) {
      if (t.live.size > 0) {
        const { idleTimeoutMs } = this.#limitsFor(service);
        for (const e of t.live.values()) {
          if (now - e.lastActive < idleTimeoutMs) break;
          t.live.delete(e.key);
          (victims ??= []).push(e);
        }
      }
      for (const e of t.dead.values()) {
        if (e.lastActive > tombCutoff) break;
        t.dead.delete(e.key);
        this.#stats.tombstonesExpired++;
      }
      if (t.live.size === 0 && t.dead.size === 0) this.#tables.delete(service);
    }
    if (victims === undefined) return 0;
    this.#stats.evictedIdle += victims.length;
    // Callbacks run last: one that merges (an end announcement) must not meet a half-walked Map.
    for (const v of victims) this.#onEvict?.(v, 'idle');
    return victims.length;
  }

  /** Live entries, of one service or of all. */
  size(service?: string): number {
    if (service !== undefined) return this.#tables.get(service)?.live.size ?? 0;
    let n = 0;
    for (const t of this.#tables.values()) n += t.live.size;
    return n;
  }

  /** Services holding any entry, tombstones included. */
  services(): string[] {
    return [...this.#tables.keys()];
  }

  /** Live entries, least recently used first. Do not merge while iterating. */
  *entries(service?: string): IterableIterator<FlowEntry> {
    if (service !== undefined) {
      const t = this.#tables.get(service);
      if (t !== undefined) yield* t.live.values();
      return;
    }
    for (const t of this.#tables.values()) yield* t.live.values();
  }

  /** Every stored entry, tombstones included: what a snapshot must carry. */
  *allEntries(): IterableIterator<FlowEntry> {
    for (const t of this.#tables.values()) {
      yield* t.live.values();
      yield* t.dead.values();
    }
  }

  /** Forget entries (of one service or all) without counting them as evictions. */
  clear(service?: string): void {
    if (service === undefined) this.#tables.clear();
    else this.#tables.delete(service);
  }

  /** Evict until one more key fits; returns the live victims when someone listens for them. */
  #makeRoom(t: ServiceTable, service: string): FlowEntry[] | undefined {
    const { maxEntries } = this.#limitsFor(service);
    let victims: FlowEntry[] | undefined;
    // A loop, not an if: a config reload may have lowered maxEntries below the current size.
    while (t.live.size + t.dead.size >= maxEntries) {
      const tomb = t.dead.size > 0 ? oldest(t, 'dead') : undefined;
      if (tomb !== undefined) {
        t.dead.delete(tomb.key);
        this.#stats.tombstonesEvicted++;
        continue;
      }
      const lru = oldest(t, 'live');
      if (lru === undefined) break;
      t.live.delete(lru.key);
      this.#stats.evictedLru++;
      if (this.#onEvict !== undefined) (victims ??= []).push(lru);
    }
    return victims;
  }

  #limitsFor(service: string): FlowTableLimits {
    const l = this.#limits(service);
    // Limits come from validated config; a bad one here is a bug that would unbound memory.
    if (!Number.isInteger(l.maxEntries) || l.maxEntries < 1) {
      throw new TandemError(ErrorCodes.CONFIG_INVALID, `flow table maxEntries for service "${service}" must be an integer >= 1, got ${l.maxEntries}`);
    }
    if (!(l.idleTimeoutMs > 0)) {
      throw new TandemError(ErrorCodes.CONFIG_INVALID, `flow table idleTimeoutMs for service "${service}" must be > 0, got ${l.idleTimeoutMs}`);
    }
    return l;
  }
}
