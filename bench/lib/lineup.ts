// The proxies under test, started for a scenario and stopped after it: HAProxy, NGINX, the naive
// Node proxy and the tandem cluster. The shared backend is not part of it (it runs all along).
//
// By default every scenario gets fresh processes, so that a scenario's figures do not depend on
// which scenarios ran before it. They did: right after the new-connection HTTP scenario a tandem
// node spent 1.3-2x the CPU per MB in TCP bulk (a full mark-compact every ~300 ms where a fresh
// node only scavenged the garbage of its one Buffer per read), while HAProxy's cost per MB did not
// move (bench/README.md, "Scenarios are independent"). --no-restart keeps one set for the whole run.
import type { Started } from './contenders.js';
import { startHaproxy, startNaive, startNginxPeer } from './contenders.js';
import { startTandem, tandemUnavailable, type TandemHandle } from './tandem.js';
import { stopProc } from './procs.js';
import type { ToolSet } from './tools.js';
import type { Scenario } from './scenarios.js';
import type { ContenderId } from './types.js';

export interface LineupOptions {
  dir: string;
  tools: ToolSet;
  /** The contender Node's binary. */
  node: string;
  /** --contenders: start only what these need. */
  contenders: readonly ContenderId[] | null;
  log: (s: string) => void;
}

const notNeeded: Started = { ok: false, reason: 'not needed', procs: [] };

export class Lineup {
  readonly #o: LineupOptions;
  haproxy: Started = notNeeded;
  nginx: Started = notNeeded;
  naive: Started = notNeeded;
  tandem: TandemHandle = tandemUnavailable('not started (no network scenario selected)');
  constructor(o: LineupOptions) {
    this.#o = o;
  }

  #wants(id: ContenderId): boolean {
    return !this.#o.contenders || this.#o.contenders.includes(id);
  }

  /** Starts what the scenarios need; tandem under --cpu-prof when profileDir is given. */
  async start(scenarios: readonly Scenario[], profileDir?: string): Promise<void> {
    const { dir, tools, log } = this.#o;
    const needs = new Set(scenarios.flatMap((s) => s.needs));
    const wantsHaproxy = needs.has('haproxy') && (this.#wants('haproxy') || this.#wants('haproxy2'));
    const wantsNaive = scenarios.some((s) => s.id.startsWith('http')) && this.#wants('naive');
    const [haproxy, nginx, naive] = await Promise.all([
      wantsHaproxy ? startHaproxy(dir, tools) : notNeeded,
      this.#wants('nginx') ? startNginxPeer(dir, tools) : notNeeded,
      wantsNaive ? startNaive(dir, this.#o.node) : notNeeded,
    ]);
    Object.assign(this, { haproxy, nginx, naive });
    if (wantsHaproxy && !haproxy.ok) log(`bench: HAProxy unavailable: ${haproxy.reason}`);
    if (this.#wants('nginx') && !nginx.ok) log(`bench: NGINX unavailable: ${nginx.reason}`);
    if (wantsNaive && !naive.ok) log(`bench: naive Node proxy unavailable: ${naive.reason}`);
    if (this.#wants('tandem1') || this.#wants('tandem2')) await this.startTandem(profileDir);
  }

  async startTandem(profileDir?: string): Promise<void> {
    await this.stopTandem();
    this.tandem = await startTandem(this.#o.dir, 20_000, { node: this.#o.node, profileDir });
    const t = this.tandem;
    this.#o.log(t.status === 'ok' ? `bench: tandem cluster ready${profileDir ? ' (under --cpu-prof)' : ''}` : `bench: tandem unavailable: ${t.reason}`);
  }

  /** Graceful: SIGTERM drains a node, and a node under --cpu-prof writes its profile as it exits. */
  async stopTandem(): Promise<void> {
    await Promise.all(this.tandem.procs.map((p) => stopProc(p, 30_000)));
  }

  async stop(): Promise<void> {
    await Promise.all([this.stopTandem(), ...[this.haproxy, this.nginx, this.naive].flatMap((s) => s.procs).map((p) => stopProc(p))]);
  }
}
