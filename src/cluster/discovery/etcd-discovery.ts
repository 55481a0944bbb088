/**
 * A node's session with etcd (docs/operations.md, "Membership through etcd"): it registers the
 * node under a lease, reads everything under the cluster's prefix, watches it, and reports what it
 * sees through callbacks: the member records, the pushed config, the other nodes' config status,
 * and whether etcd is reachable. Nothing here is on the path of a flow: when etcd is away the
 * callbacks simply stop, the node keeps the membership and config it has, and this class
 * reconnects with back-off on its own.
 *
 * A session is: grant a lease (TTL = ttlMs rounded up to seconds; the library keeps it alive at a
 * third of the TTL) → put this node's record and config status under it → read the prefix →
 * watch the prefix from the revision after that read. A lost lease (etcd away for longer than the
 * TTL), a watch that etcd cancels, or a failed write ends the session; the next one starts over,
 * after min(2 s, 100 ms · 2^n) · U(0.5, 1). A read after a reconnect replaces the whole view, so
 * whatever changed meanwhile (members gone, a new config) is seen.
 *
 * Degraded: the session is not up, or its lease keep-alive or its watch stream is failing, for
 * longer than degradedAfterMs (default: the TTL, within 1-10 s). The grace keeps one etcd
 * member's loss, which the client rides out by switching endpoint, from flapping the flag; a
 * TTL is also how long the lease itself survives without a keep-alive.
 */
import type { Etcd3, IWatchResponse, Lease, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { createEtcdClient, backoffMs, type EtcdClientSettings } from './etcd-client.js';
import type { DiscoveryMetrics, DiscoveryOp, RecordKind } from './metrics.js';
import { PrefixView } from './prefix-view.js';
import { encodeMember, encodeStatus, keysFor, type ConfigDoc, type ConfigStatus, type Keys, type MemberPhase, type MemberRecord } from './records.js';

export type DiscoveryState = 'connecting' | 'connected' | 'degraded';

export interface EtcdSettings extends EtcdClientSettings {
  readonly prefix: string;
  readonly ttlMs: number;
}

export interface DiscoveryTuning {
  readonly degradedAfterMs: number;
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
}

const DEFAULT_TUNING: Omit<DiscoveryTuning, 'degradedAfterMs'> = { retryBaseMs: 100, retryMaxMs: 2000 };
const WARN_INTERVAL_MS = 10_000;

export interface EtcdDiscoveryOptions {
  readonly settings: EtcdSettings;
  readonly cluster: string;
  /** This node's record as it starts (phase `joining`). */
  readonly self: MemberRecord;
  readonly logger: Logger;
  readonly metrics: DiscoveryMetrics;
  /** Every valid member record under the prefix, self included; called after each change. */
  readonly onMembers: (records: ReadonlyMap<string, MemberRecord>) => void;
  /** The pushed config changed (null: none, or deleted). */
  readonly onConfig: (doc: ConfigDoc | null) => void;
  readonly onStatuses: (statuses: ReadonlyMap<string, ConfigStatus>) => void;
  readonly onState: (state: DiscoveryState, error: string | null) => void;
  readonly tuning?: Partial<DiscoveryTuning>;
}

interface Session {
  lease: Lease | null;
  watcher: Watcher | null;
  established: boolean;
  leaseOk: boolean;
  watchOk: boolean;
  ended: boolean;
  end(why: string): void;
  readonly done: Promise<string>;
}

class SessionEnded extends Error {}

export class EtcdDiscovery {
  readonly #o: EtcdDiscoveryOptions;
  readonly #t: DiscoveryTuning;
  readonly #keys: Keys;
  readonly #log: Logger;
  #client: Etcd3 | null = null;
  #record: MemberRecord;
  #status: ConfigStatus | null = null;
  readonly #view: PrefixView;
  #session: Session | null = null;
  #state: DiscoveryState = 'connecting';
  #lastError: string | null = null;
  #degradeTimer: NodeJS.Timeout | null = null;
  #sleepTimer: NodeJS.Timeout | null = null;
  #wake: (() => void) | null = null;
  #stopped = false;
  #firstLoad: () => void = () => undefined;
  readonly #loaded: Promise<void>;
  readonly #warned = new Map<string, number>();

  constructor(o: EtcdDiscoveryOptions) {
    this.#o = o;
    this.#t = { ...DEFAULT_TUNING, degradedAfterMs: Math.min(10_000, Math.max(1000, o.settings.ttlMs)), ...o.tuning };
    this.#keys = keysFor(o.settings.prefix);
    this.#log = o.logger;
    this.#record = o.self;
    this.#loaded = new Promise<void>((resolve) => (this.#firstLoad = resolve));
    this.#view = new PrefixView({
      keys: this.#keys,
      cluster: o.cluster,
      selfId: o.self.id,
      onMembers: (m) => {
        o.metrics.members.set(m.size);
        o.onMembers(m);
      },
      onConfig: o.onConfig,
      onStatuses: o.onStatuses,
      onBad: (kind, problem) => this.#bad(kind, problem),
    });
  }

  get state(): DiscoveryState {
    return this.#state;
  }

  get lastError(): string | null {
    return this.#lastError;
  }

  get keys(): Keys {
    return this.#keys;
  }

  members(): ReadonlyMap<string, MemberRecord> {
    return this.#view.members();
  }

  statuses(): ReadonlyMap<string, ConfigStatus> {
    return this.#view.statuses();
  }

  /**
   * Connect, register and read the prefix. Resolves true once the first read is done, or false
   * after `timeoutMs` (etcd unreachable: the node starts with what it has, the session keeps
   * trying in the background).
   */
  async start(timeoutMs: number): Promise<boolean> {
    try {
      this.#client = await createEtcdClient(this.#o.settings);
    } catch (err) {
      this.#error('session', err);
      this.#setState('degraded');
      return false;
    }
    if (this.#stopped) {
      this.#client.close();
      return false;
    }
    void this.#loop();
    let timer: NodeJS.Timeout | undefined;
    const loaded = await Promise.race([this.#loaded.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs)))]);
    clearTimeout(timer);
    if (!loaded && this.#state === 'connecting') this.#setState('degraded');
    return loaded;
  }

  /** Change this node's phase; resolves once etcd has it, or false after timeoutMs (or etcd away). */
  async setPhase(phase: MemberPhase, timeoutMs = 1000): Promise<boolean> {
    this.#record = { ...this.#record, phase };
    const s = this.#session;
    if (s === null || !s.established || s.lease === null) return false;
    return this.#put(s, this.#keys.member(this.#record.id), encodeMember(this.#record), timeoutMs);
  }

  /** This node's config status, written now if etcd is there, else at the next session. */
  reportStatus(status: ConfigStatus): void {
    this.#status = status;
    const s = this.#session;
    if (s !== null && s.established && s.lease !== null) void this.#put(s, this.#keys.status(status.node), encodeStatus(status), this.#o.settings.dialTimeoutMs);
  }

  /** End the session. `revoke`: delete this node's keys now (a graceful leave) instead of letting the lease expire. */
  async stop(revoke: boolean): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#degradeTimer !== null) clearTimeout(this.#degradeTimer);
    if (this.#sleepTimer !== null) clearTimeout(this.#sleepTimer);
    this.#wake?.();
    const s = this.#session;
    this.#session = null;
    if (s !== null) {
      s.end('stopping');
      void s.watcher?.cancel().catch(() => undefined);
      if (revoke && s.lease !== null && s.established) {
        try {
          await withTimeout(s.lease.revoke(), this.#o.settings.dialTimeoutMs);
          this.#log.info('left etcd (lease revoked)');
        } catch (err) {
          this.#error('revoke', err);
        }
      } else s.lease?.release();
    }
    this.#client?.close();
  }

  async #loop(): Promise<void> {
    let attempt = 0;
    while (!this.#stopped) {
      const s = newSession();
      this.#session = s;
      try {
        await this.#establish(s);
        attempt = 0;
        const why = await s.done;
        if (!this.#stopped) this.#warn('session', `etcd session ended (${why}); reconnecting`);
      } catch (err) {
        if (this.#stopped) break;
        if (!(err instanceof SessionEnded)) this.#error('session', err);
        s.end('not established');
      }
      this.#teardown(s);
      if (this.#stopped) break;
      this.#health();
      await this.#sleep(backoffMs(attempt++, this.#t.retryBaseMs, this.#t.retryMaxMs));
    }
  }

  async #establish(s: Session): Promise<void> {
    const client = this.#client!;
    const lease = client.lease(Math.max(1, Math.ceil(this.#o.settings.ttlMs / 1000)));
    s.lease = lease;
    lease.on('lost', (err: Error) => {
      if (s.ended) return;
      this.#error('lease', err);
      s.end(`lease lost: ${err.message}`);
    });
    // Typed as a keep-alive response by the library, but it passes the error (lease.js, handleKeepaliveError).
    lease.on('keepaliveFailed', (err: unknown) => {
      this.#lastError = `lease keep-alive: ${err instanceof Error ? err.message : String(err)}`;
      if (s.leaseOk) {
        s.leaseOk = false;
        this.#health();
      }
    });
    lease.on('keepaliveSucceeded', () => {
      if (!s.leaseOk) {
        s.leaseOk = true;
        this.#health();
      }
    });
    await within(s, lease.grant());
    s.leaseOk = true;
    await within(s, lease.put(this.#keys.member(this.#record.id)).value(encodeMember(this.#record)).exec());
    if (this.#status !== null) await within(s, lease.put(this.#keys.status(this.#status.node)).value(encodeStatus(this.#status)).exec());
    const res = await within(s, client.getAll().prefix(this.#keys.prefix).exec());
    this.#view.load(res.kvs);
    const from = (BigInt(res.header.revision) + 1n).toString();
    const watcher = await within(s, client.watch().prefix(this.#keys.prefix).startRevision(from).create());
    s.watcher = watcher;
    if (s.ended) throw new SessionEnded();
    s.watchOk = true;
    watcher.on('data', (r: IWatchResponse) => this.#onWatch(s, r));
    watcher.on('disconnected', (err: Error) => {
      this.#lastError = `watch: ${err.message}`;
      if (s.watchOk) {
        s.watchOk = false;
        this.#health();
      }
    });
    watcher.on('connected', () => {
      if (!s.watchOk) {
        s.watchOk = true;
        this.#health();
      }
    });
    watcher.on('error', (err: Error) => {
      this.#error('watch', err);
      s.end(`watch failed: ${err.message}`);
    });
    s.established = true;
    this.#o.metrics.sessions.inc();
    this.#lastError = null;
    this.#log.info({ endpoints: this.#o.settings.endpoints, prefix: this.#keys.prefix, members: this.#view.members().size }, 'etcd session established');
    this.#health();
    this.#firstLoad();
  }

  #teardown(s: Session): void {
    s.established = false;
    const w = s.watcher;
    s.watcher = null;
    if (w !== null) {
      w.removeAllListeners();
      w.on('error', () => undefined);
      void w.cancel().catch(() => undefined);
    }
    // The next session takes the keys over with a new lease; this one expires on its own.
    s.lease?.release();
  }

  #onWatch(s: Session, r: IWatchResponse): void {
    if (s.ended) return;
    const own = this.#view.apply(r.events);
    if (own.record === null && !this.#stopped) {
      // Someone deleted this node's record: put it back.
      void this.#put(s, this.#keys.member(this.#record.id), encodeMember(this.#record), this.#o.settings.dialTimeoutMs);
    } else if (own.record !== undefined && own.record !== null && own.record.incarnation !== this.#record.incarnation) {
      const rec = own.record;
      this.#warn('conflict', `another process registered as node "${rec.id}" (${rec.host}:${rec.peerPort}, started ${new Date(rec.startedAt).toISOString()})`);
    }
    if (own.statusDeleted && this.#status !== null && !this.#stopped) {
      void this.#put(s, this.#keys.status(this.#status.node), encodeStatus(this.#status), this.#o.settings.dialTimeoutMs);
    }
  }

  async #put(s: Session, key: string, value: string, timeoutMs: number): Promise<boolean> {
    if (s.lease === null || s.ended) return false;
    try {
      await withTimeout(s.lease.put(key).value(value).exec(), timeoutMs);
      return true;
    } catch (err) {
      this.#error('put', err);
      // The next session writes the current record and status again.
      s.end(`write failed: ${(err as Error).message}`);
      return false;
    }
  }

  #health(): void {
    if (this.#stopped) return;
    const s = this.#session;
    const ok = s !== null && s.established && s.leaseOk && s.watchOk;
    if (ok) {
      if (this.#degradeTimer !== null) clearTimeout(this.#degradeTimer);
      this.#degradeTimer = null;
      this.#setState('connected');
      return;
    }
    if (this.#state !== 'connected' || this.#degradeTimer !== null) return;
    this.#degradeTimer = setTimeout(() => {
      this.#degradeTimer = null;
      const cur = this.#session;
      if (!(cur !== null && cur.established && cur.leaseOk && cur.watchOk)) this.#setState('degraded');
    }, this.#t.degradedAfterMs);
    this.#degradeTimer.unref();
  }

  #setState(state: DiscoveryState): void {
    if (state === this.#state || this.#stopped) return;
    const prev = this.#state;
    this.#state = state;
    this.#o.metrics.degraded.set(state === 'degraded' ? 1 : 0);
    if (state === 'degraded') this.#log.warn({ prev, err: this.#lastError }, 'discovery degraded: etcd unreachable; serving with the membership and config this node has');
    else if (state === 'connected' && prev === 'degraded') this.#log.info('discovery connected again');
    this.#o.onState(state, this.#lastError);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#wake = resolve;
      this.#sleepTimer = setTimeout(() => {
        this.#sleepTimer = null;
        this.#wake = null;
        resolve();
      }, ms);
    });
  }

  #error(op: DiscoveryOp, err: unknown): void {
    this.#o.metrics.errors.inc({ op });
    const message = err instanceof Error ? err.message : String(err);
    this.#lastError = `${op}: ${message}`;
    this.#warn(op, `etcd ${op} failed: ${message}`);
  }

  #bad(kind: RecordKind, problem: string): void {
    this.#o.metrics.badRecords.inc({ kind });
    this.#warn(`bad-${kind}`, `refused a value in etcd: ${problem}`);
  }

  /** At most one warning per reason per 10 s: an etcd outage must not flood the log. */
  #warn(reason: string, message: string): void {
    const now = Date.now();
    const last = this.#warned.get(reason);
    if (last !== undefined && now - last < WARN_INTERVAL_MS) return;
    this.#warned.set(reason, now);
    this.#log.warn({ reason }, message);
  }
}

function newSession(): Session {
  let end: (why: string) => void = () => undefined;
  const done = new Promise<string>((resolve) => (end = resolve));
  const s: Session = {
    lease: null,
    watcher: null,
    established: false,
    leaseOk: false,
    watchOk: false,
    ended: false,
    end(why) {
      if (s.ended) return;
      s.ended = true;
      end(why);
    },
    done,
  };
  return s;
}

/** The promise, unless the session ends first (then SessionEnded). */
function within<T>(s: Session, p: Promise<T>): Promise<T> {
  if (s.ended) return Promise.reject(new SessionEnded());
  return Promise.race([p, s.done.then((): never => { throw new SessionEnded(); })]);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}
