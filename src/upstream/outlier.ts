/**
 * Passive health: outlier detection from real traffic, after Envoy's consecutive-5xx detector
 * (envoyproxy.io/docs/envoy/latest/api-v3/config/cluster/v3/outlier_detection.proto and
 * arch_overview/upstream/outlier). The proxies report every outcome to the pool
 * (`reportSuccess` / `reportFailure`); after `consecutiveFailures` failures in a row, with no
 * success between, the backend is ejected — not chosen for new flows, and flows recorded on it
 * move on their next communication — for a back-off that grows with each ejection.
 *
 * Differences from Envoy, on purpose:
 *  - Envoy's ejection time grows linearly (base_ejection_time × times ejected, capped by
 *    max_ejection_time, both defaults 30 s / 300 s) and is decremented every `interval` sweep
 *    while the host behaves. tandem doubles from 1 s up to 60 s (a plain exponential back-off, as
 *    docs/health.md specifies), and forgets the streak once the backend has behaved for `successResetMs`.
 *  - No sweep timer: ejection ends lazily when `ejectedUntil` passes (checked at pick time), so an
 *    idle pool costs nothing.
 *
 * The state lives in each BackendState, so it survives a config reload that keeps the backend.
 * This module is pure: the pool passes `now` in.
 */

export type FailureKind = 'connect' | '5xx' | 'timeout';

export interface OutlierOptions {
  /**
   * Failures in a row that eject. Envoy's consecutive_5xx and consecutive_gateway_failure both
   * default to 5; tandem counts connect failures, timeouts and 5xx alike (Envoy does the same for
   * local-origin errors unless split_external_local_origin_errors is set).
   */
  readonly consecutiveFailures: number;
  /** First ejection. Envoy's base_ejection_time defaults to 30 s; tandem's is 1 s (docs/health.md). */
  readonly baseEjectionMs: number;
  /** Cap of the doubling back-off (Envoy's max_ejection_time, default 300 s; here 60 s). */
  readonly maxEjectionMs: number;
  /**
   * A backend that was not ejected again for this long after its last ejection ended starts its
   * next back-off at `baseEjectionMs` again. Envoy reaches the same end by decrementing the
   * ejection multiplier on every `interval` (10 s) sweep in which the host stayed healthy.
   */
  readonly successResetMs: number;
  /**
   * At most this share of a pool ejected at once, but always at least one backend (Envoy's
   * max_ejection_percent: default 10 %, "will eject at least one host regardless"). tandem's pools
   * are small, so 50 %: ejecting every backend would turn a flaky service into a dead one, and the
   * active health checks still take truly dead backends out whatever this says.
   */
  readonly maxEjectionPercent: number;
}

export const DEFAULT_OUTLIER_OPTIONS: OutlierOptions = Object.freeze({
  consecutiveFailures: 5,
  baseEjectionMs: 1_000,
  maxEjectionMs: 60_000,
  successResetMs: 30_000,
  maxEjectionPercent: 50,
});

/** 2^30 × anything sensible is past any cap; stop counting there so the arithmetic stays finite. */
const MAX_LEVEL = 30;

/** Per-backend passive-health state. */
export class OutlierState {
  /** Failures reported in a row since the last success or ejection. */
  consecutive = 0;
  /** Ejections in the current streak: the next one lasts base × 2^level (capped). */
  level = 0;
  /** When the last ejection ended (ms epoch); 0 before the first. */
  lastEjectionEnd = 0;
}

/** How long the ejection at `level` of a streak lasts. */
export function ejectionMs(level: number, o: OutlierOptions = DEFAULT_OUTLIER_OPTIONS): number {
  return Math.min(o.maxEjectionMs, o.baseEjectionMs * 2 ** Math.min(level, MAX_LEVEL));
}

/** Forget the streak once the backend went `successResetMs` past its last ejection. */
function decay(s: OutlierState, now: number, o: OutlierOptions): void {
  if (s.level > 0 && now >= s.lastEjectionEnd + o.successResetMs) s.level = 0;
}

/** A success: the run of failures is broken. */
export function recordSuccess(s: OutlierState, now: number, o: OutlierOptions = DEFAULT_OUTLIER_OPTIONS): void {
  s.consecutive = 0;
  decay(s, now, o);
}

/** A failure; true when the run reached the threshold (the caller decides whether it may eject). */
export function recordFailure(s: OutlierState, o: OutlierOptions = DEFAULT_OUTLIER_OPTIONS): boolean {
  s.consecutive++;
  return s.consecutive >= o.consecutiveFailures;
}

/** Start an ejection now; returns its end (ms epoch). The run of failures starts over afterwards. */
export function eject(s: OutlierState, now: number, o: OutlierOptions = DEFAULT_OUTLIER_OPTIONS): number {
  decay(s, now, o);
  const until = now + ejectionMs(s.level, o);
  s.level = Math.min(s.level + 1, MAX_LEVEL);
  s.consecutive = 0;
  s.lastEjectionEnd = until;
  return until;
}

/** Whether one more backend of a pool of `total`, of which `ejected` are out, may be ejected. */
export function mayEject(ejected: number, total: number, o: OutlierOptions = DEFAULT_OUTLIER_OPTIONS): boolean {
  const allowed = Math.max(1, Math.floor((total * o.maxEjectionPercent) / 100));
  return ejected < allowed;
}
