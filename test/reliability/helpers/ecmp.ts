/**
 * An ECMP tier in network namespaces (docs/deploy-ecmp.md, built for real): a client namespace
 * with several client addresses, a router namespace running BIRD 2 that spreads the service
 * address (VIP) over the nodes by equal-cost multipath (L4 hash), node namespaces each with the
 * VIP on its loopback and its own BIRD that exports a static route to the VIP over BGP with BFD,
 * and a backend namespace. Every address is private to these namespaces:
 *
 *   client ns  10.99.1.10-…  ──veth──  10.99.1.1  router ns  10.99.0.1 (br0) ──┬── node i 10.99.0.1i (+ VIP on lo)
 *                                                                              └── backends 10.99.0.100
 *
 * Nothing is added to the root namespace. Needs root, iproute2 and bird2. Everything is named
 * after the test process id; leftovers of a crashed run are removed by the next one.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { netnsUnavailable, spawnIn } from './netns.js';

const run = promisify(execFile);

export const VIP = '10.99.200.1';
const NODE_NET = '10.99.0';
const CLIENT_NET = '10.99.1';
const ROUTER_AS = 65000;
const NODE_AS = 65001;

export interface EcmpTopology {
  readonly prefix: string;
  readonly router: string;
  readonly client: string;
  readonly backend: string;
  readonly nodeNs: readonly string[];
  readonly nodeHosts: readonly string[];
  /** Interface of node i towards the router (what a power cut takes down). */
  readonly nodeIf: readonly string[];
  readonly routerHost: string;
  /** The router's interface towards the clients (where their packets come in). */
  readonly routerClientIf: string;
  readonly clientAddrs: readonly string[];
  readonly backendHost: string;
  readonly vip: string;
}

function ip(args: readonly string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function commandExists(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** null when the harness can run here, else why not. */
export function ecmpUnavailable(): string | null {
  if (process.platform !== 'linux') return `platform ${process.platform}`;
  if (process.getuid?.() !== 0) return 'not root';
  for (const cmd of ['ip', 'bird', 'birdc']) if (!commandExists(cmd)) return `${cmd} not found (apt-get install iproute2 bird2)`;
  return netnsUnavailable();
}

function output(args: readonly string[]): string | null {
  try {
    return ip(args);
  } catch {
    return null;
  }
}

function killNamespace(ns: string): void {
  const pids = output(['netns', 'pids', ns])?.split('\n').filter(Boolean) ?? [];
  for (const p of pids) {
    try {
      process.kill(Number(p), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Namespaces of earlier runs whose test process is gone. */
function removeStale(): void {
  for (const line of (output(['netns', 'list']) ?? '').split('\n')) {
    const m = /^(tde(\d+)-\w+)/.exec(line.trim());
    if (!m) continue;
    if (Number(m[2]) !== process.pid && processAlive(Number(m[2]))) continue;
    killNamespace(m[1]);
    try {
      ip(['netns', 'del', m[1]]);
    } catch {
      /* gone */
    }
  }
}

export function createEcmpTopology(nodes: number, clientAddrs: number): EcmpTopology {
  removeStale();
  const prefix = `tde${process.pid}`;
  const short = `e${process.pid % 100000}`; // interface names: at most 15 characters
  const topo: EcmpTopology = {
    prefix,
    router: `${prefix}-rt`,
    client: `${prefix}-cl`,
    backend: `${prefix}-be`,
    nodeNs: Array.from({ length: nodes }, (_, i) => `${prefix}-n${i + 1}`),
    nodeHosts: Array.from({ length: nodes }, (_, i) => `${NODE_NET}.${11 + i}`),
    nodeIf: Array.from({ length: nodes }, (_, i) => `${short}n${i + 1}`),
    routerHost: `${NODE_NET}.1`,
    routerClientIf: `${short}rc`,
    clientAddrs: Array.from({ length: clientAddrs }, (_, i) => `${CLIENT_NET}.${10 + i}`),
    backendHost: `${NODE_NET}.100`,
    vip: VIP,
  };
  const rt = topo.router;
  try {
    ip(['netns', 'add', rt]);
    ip(['-n', rt, 'link', 'set', 'lo', 'up']);
    ip(['-n', rt, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', rt, 'addr', 'add', `${topo.routerHost}/24`, 'dev', 'br0']);
    ip(['-n', rt, 'link', 'set', 'br0', 'up']);
    // L4 hashing of the 5-tuple. Policy 1 would take a hash already on the packet instead, and
    // across veth pairs that is the sending socket's own txhash: random per connection, changed
    // by the kernel on every retransmission timeout — a connection would hop between nodes under
    // load. On a wire (real NICs) the hash is the NIC's RSS hash of the same 5-tuple and policy 1
    // is right; policy 3 with these fields hashes exactly the 5-tuple from the headers here.
    // fields: 0x01 src ip, 0x02 dst ip, 0x04 protocol, 0x10 src port, 0x20 dst port.
    // Written to /proc/sys directly: no dependency on procps' sysctl.
    ip(['netns', 'exec', rt, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward; echo 0x0037 > /proc/sys/net/ipv4/fib_multipath_hash_fields; echo 3 > /proc/sys/net/ipv4/fib_multipath_hash_policy']);
    // A host on the router's bridge; both veth ends are made straight inside their namespaces.
    const onBridge = (ns: string, inner: string, outer: string, addr: string): void => {
      ip(['netns', 'add', ns]);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', ns, 'link', 'add', inner, 'type', 'veth', 'peer', 'name', outer, 'netns', rt]);
      ip(['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', inner]);
      ip(['-n', ns, 'link', 'set', inner, 'up']);
      ip(['-n', ns, 'route', 'add', 'default', 'via', topo.routerHost]);
      ip(['-n', rt, 'link', 'set', outer, 'master', 'br0']);
      ip(['-n', rt, 'link', 'set', outer, 'up']);
    };
    topo.nodeNs.forEach((ns, i) => {
      onBridge(ns, topo.nodeIf[i], `${short}r${i + 1}`, topo.nodeHosts[i]);
      ip(['-n', ns, 'addr', 'add', `${VIP}/32`, 'dev', 'lo']);
    });
    onBridge(topo.backend, `${short}b`, `${short}rb`, topo.backendHost);
    const cl = topo.client;
    ip(['netns', 'add', cl]);
    ip(['-n', cl, 'link', 'set', 'lo', 'up']);
    ip(['-n', cl, 'link', 'add', `${short}c`, 'type', 'veth', 'peer', 'name', topo.routerClientIf, 'netns', rt]);
    for (const a of topo.clientAddrs) ip(['-n', cl, 'addr', 'add', `${a}/24`, 'dev', `${short}c`]);
    ip(['-n', cl, 'link', 'set', `${short}c`, 'up']);
    ip(['-n', rt, 'addr', 'add', `${CLIENT_NET}.1/24`, 'dev', topo.routerClientIf]);
    ip(['-n', rt, 'link', 'set', topo.routerClientIf, 'up']);
    ip(['-n', cl, 'route', 'add', 'default', 'via', `${CLIENT_NET}.1`]);
  } catch (err) {
    destroyEcmpTopology(topo);
    throw err;
  }
  return topo;
}

export function destroyEcmpTopology(topo: EcmpTopology): void {
  for (const ns of [...topo.nodeNs, topo.client, topo.backend, topo.router]) {
    killNamespace(ns);
    try {
      ip(['netns', 'del', ns]);
    } catch {
      /* not created or already gone */
    }
  }
}

/** Every process in node i's namespace killed -9 (tandem, its watchdog, BIRD). */
export function killNodeNamespace(topo: EcmpTopology, i: number): void {
  killNamespace(topo.nodeNs[i]);
}

/** Node i's only link down: from the router's side it goes silent, as on a power cut. */
export function cutNode(topo: EcmpTopology, i: number): void {
  ip(['-n', topo.nodeNs[i], 'link', 'set', topo.nodeIf[i], 'down']);
}

export function birdSocket(dir: string, name: string): string {
  return join(dir, `bird-${name}.ctl`);
}

// BGP timers short enough for a test: sessions come up within a second or two. BFD every 100 ms,
// down after 5 missed (500 ms): 3 missed (the usual 300 ms) flaps when BIRD itself is starved of
// CPU for a moment on a machine shared by many test runs. For the same reason BIRD runs at a
// higher priority (`nice -n -10`), as routers give BFD theirs; it uses next to no CPU.
const BGP_TIMERS = 'connect delay time 1; connect retry time 1; error wait time 1, 4; hold time 9; keepalive time 3;';
export const BFD_INTERVAL_MS = 100;
export const BFD_MULTIPLIER = 5;
const BIRD = ['nice', '-n', '-10', 'bird', '-f'];
const BFD = `protocol bfd { interface "*" { min rx interval ${BFD_INTERVAL_MS} ms; min tx interval ${BFD_INTERVAL_MS} ms; multiplier ${BFD_MULTIPLIER}; }; }`;

/** The router: BGP with every node, BFD, ECMP of equal routes into the kernel (merge paths). */
export function startRouterBird(topo: EcmpTopology, dir: string): ChildProcess {
  const conf = join(dir, 'bird-router.conf');
  const peers = topo.nodeHosts.map((h, i) => `protocol bgp lb${i + 1} from tier { neighbor ${h} as ${NODE_AS}; }`).join('\n');
  writeFileSync(
    conf,
    `router id ${topo.routerHost};
log stderr { info, remote, warning, error, auth, fatal, bug };
protocol device { scan time 10; }
protocol kernel {
  ipv4 { import none; export all; };
  merge paths on;
}
${BFD}
template bgp tier {
  local ${topo.routerHost} as ${ROUTER_AS};
  bfd on;
  ${BGP_TIMERS}
  ipv4 { import all; export none; };
}
${peers}
`,
  );
  return spawnIn(topo.router, [...BIRD, '-c', conf, '-s', birdSocket(dir, 'router')], join(dir, 'bird-router.log'));
}

/**
 * Node i's speaker: the VIP as a static route (protocol "vip", disabled until the watchdog's `up`
 * enables it), exported to the router over BGP, with BFD.
 */
export function startNodeBird(topo: EcmpTopology, i: number, dir: string, id: string): ChildProcess {
  const conf = join(dir, `bird-${id}.conf`);
  writeFileSync(
    conf,
    `router id ${topo.nodeHosts[i]};
log stderr { info, remote, warning, error, auth, fatal, bug };
protocol device { scan time 10; }
protocol static vip {
  disabled;
  ipv4;
  route ${topo.vip}/32 blackhole;
}
${BFD}
protocol bgp router1 {
  local ${topo.nodeHosts[i]} as ${NODE_AS};
  neighbor ${topo.routerHost} as ${ROUTER_AS};
  bfd on;
  ${BGP_TIMERS}
  ipv4 { import none; export where proto = "vip"; };
}
`,
  );
  return spawnIn(topo.nodeNs[i], [...BIRD, '-c', conf, '-s', birdSocket(dir, id)], join(dir, `bird-${id}.log`));
}

export async function birdc(dir: string, name: string, command: string): Promise<string> {
  const r = await run('birdc', ['-s', birdSocket(dir, name), ...command.split(' ')], { encoding: 'utf8', timeout: 5000 });
  return r.stdout;
}

/** The router's kernel next hops for the VIP, as node addresses (sorted). */
export async function vipNextHops(topo: EcmpTopology): Promise<string[]> {
  const r = await run('ip', ['-n', topo.router, '-j', 'route', 'show', `${topo.vip}/32`], { encoding: 'utf8', timeout: 5000 });
  const routes = JSON.parse(r.stdout || '[]') as Array<{ gateway?: string; nexthops?: Array<{ gateway: string }> }>;
  const hops: string[] = [];
  for (const rt of routes) {
    if (rt.gateway) hops.push(rt.gateway);
    for (const h of rt.nexthops ?? []) hops.push(h.gateway);
  }
  return hops.sort();
}

export interface RouteChange {
  /** Date.now() when the kernel reported the change. */
  readonly at: number;
  readonly hops: readonly string[];
}

/**
 * The router's next hops for the VIP over time, from `ip monitor route` (event-driven: each
 * change is stamped when the kernel reports it, then the route is read back).
 */
export class RouteWatch {
  readonly history: RouteChange[] = [];
  readonly #child: ChildProcess;
  readonly #topo: EcmpTopology;
  #reading: Promise<void> = Promise.resolve();

  constructor(topo: EcmpTopology) {
    this.#topo = topo;
    this.#child = spawn('ip', ['-n', topo.router, 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.#child.stdout?.setEncoding('utf8');
    this.#child.stdout?.on('data', (chunk: string) => {
      if (!chunk.includes(topo.vip)) return;
      const at = Date.now();
      this.#reading = this.#reading.then(() => this.#record(at));
    });
  }

  async #record(at: number): Promise<void> {
    const hops = await vipNextHops(this.#topo).catch(() => null);
    if (!hops) return;
    const last = this.history.at(-1);
    if (last && last.hops.join() === hops.join()) return;
    this.history.push({ at, hops });
  }

  get hops(): readonly string[] {
    return this.history.at(-1)?.hops ?? [];
  }

  /** The first change at or after `since` whose hops satisfy `pred`, waiting up to `ms`. */
  async waitFor(pred: (hops: readonly string[]) => boolean, since: number, ms: number, what: string): Promise<RouteChange> {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = this.history.find((c) => c.at >= since && pred(c.hops));
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what} (router next hops: ${this.hops.join(', ') || 'none'})`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Seed with the current state (the monitor only reports changes). */
  async sync(): Promise<void> {
    await this.#record(Date.now());
  }

  close(): void {
    this.#child.kill('SIGKILL');
  }
}

export interface FlowTuple {
  readonly src: string;
  readonly sport: number;
  readonly dport: number;
  readonly proto: 'tcp' | 'udp';
}

/**
 * The next hop the router's kernel picks for each 5-tuple, from `ip route get … ipproto sport
 * dport iif`: the same multipath hash as forwarding uses (fib_multipath_hash_policy=1), so this is
 * where those packets go — for flows whose ingress node the traffic itself does not tell.
 */
export async function nextHopsFor(topo: EcmpTopology, flows: readonly FlowTuple[]): Promise<string[]> {
  const lines = flows.map((f) => `route get ${topo.vip} from ${f.src} iif ${topo.routerClientIf} ipproto ${f.proto} sport ${f.sport} dport ${f.dport}`).join('\n');
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn('ip', ['-n', topo.router, '-batch', '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let s = '';
    let e = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (s += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (e += d));
    child.on('close', (code) => (code === 0 ? resolve(s) : reject(new Error(`ip route get: ${e}`))));
    child.stdin.end(`${lines}\n`);
  });
  const hops = [...out.matchAll(/ via (\S+) /g)].map((m) => m[1]);
  if (hops.length !== flows.length) throw new Error(`ip route get: ${hops.length} answers for ${flows.length} flows:\n${out.slice(0, 500)}`);
  return hops;
}
