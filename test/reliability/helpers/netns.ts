/**
 * Separate hosts for the partition test: one network namespace per node and one for the clients
 * and backends, each with its own address on a bridge that lives in a namespace of its own
 * (10.213.0.0/24; nothing is added to the root namespace, so no packet leaves the namespaces).
 * Cutting a node off is `ip link set … down` on its bridge port: both directions go silent, as
 * when a cable is pulled (no RST, no ICMP), which is harder than a killed process on loopback.
 *
 * Needs root and iproute2. Everything is named after the test process id, so runs never clash
 * and a crashed run's leftovers are recognised and removed by the next one.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';

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
  let list = '';
  try {
    list = ip(['netns', 'list']);
  } catch {
    return;
  }
  for (const line of list.split('\n')) {
    const m = /^(tdm(\d+)-\w+)/.exec(line.trim());
    if (!m) continue;
    const pid = Number(m[2]);
    let alive = false;
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

export function createTopology(nodes: number): Topology {
  removeStale();
  const prefix = `tdm${process.pid}`;
  const short = `t${process.pid % 100000}`; // interface names: at most 15 characters
  const sw = `${prefix}-sw`;
  const topo: Topology = {
    prefix,
    sw,
    nodeNs: Array.from({ length: nodes }, (_, i) => `${prefix}-n${i + 1}`),
    nodeHosts: Array.from({ length: nodes }, (_, i) => `${SUBNET}.${11 + i}`),
    clientNs: `${prefix}-cl`,
    clientHost: `${SUBNET}.100`,
    ports: Array.from({ length: nodes }, (_, i) => `${short}s${i + 1}`),
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
    topo.nodeNs.forEach((ns, i) => attach(ns, `${short}n${i + 1}`, topo.ports[i], topo.nodeHosts[i]));
    attach(topo.clientNs, `${short}nc`, `${short}sc`, topo.clientHost);
  } catch (err) {
    destroyTopology(topo);
    throw err;
  }
  return topo;
}

/** Deleting a namespace destroys its veth ends and with them their peers on the bridge. */
export function destroyTopology(topo: Topology): void {
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
