/**
 * Active health checks of one service's backends on this node (docs/health.md). Checks only REPORT into
 * the pool's BackendState, as Caddy's active health checkers mark its upstreams; they never choose
 * a backend. The pool applies HAProxy's rise/fall thresholds (pool.reportCheck), so one lost probe
 * does not take a backend out and one lucky probe does not bring it back.
 *
 * Scheduling: each backend has its own timer. Its first probe waits a random offset within the
 * interval, so that the nodes of a cluster (and the backends of one node) do not probe in lockstep
 * — Envoy's `initial_jitter` does exactly this, and HAProxy's `spread-checks` exists for the same
 * reason: N nodes probing at once look like a small thundering herd to every backend. The offset
 * keeps the nodes out of phase after that, since they all probe at the same period. A backend is
 * probed every `intervalMs`, measured from the start of the previous probe so that the period does
 * not drift with probe latency; a probe never overlaps the previous one of the same backend.
 *
 * Health is local to each node: results are not replicated. A state change is logged once (warn
 * for down and ejected, info for up); single probe failures only at debug.
 */
import type { Logger } from 'pino';
import type { ServiceConfig } from '../config/schema.js';
import type { BackendEvent, UpstreamPool } from './pool.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { probeFor, type Probe, type ProbeResult, type ProbeTarget } from './probes.js';
import type { HealthMetrics, MetricsSource } from './health-metrics.js';

export interface HealthCheckerOptions {
  readonly service: ServiceConfig;
  readonly pool: UpstreamPool;
  readonly logger: Logger;
  /** The node's one set of health metrics, shared by all its checkers. */
  readonly metrics: HealthMetrics;
  /** Uniform in [0, 1), for the first-probe offsets; seed it in tests. Default Math.random. */
  readonly random?: () => number;
  /** Called on every active-health transition (not on ejections, which end by themselves). */
  readonly onChange?: (address: string, healthy: boolean) => void;
  /** Tests: a fake clock for the probe timers. */
  readonly clock?: Clock;
  /** Tests: a probe used instead of the one of the configured type (unless the type is `none`). */
  readonly probe?: Probe;
}

interface Target extends ProbeTarget {
  timer: TimerHandle | null;
  /** The probe in flight, if any. */
  inFlight: AbortController | null;
}

export class HealthChecker {
  #service: ServiceConfig;
  readonly #pool: UpstreamPool;
  readonly #logger: Logger;
  readonly #metrics: HealthMetrics;
  readonly #source: MetricsSource;
  readonly #random: () => number;
  readonly #onChange: ((address: string, healthy: boolean) => void) | undefined;
  readonly #clock: Clock;
  readonly #probe: Probe | undefined;
  readonly #targets = new Map<string, Target>();
  #running = false;
  #unsubscribe: (() => void) | null = null;

  constructor(opts: HealthCheckerOptions) {
    this.#service = opts.service;
    this.#pool = opts.pool;
    this.#logger = opts.logger.child({ component: 'health', service: opts.service.name });
    this.#metrics = opts.metrics;
    this.#source = { service: opts.service.name, pool: opts.pool };
    this.#random = opts.random ?? Math.random;
    this.#onChange = opts.onChange;
    this.#clock = opts.clock ?? systemClock;
    this.#probe = opts.probe;
  }

  get running(): boolean {
    return this.#running;
  }

  /** Addresses being probed now (none when the check type is `none`). */
  get targets(): readonly string[] {
    return [...this.#targets.keys()];
  }

  /**
   * Start probing. With type `none` no probe runs, but the backend gauges and the logging of
   * passive ejections (which come from the pool) still start here.
   */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#metrics.attach(this.#source);
    this.#unsubscribe = this.#pool.onEvent((e) => this.#onEvent(e));
    this.#sync();
  }

  /**
   * A reload. Backends that stay keep their state (it lives in the pool's BackendState) and their
   * schedule, unless the interval changed, in which case they get a new random offset within the
   * new interval. New backends get a random offset; removed ones stop being probed at once. Turning
   * checks off (`none`) brings every down backend back up: nothing else ever would.
   */
  update(service: ServiceConfig): void {
    const prev = this.#service.healthCheck;
    this.#service = service;
    if (!this.#running) return;
    const next = service.healthCheck;
    if (next.type === 'none' && prev.type !== 'none') {
      this.#clear();
      this.#pool.resetHealth();
      return;
    }
    if (next.intervalMs !== prev.intervalMs) {
      for (const t of this.#targets.values()) {
        if (t.timer === null) continue; // in flight: reschedules itself with the new interval
        this.#clock.clearTimeout(t.timer);
        this.#schedule(t, this.#firstDelay());
      }
    }
    this.#sync();
  }

  /** Stop every timer and close every probe socket. Health state stays as the probes left it. */
  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    this.#clear();
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#metrics.detach(this.#source);
  }

  /** Targets in line with the config: one per configured backend, none for type `none`. */
  #sync(): void {
    const hc = this.#service.healthCheck;
    const wanted = new Map(hc.type === 'none' ? [] : this.#service.backends.map((b) => [b.address, b]));
    for (const [address, t] of this.#targets) {
      if (!wanted.has(address)) this.#drop(t);
    }
    for (const [address, b] of wanted) {
      if (this.#targets.has(address)) continue;
      const t: Target = { address, host: b.host, port: b.port, timer: null, inFlight: null };
      this.#targets.set(address, t);
      this.#schedule(t, this.#firstDelay());
    }
  }

  /** The first probe's offset: uniform within the interval (see the file comment). */
  #firstDelay(): number {
    return Math.floor(this.#random() * this.#service.healthCheck.intervalMs);
  }

  #schedule(t: Target, delayMs: number): void {
    t.timer = this.#clock.setTimeout(() => {
      t.timer = null;
      void this.#run(t);
    }, delayMs);
  }

  #drop(t: Target): void {
    if (t.timer !== null) this.#clock.clearTimeout(t.timer);
    t.timer = null;
    t.inFlight?.abort();
    t.inFlight = null;
    this.#targets.delete(t.address);
  }

  #clear(): void {
    for (const t of [...this.#targets.values()]) this.#drop(t);
  }

  async #run(t: Target): Promise<void> {
    const check = this.#service.healthCheck;
    const probe = check.type === 'none' ? null : (this.#probe ?? probeFor(check.type));
    if (probe === null) return;
    const ac = new AbortController();
    t.inFlight = ac;
    const startedAt = this.#clock.now();
    let result: ProbeResult;
    try {
      result = await probe(t, check, ac.signal);
    } catch (err) {
      // Probes resolve, never reject; a fake or future one that throws still counts as a failure.
      result = { ok: false, reason: err instanceof Error ? err.message : String(err), timeout: false };
    }
    if (t.inFlight === ac) t.inFlight = null;
    // Stopped, removed or reloaded away while the probe ran: its result describes nothing we keep.
    if (ac.signal.aborted || !this.#running || this.#targets.get(t.address) !== t) return;
    const name = this.#service.name;
    const hc = this.#service.healthCheck;
    this.#metrics.check(name, result.ok ? 'ok' : result.timeout ? 'timeout' : 'fail');
    if (!result.ok) this.#logger.debug({ backend: t.address, reason: result.reason }, 'health check failed');
    this.#pool.reportCheck(t.address, result.ok, { rise: hc.rise, fall: hc.fall }, result.ok ? null : result.reason);
    this.#schedule(t, Math.max(0, startedAt + hc.intervalMs - this.#clock.now()));
  }

  #onEvent(e: BackendEvent): void {
    const name = this.#service.name;
    const hc = this.#service.healthCheck;
    this.#metrics.stateChange(name, e.address, e.to);
    switch (e.to) {
      case 'down':
        this.#logger.warn({ backend: e.address, reason: e.reason, fall: hc.fall }, 'backend down: failed %d health checks in a row', hc.fall);
        this.#onChange?.(e.address, false);
        break;
      case 'up':
        if (e.cause === 'config') this.#logger.info({ backend: e.address }, 'backend up: health checks turned off');
        else this.#logger.info({ backend: e.address, rise: hc.rise }, 'backend up: passed %d health checks in a row', hc.rise);
        this.#onChange?.(e.address, true);
        break;
      case 'ejected':
        this.#logger.warn(
          { backend: e.address, cause: e.cause, ejectedForMs: e.ejectedForMs, ejections: e.ejections },
          'backend ejected for %d ms after %d failures in a row (last: %s)',
          e.ejectedForMs,
          this.#pool.outlierOptions.consecutiveFailures,
          e.cause,
        );
        break;
    }
  }
}
