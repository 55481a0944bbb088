/**
 * The route watchdog of one node (`tandem announce`, docs/deploy-ecmp.md): polls the node's
 * `/readyz` every `checkIntervalMs`, turns the results into a verdict with rise/fall hysteresis,
 * and runs `up` or `down` when the verdict changes. It lives in its own process, beside the node,
 * because the classic failure of an anycast set-up is a BGP speaker that keeps announcing the
 * address of a load balancer that was killed -9; a separate watchdog sees the refused connection
 * and withdraws (the reason ExaBGP's healthcheck and GitHub's glb-healthcheck exist).
 *
 * Commands never overlap: a verdict that changes while a command runs is applied once it ends.
 * A failing command (non-zero exit, spawn error, deadline) is logged, counted and retried with
 * back-off for as long as its verdict stands; a newer verdict replaces it.
 */
import type { Logger } from 'pino';
import type { Counter, Gauge, Registry } from 'prom-client';
import { counter, gauge } from '../metrics.js';
import type { AnnounceConfig } from '../config/schema.js';
import { RiseFall, type Verdict } from './rise-fall.js';
import { checkReady, type CheckResult } from './readiness.js';
import { runCommand, type CommandResult } from './command.js';

export interface WatchdogTarget {
  readonly node: string;
  readonly host: string;
  readonly adminPort: number;
  /** The service addresses of the tier (`services[].vip`), given to commands as TANDEM_VIPS. */
  readonly vips: readonly string[];
}

export interface WatchdogDeps {
  readonly logger: Logger;
  readonly registry: Registry;
  /** Replaceable in tests. */
  readonly check?: (host: string, port: number, timeoutMs: number) => Promise<CheckResult>;
  readonly run?: (command: string, env: Readonly<Record<string, string>>, timeoutMs: number) => Promise<CommandResult>;
}

const RETRY_MIN_MS = 200;
const RETRY_MAX_MS = 5000;

export class Watchdog {
  readonly #target: WatchdogTarget;
  readonly #log: Logger;
  readonly #check: NonNullable<WatchdogDeps['check']>;
  readonly #run: NonNullable<WatchdogDeps['run']>;
  #cfg: AnnounceConfig;
  #riseFall: RiseFall;
  /** What the checks say the route should be. */
  #wanted: Verdict | null = null;
  /** What the last successful command made it. */
  #applied: Verdict | null = null;
  #applying: Promise<void> | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #failuresInRow = 0;
  #pollTimer: NodeJS.Timeout | null = null;
  #stopped = true;
  #lastDetail = '';
  readonly #m: {
    checks: Counter<'result'>;
    commands: Counter<'command' | 'outcome'>;
    transitions: Counter<'to'>;
    announced: Gauge;
  };

  constructor(target: WatchdogTarget, cfg: AnnounceConfig, deps: WatchdogDeps) {
    this.#target = target;
    this.#cfg = cfg;
    this.#riseFall = new RiseFall(cfg.rise, cfg.fall);
    this.#log = deps.logger;
    this.#check = deps.check ?? checkReady;
    this.#run = deps.run ?? runCommand;
    const r = deps.registry;
    this.#m = {
      checks: counter(r, { name: 'tandem_announce_checks_total', help: 'Readiness checks of the node, by result (ready, not-ready).', labelNames: ['result'] }),
      commands: counter(r, {
        name: 'tandem_announce_commands_total',
        help: 'Announce commands run, by command (up, down) and outcome (ok, failed, timeout).',
        labelNames: ['command', 'outcome'],
      }),
      transitions: counter(r, { name: 'tandem_announce_transitions_total', help: 'Verdict changes of the readiness checks, by new verdict (up, down).', labelNames: ['to'] }),
      announced: gauge(r, { name: 'tandem_announce_announced', help: '1 while the last successful command was up, 0 after down, -1 before any.' }),
    };
    this.#m.announced.set(-1);
  }

  /** The verdict of the checks and the state the commands last established. */
  status(): { node: string; wanted: Verdict | null; applied: Verdict | null; failuresInRow: number; lastCheck: string } {
    return { node: this.#target.node, wanted: this.#wanted, applied: this.#applied, failuresInRow: this.#failuresInRow, lastCheck: this.#lastDetail };
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#log.info({ readyz: `${this.#target.host}:${this.#target.adminPort}`, checkIntervalMs: this.#cfg.checkIntervalMs, rise: this.#cfg.rise, fall: this.#cfg.fall }, 'watching');
    void this.#poll();
  }

  /** New settings (SIGHUP). The verdict so far is kept when rise and fall stay the same. */
  update(cfg: AnnounceConfig): void {
    if (cfg.rise !== this.#cfg.rise || cfg.fall !== this.#cfg.fall) this.#riseFall = new RiseFall(cfg.rise, cfg.fall);
    this.#cfg = cfg;
  }

  /**
   * Stop checking. With `withdraw`, run `down` once more (bounded by its deadline) whatever the
   * state: with no watchdog left, nothing would withdraw the route when the node dies.
   */
  async stop(withdraw: boolean): Promise<CommandResult | null> {
    this.#stopped = true;
    if (this.#pollTimer) clearTimeout(this.#pollTimer);
    this.#pollTimer = null;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    await this.#applying;
    if (!withdraw) return null;
    return this.#exec('down');
  }

  async #poll(): Promise<void> {
    if (this.#stopped) return;
    const started = Date.now();
    const r = await this.#check(this.#target.host, this.#target.adminPort, this.#cfg.checkTimeoutMs);
    if (this.#stopped) return;
    this.#m.checks.inc({ result: r.ok ? 'ready' : 'not-ready' });
    if (r.detail !== this.#lastDetail) this.#log.debug({ check: r.detail }, 'readiness changed');
    this.#lastDetail = r.detail;
    const verdict = this.#riseFall.observe(r.ok);
    if (verdict) {
      this.#m.transitions.inc({ to: verdict });
      this.#log.info({ verdict, check: r.detail }, verdict === 'up' ? 'node ready: announcing' : 'node not ready: withdrawing');
      this.#want(verdict);
    }
    // Checks start every interval; a slow answer delays the next one rather than overlapping it.
    const wait = Math.max(0, this.#cfg.checkIntervalMs - (Date.now() - started));
    this.#pollTimer = setTimeout(() => void this.#poll(), wait);
  }

  #want(v: Verdict): void {
    this.#wanted = v;
    this.#failuresInRow = 0;
    if (this.#retryTimer) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = null;
    }
    this.#kick();
  }

  /** Apply the wanted verdict unless a command is running (it re-checks when it ends). */
  #kick(): void {
    if (this.#applying || this.#stopped) return;
    const v = this.#wanted;
    if (v === null || v === this.#applied) return;
    this.#applying = this.#apply(v).finally(() => {
      this.#applying = null;
      if (!this.#retryTimer) this.#kick();
    });
  }

  async #apply(v: Verdict): Promise<void> {
    const r = await this.#exec(v);
    if (r.ok) {
      this.#applied = v;
      this.#failuresInRow = 0;
      return;
    }
    if (this.#wanted !== v || this.#stopped) return;
    this.#failuresInRow++;
    const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (this.#failuresInRow - 1));
    this.#log.error(
      { command: v, code: r.code, timedOut: r.timedOut, output: r.output, failuresInRow: this.#failuresInRow, retryInMs: delay },
      `${v} command failed: retrying`,
    );
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#kick();
    }, delay);
  }

  async #exec(v: Verdict): Promise<CommandResult> {
    const env = {
      TANDEM_NODE: this.#target.node,
      TANDEM_HOST: this.#target.host,
      TANDEM_VIPS: this.#target.vips.join(' '),
      TANDEM_ANNOUNCE: v,
    };
    const r = await this.#run(v === 'up' ? this.#cfg.up : this.#cfg.down, env, this.#cfg.commandTimeoutMs);
    this.#m.commands.inc({ command: v, outcome: r.ok ? 'ok' : r.timedOut ? 'timeout' : 'failed' });
    if (r.ok) {
      this.#m.announced.set(v === 'up' ? 1 : 0);
      this.#log.info({ command: v, durationMs: r.durationMs }, v === 'up' ? 'route announced' : 'route withdrawn');
    }
    return r;
  }
}
