/**
 * Separate hosts for the partition test: one network namespace per node and one for the clients
 * and backends, each with its own address on a bridge that lives in a namespace of its own
 * (10.213.0.0/24; nothing is added to the root namespace, so no packet leaves the namespaces).
 * Cutting a node off is `ip link set … down` on its bridge port: both directions go silent, as
 * when a cable is pulled (no RST, no ICMP), which is harder than a killed process on loopback.
 *
 * With `impair: true` each node's link runs through a relay in the switch namespace
 * (impair.py) that can drop, delay, jitter and reorder the frames one node sends another, or
 * drop one direction only: what `tc netem` does, in user space, because kernels without
 * sch_netem (containers, this one) are common. Link-down still works on the bridge port.
 *
 * Needs root and iproute2 (and python3 for `impair`). Everything is named after the test process
 * id, so runs never clash and a crashed run's leftovers are recognised and removed by the next one.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';

const SUBNET = '10.213.0';

export interface Topology {
  readonly prefix: string;
  readonly sw: string;
  /** Namespace of node i (0-based) and its address. */
  readonly nodeNs: readonly string[];
  readonly nodeHosts: readonly string[];
  readonly clientNs: string;
  readonly clientHost: string;
  /** Bridge-side interface of node i (what a partition takes down). */
  readonly ports: readonly string[];
  /** The frame relay of an impaired topology (impair.py), or null. */
  readonly relay: Relay | null;
}

/** One direction of a node-to-node path: what happens to the frames `src` sends to `dst`. */
export interface ImpairRule {
  readonly src: string;
  readonly dst: string;
  /** Probability a frame is dropped (1: the direction is cut). */
  readonly loss?: number;
  readonly delayMs?: number;
  /** Uniform in ±jitterMs around delayMs: reorders frames, as netem's jitter does. */
  readonly jitterMs?: number;
  /** Probability a frame skips the delay (netem's `reorder`). */
  readonly reorder?: number;
}

export interface RelayStats {
  readonly stats: Record<string, { frames: number; dropped: number; delayed: number; ahead: number }>;
  readonly queued: number;
}

const IMPAIR = new URL('./impair.py', import.meta.url).pathname;

export class Relay {
  readonly #child: ChildProcess;
  readonly #lines: string[] = [];
  readonly #waiters: Array<(line: string) => void> = [];

  constructor(child: ChildProcess) {
    this.#child = child;
    createInterface({ input: child.stdout! }).on('line', (l) => {
      const w = this.#waiters.shift();
      if (w) w(l);
      else this.#lines.push(l);
    });
  }

  #next(ms: number): Promise<string> {
    const l = this.#lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('impair relay did not answer')), ms);
      this.#waiters.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
  }

  ready(): Promise<void> {
    return this.#next(20_000).then((l) => {
      if (l !== 'ready') throw new Error(`impair relay: ${l}`);
    });
  }

  /** Replaces every rule (an empty list heals everything). */
  set(rules: readonly ImpairRule[]): void {
    this.#child.stdin!.write(`${JSON.stringify({ rules })}\n`);
  }

  async stats(): Promise<RelayStats> {
    this.#child.stdin!.write(`${JSON.stringify({ stats: true })}\n`);
    return JSON.parse(await this.#next(10_000)) as RelayStats;
  }

  kill(): void {
    if (this.#child.exitCode === null) this.#child.kill('SIGKILL');
  }
}

/** null when an impaired topology can be made here (root, iproute2, python3), else why not. */
export function impairUnavailable(): string | null {
  const why = netnsUnavailable();
  if (why !== null) return why;
  try {
    execFileSync('python3', ['-c', 'import socket; socket.AF_PACKET'], { stdio: 'ignore' });
  } catch {
    return 'python3 with AF_PACKET sockets not available';
  }
  return null;
}

function ip(args: readonly string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** null when namespaces can be made here, else why not. */
export function netnsUnavailable(): string | null {
  if (process.platform !== 'linux') return `platform ${process.platform}`;
  if (process.getuid?.() !== 0) return 'not root';
  const probe = `tdmprobe${process.pid % 100000}`;
  try {
    ip(['netns', 'add', probe]);
  } catch (err) {
    return `ip netns add failed: ${(err as Error).message.split('\n')[0]}`;
  }
  try {
    ip(['netns', 'del', probe]);
  } catch {
    /* best effort */
  }
  return null;
}

/** Namespaces left by earlier runs whose process is gone (a crash or a kill -9 of the runner). */
function removeStale(): void {
  let list: string;
  try {
    list = ip(['netns', 'list']);
  } catch {
    return;
  }
  for (const line of list.split('\n')) {
    const m = /^(tdm(\d+)-\w+)/.exec(line.trim());
    if (!m) continue;
    const pid = Number(m[2]);
    let alive: boolean;
    try {
      process.kill(pid, 0);
      alive = true;
    } catch {
      alive = false;
    }
    if (!alive || pid === process.pid) {
      try {
        ip(['netns', 'del', m[1]]);
      } catch {
        /* already gone */
      }
    }
  }
}

export async function createTopology(nodes: number, opts: { impair?: boolean; logFile?: string } = {}): Promise<Topology> {
  removeStale();
  const prefix = `tdm${process.pid}`;
  const short = `t${process.pid % 100000}`; // interface names: at most 15 characters
  const sw = `${prefix}-sw`;
  const impair = opts.impair === true;
  const topo: Topology & { relay: Relay | null } = {
    prefix,
    sw,
    nodeNs: Array.from({ length: nodes }, (_, i) => `${prefix}-n${i + 1}`),
    nodeHosts: Array.from({ length: nodes }, (_, i) => `${SUBNET}.${11 + i}`),
    clientNs: `${prefix}-cl`,
    clientHost: `${SUBNET}.100`,
    // With a relay, the bridge port of node i is the far end of its second veth pair.
    ports: Array.from({ length: nodes }, (_, i) => (impair ? `${short}b${i + 1}` : `${short}s${i + 1}`)),
    relay: null,
  };
  try {
    ip(['netns', 'add', sw]);
    ip(['-n', sw, 'link', 'set', 'lo', 'up']);
    ip(['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', sw, 'link', 'set', 'br0', 'up']);
    const attach = (ns: string, inner: string, outer: string, addr: string): void => {
      ip(['netns', 'add', ns]);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      // Both ends are created straight inside their namespaces: nothing appears in the root one.
      ip(['-n', ns, 'link', 'add', inner, 'type', 'veth', 'peer', 'name', outer, 'netns', sw]);
      ip(['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', inner]);
      ip(['-n', ns, 'link', 'set', inner, 'up']);
      ip(['-n', sw, 'link', 'set', outer, 'master', 'br0']);
      ip(['-n', sw, 'link', 'set', outer, 'up']);
    };
    // Impaired: node ↔ (veth) ↔ relay ↔ (veth) ↔ bridge. The relay copies frames between the
    // node's outer end and the bridge pair's inner end.
    const viaRelay = (ns: string, i: number): void => {
      const inner = `${short}n${i + 1}`;
      const outer = `${short}s${i + 1}`;
      ip(['netns', 'add', ns]);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', ns, 'link', 'add', inner, 'type', 'veth', 'peer', 'name', outer, 'netns', sw]);
      ip(['-n', ns, 'addr', 'add', `${topo.nodeHosts[i]}/24`, 'dev', inner]);
      ip(['-n', ns, 'link', 'set', inner, 'up']);
      ip(['-n', sw, 'link', 'set', outer, 'up']);
      ip(['-n', sw, 'link', 'add', `${short}p${i + 1}`, 'type', 'veth', 'peer', 'name', topo.ports[i]]);
      ip(['-n', sw, 'link', 'set', topo.ports[i], 'master', 'br0']);
      ip(['-n', sw, 'link', 'set', topo.ports[i], 'up']);
      ip(['-n', sw, 'link', 'set', `${short}p${i + 1}`, 'up']);
      offloadOff(ns, inner);
    };
    if (impair) topo.nodeNs.forEach((ns, i) => viaRelay(ns, i));
    else topo.nodeNs.forEach((ns, i) => attach(ns, `${short}n${i + 1}`, topo.ports[i], topo.nodeHosts[i]));
    attach(topo.clientNs, `${short}nc`, `${short}sc`, topo.clientHost);
    if (impair) {
      offloadOff(topo.clientNs, `${short}nc`);
      const pairs = topo.nodeNs.map((_, i) => `${short}s${i + 1}:${short}p${i + 1}`).join(',');
      const child = spawn('ip', ['netns', 'exec', sw, 'python3', '-u', IMPAIR, 'relay', pairs], { stdio: ['pipe', 'pipe', 'pipe'] });
      if (opts.logFile !== undefined) child.stderr?.pipe(createWriteStream(opts.logFile, { flags: 'a' }));
      topo.relay = new Relay(child);
      await topo.relay.ready();
    }
  } catch (err) {
    destroyTopology(topo);
    throw err;
  }
  return topo;
}

/** Checksums and segmentation done in software on a veth end whose frames the relay copies. */
function offloadOff(ns: string, iface: string): void {
  execFileSync('ip', ['netns', 'exec', ns, 'python3', IMPAIR, 'offload-off', iface], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Deleting a namespace destroys its veth ends and with them their peers on the bridge. */
export function destroyTopology(topo: Topology): void {
  topo.relay?.kill();
  for (const ns of [...topo.nodeNs, topo.clientNs, topo.sw]) {
    try {
      ip(['netns', 'del', ns]);
    } catch {
      /* not created or already gone */
    }
  }
}

/** Cut node i off (its bridge port down) or reconnect it. */
export function setLink(topo: Topology, i: number, up: boolean): void {
  ip(['-n', topo.sw, 'link', 'set', topo.ports[i], up ? 'up' : 'down']);
}

/** Spawns a command inside a namespace (`ip netns exec` execs it: the pid is the command's). */
export function spawnIn(ns: string, argv: readonly string[], logFile: string, ipc = false): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe', ...(ipc ? (['ipc'] as const) : [])] });
  const log = createWriteStream(logFile, { flags: 'a' });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  return child;
}

