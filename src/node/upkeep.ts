/**
 * The node's background upkeep once it serves: flow refreshes replicated in batches, idle entries
 * expired, and the rate of communications (router lookups) the status reports.
 */
import type { ServiceConfig } from '../config/schema.js';
import type { FlowRouter } from '../cluster/router.js';
import type { FlowTable } from '../cluster/flow-table.js';

export class Upkeep {
  readonly #router: FlowRouter;
  readonly #table: FlowTable;
  #timers: NodeJS.Timeout[] = [];
  /** Communications per second over the last few seconds (EWMA of router lookups). */
  #rate = { last: 0, perSec: 0 };

  constructor(router: FlowRouter, table: FlowTable) {
    this.#router = router;
    this.#table = table;
  }

  /** Communications per second, one decimal. */
  get ratePerSec(): number {
    return Math.round(this.#rate.perSec * 10) / 10;
  }

  start(services: readonly ServiceConfig[]): void {
    const idle = Math.min(...services.map((s) => s.flowIdleTimeoutMs), 600_000);
    // Refresh well inside the shortest idle timeout, so that a live flow never looks idle elsewhere.
    const refreshMs = Math.max(250, Math.min(5000, Math.floor(idle / 4)));
    this.#timers.push(setInterval(() => this.#router.flushRefreshes(), refreshMs).unref());
    this.#timers.push(setInterval(() => this.#table.expire(), 1000).unref());
    this.#timers.push(
      setInterval(() => {
        const n = this.#router.stats.lookups;
        // EWMA with a ~5 s time constant: steady enough to read, quick enough to see a failover.
        this.#rate.perSec = this.#rate.perSec * 0.8 + (n - this.#rate.last) * 0.2;
        this.#rate.last = n;
      }, 1000).unref(),
    );
  }

  stop(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
  }
}
