/**
 * A service's backends on this node. As in Caddy's reverseproxy, the config of a backend (address,
 * weight) is kept apart from its runtime state (active count, health, draining, ejection), and the
 * runtime state is keyed by address so that it survives a reload that keeps the backend.
 *
 * Health is local to each node (docs/health.md): active checks (health.ts) and passive outlier detection
 * (outlier.ts) only REPORT into this pool, as Caddy's health checkers mark its Upstream structs;
 * the selection policies read the result through `BackendView.available` and `weight`.
 */
import type { BackendConfig } from '../config/schema.js';
import type { BackendView, Selector } from '../balancer/selector.js';
import {
  DEFAULT_OUTLIER_OPTIONS,
  OutlierState,
  eject,
  mayEject,
  recordFailure,
  recordSuccess,
  type FailureKind,
  type OutlierOptions,
} from './outlier.js';

export type { FailureKind, OutlierOptions } from './outlier.js';

/**
 * Slow start floor, Envoy's slow_start_config.min_weight_percent (default 10 %): a ramping backend
 * gets at least this share of its weight at once, so weighted policies still send it a little
 * traffic and the ramp has something to observe. The ramp itself is linear (Envoy's aggression 1).
 */
export const SLOW_START_MIN_FACTOR = 0.1;

/**
 * The ramp climbs in steps of 1/SLOW_START_STEPS of the weight rather than continuously: a policy
 * that precomputes from weights (consistent-hash rebuilds its 65537-slot Maglev table whenever a
 * quantised weight changes) then rebuilds at most ~20 times per ramp instead of on almost every
 * pick. Envoy sidesteps this by supporting slow start only for round-robin and least-request.
 */
export const SLOW_START_STEPS = 20;

export class BackendState implements BackendView {
  readonly address: string;
  readonly host: string;
  readonly port: number;
  configWeight: number;
  active = 0;
  total = 0;
  /** Failures reported by the proxies (passive health), all kinds, ever. */
  failures = 0;
  /** From active health checks; starts healthy so that a node serves before the first probe. */
  healthy = true;
  /** Passive health (outlier detection): not chosen before this time (ms epoch). */
  ejectedUntil = 0;
  ejections = 0;
  /** When the backend last became healthy (or was added by a reload), for slow start; 0 = never ramp. */
  healthySince = 0;
  slowStartMs = 0;
  maxActive = Infinity;
  /** Active checks in a row that passed / failed (HAProxy's rise and fall count these). */
  checkPasses = 0;
  checkFailures = 0;
  /** Why the last active check failed, for the admin API and logs; null after a pass. */
  lastCheckError: string | null = null;
  readonly outlier = new OutlierState();
  #drainRequested = false;
  readonly #now: () => number;

  constructor(cfg: BackendConfig, now: () => number = Date.now) {
    this.address = cfg.address;
    this.host = cfg.host;
    this.port = cfg.port;
    this.configWeight = cfg.weight;
    this.#now = now;
  }

  /** Set cluster-wide through the admin API; weight 0 in the config drains too. */
  get draining(): boolean {
    return this.#drainRequested || this.configWeight === 0;
  }

  set draining(v: boolean) {
    this.#drainRequested = v;
  }

  /** Ejected by outlier detection right now. */
  get ejected(): boolean {
    return this.ejectedUntil > this.#now();
  }

  /** Usable for new flows. */
  get available(): boolean {
    return this.healthy && !this.draining && this.configWeight > 0 && !this.ejected && this.active < this.maxActive;
  }

  /** Usable for the flows already recorded on it (draining keeps them; down or ejected moves them). */
  get serving(): boolean {
    return this.healthy && !this.ejected;
  }

  /** Effective weight: ramps linearly (in steps) over slowStartMs after the backend became healthy. */
  get weight(): number {
    if (this.slowStartMs <= 0 || this.healthySince === 0) return this.configWeight;
    const f = (this.#now() - this.healthySince) / this.slowStartMs;
    if (f >= 1) return this.configWeight;
    const stepped = Math.floor(f * SLOW_START_STEPS) / SLOW_START_STEPS;
    return this.configWeight * Math.max(SLOW_START_MIN_FACTOR, stepped);
  }
}

/** A change of a backend's health, for logs, metrics and the node. */
export type BackendEvent =
  | { readonly address: string; readonly to: 'up'; readonly cause: 'check' | 'config' }
  | { readonly address: string; readonly to: 'down'; readonly cause: 'check'; readonly reason: string | null }
  | { readonly address: string; readonly to: 'ejected'; readonly cause: FailureKind; readonly ejectedForMs: number; readonly ejections: number };

export type BackendListener = (event: BackendEvent) => void;

/** Thresholds of active checks (HAProxy's `rise` and `fall`, defaults 2 and 3). */
export interface CheckThresholds {
  readonly rise: number;
  readonly fall: number;
}

export interface PoolOptions {
  slowStartMs?: number;
  random?: () => number;
  /** Clock for ejections and slow start (tests); default Date.now. */
  now?: () => number;
  /** Outlier-detection tuning; defaults in outlier.ts. */
  outlier?: Partial<OutlierOptions>;
}

export class UpstreamPool {
  #backends: BackendState[] = [];
  #byAddress = new Map<string, BackendState>();
  #selector: Selector;
  #random: () => number;
  readonly #now: () => number;
  readonly #outlier: OutlierOptions;
  readonly #listeners = new Set<BackendListener>();
  #initialised = false;

  constructor(backends: readonly BackendConfig[], selector: Selector, opts: PoolOptions = {}) {
    this.#selector = selector;
    this.#random = opts.random ?? Math.random;
    this.#now = opts.now ?? Date.now;
    this.#outlier = { ...DEFAULT_OUTLIER_OPTIONS, ...opts.outlier };
    this.update(backends, selector, opts.slowStartMs ?? 0);
    this.#initialised = true;
  }

  get backends(): readonly BackendState[] {
    return this.#backends;
  }

  get outlierOptions(): OutlierOptions {
    return this.#outlier;
  }

  get(address: string): BackendState | undefined {
    return this.#byAddress.get(address);
  }

  /**
   * A reload: keep the runtime state of backends that stay (counters, health, ejection, drain);
   * weight 0 drains. A backend that a reload adds is new to the pool and ramps up over
   * `slowStartMs` (Envoy slow-starts "newly added upstream endpoints"); the backends of the first
   * config do not, so that a starting node serves at full weight.
   */
  update(backends: readonly BackendConfig[], selector: Selector, slowStartMs: number): void {
    const next: BackendState[] = [];
    const byAddress = new Map<string, BackendState>();
    for (const cfg of backends) {
      let state = this.#byAddress.get(cfg.address);
      if (!state) {
        state = new BackendState(cfg, this.#now);
        if (this.#initialised) state.healthySince = this.#now();
      }
      state.configWeight = cfg.weight;
      state.slowStartMs = slowStartMs;
      next.push(state);
      byAddress.set(cfg.address, state);
    }
    this.#backends = next;
    this.#byAddress = byAddress;
    this.#selector = selector;
  }

  /**
   * Whether a flow recorded on `address` may keep using it: false when the backend is down, ejected
   * or gone from the config, so the router moves the flow on its next communication; true while it
   * drains, so draining keeps existing flows.
   */
  usable(address: string): boolean {
    const b = this.#byAddress.get(address);
    return b !== undefined && b.serving;
  }

  /** A new backend for a flow, by the service's policy; null when none is available. */
  choose(key: string): string | null {
    const i = this.#selector.pick(this.#backends, { key, random: this.#random });
    return i < 0 ? null : this.#backends[i].address;
  }

  acquire(address: string): BackendState | undefined {
    const b = this.#byAddress.get(address);
    if (b) {
      b.active++;
      b.total++;
    }
    return b;
  }

  release(b: BackendState | undefined): void {
    if (b && b.active > 0) b.active--;
  }

  /** Subscribe to health changes; returns the unsubscribe function. */
  onEvent(listener: BackendListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Passive health: a proxied communication to `address` succeeded (a response below 500, or a connect). */
  reportSuccess(address: string): void {
    const b = this.#byAddress.get(address);
    if (b) recordSuccess(b.outlier, this.#now(), this.#outlier);
  }

  /**
   * Passive health: a communication to `address` failed (connect refused or timed out, a 5xx, a
   * response timeout). Enough in a row eject the backend (outlier.ts). Failures of requests that
   * were already in flight when the backend was ejected count but do not extend the ejection.
   */
  reportFailure(address: string, kind: FailureKind): void {
    const b = this.#byAddress.get(address);
    if (!b) return;
    b.failures++;
    const now = this.#now();
    if (b.ejectedUntil > now) return;
    if (!recordFailure(b.outlier, this.#outlier)) return;
    let ejected = 0;
    for (const x of this.#backends) if (x.ejectedUntil > now) ejected++;
    if (!mayEject(ejected, this.#backends.length, this.#outlier)) return;
    b.ejectedUntil = eject(b.outlier, now, this.#outlier);
    b.ejections++;
    this.#emit({ address, to: 'ejected', cause: kind, ejectedForMs: b.ejectedUntil - now, ejections: b.ejections });
  }

  /**
   * Active health: one probe's result. As HAProxy's `rise`/`fall`: a healthy backend goes down after
   * `fall` failed probes in a row and a down one comes up after `rise` good probes in a row, so a
   * flapping backend does not flap the pool. Coming up starts slow start. Returns the transition.
   */
  reportCheck(address: string, ok: boolean, t: CheckThresholds, reason: string | null = null): 'up' | 'down' | null {
    const b = this.#byAddress.get(address);
    if (!b) return null;
    if (ok) {
      b.checkFailures = 0;
      b.checkPasses++;
      b.lastCheckError = null;
      if (!b.healthy && b.checkPasses >= t.rise) {
        this.#setHealthy(b, true, 'check');
        return 'up';
      }
    } else {
      b.checkPasses = 0;
      b.checkFailures++;
      b.lastCheckError = reason;
      if (b.healthy && b.checkFailures >= t.fall) {
        this.#setHealthy(b, false, 'check', reason);
        return 'down';
      }
    }
    return null;
  }

  /**
   * Mark every down backend up at once: active checking was turned off (type `none`), and nothing
   * would ever bring them back otherwise.
   */
  resetHealth(): void {
    for (const b of this.#backends) {
      b.checkPasses = 0;
      b.checkFailures = 0;
      b.lastCheckError = null;
      if (!b.healthy) this.#setHealthy(b, true, 'config');
    }
  }

  #setHealthy(b: BackendState, healthy: boolean, cause: 'check' | 'config', reason: string | null = null): void {
    b.healthy = healthy;
    if (healthy) {
      b.healthySince = this.#now();
      this.#emit({ address: b.address, to: 'up', cause });
    } else {
      this.#emit({ address: b.address, to: 'down', cause: 'check', reason });
    }
  }

  #emit(event: BackendEvent): void {
    for (const l of this.#listeners) l(event);
  }
}
