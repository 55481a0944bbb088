/**
 * The node's member set and its link to etcd (docs/operations.md, "Membership through etcd"):
 * the pure MemberSet fed with the file's nodes, what etcd says and what the heartbeats judge, and
 * the pushed config, applied through the node's reload path one revision at a time, with the
 * outcome written back to etcd. Without `cluster.discovery` it is the file's node list and nothing
 * else. Glue only: the rules live in src/cluster/discovery/.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { EtcdConfig, NodeConfig } from '../config/schema.js';
import { EtcdDiscovery, type DiscoveryState } from '../cluster/discovery/etcd-discovery.js';
import { MemberSet, type MemberInfo } from '../cluster/discovery/member-set.js';
import { DiscoveryMetrics } from '../cluster/discovery/metrics.js';
import type { ConfigDoc, ConfigStatus, MemberPhase, MemberRecord } from '../cluster/discovery/records.js';
import type { EventLog } from './events.js';

export interface NodeMembersOptions {
  readonly cluster: string;
  readonly self: NodeConfig;
  readonly fileNodes: readonly NodeConfig[];
  readonly etcd: EtcdConfig | null;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly events: EventLog;
  /** The heartbeats' verdict (unknown ids count as dead). */
  readonly isDead: (id: string) => boolean;
  /** The member list or a member's phase changed. */
  readonly onChange: () => void;
  /**
   * Validate and run these pushed services (null: back to the file's), the same way as a SIGHUP
   * reload. Resolves to the `<path>: <problem>` lines of a refusal, or null when applied.
   */
  readonly applyServices: (services: readonly unknown[] | null) => Promise<readonly string[] | null>;
}

export interface DiscoveryView {
  readonly kind: 'etcd';
  readonly state: DiscoveryState;
  readonly error: string | null;
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly members: number;
}

export type MemberView = MemberInfo & { readonly configRevision: number | null };

export interface ConfigView {
  /** The pushed revision this node runs; null while it runs its file's services. */
  readonly revision: number | null;
  readonly refused: { readonly revision: number; readonly problems: readonly string[] } | null;
}

function tandemVersion(): string {
  try {
    // src/node/ and dist/node/ are both two levels below the package root.
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export class NodeMembers {
  readonly #o: NodeMembersOptions;
  readonly #set: MemberSet;
  readonly #etcd: EtcdDiscovery | null;
  readonly #metrics: DiscoveryMetrics;
  readonly #log: Logger;
  #applied: number | null = null;
  /** The services of the pushed revision in force (undefined: the file's). */
  #appliedServices: readonly unknown[] | undefined = undefined;
  #refused: ConfigView['refused'] = null;
  /** The newest pushed config not applied yet (undefined: nothing waiting). */
  #wanted: ConfigDoc | null | undefined = undefined;
  #applying: Promise<void> | null = null;
  #started = false;
  #phase: MemberPhase = 'joining';

  constructor(o: NodeMembersOptions) {
    this.#o = o;
    this.#log = o.logger.child({ component: 'discovery' });
    this.#metrics = new DiscoveryMetrics(o.registry);
    this.#set = new MemberSet(o.self, o.fileNodes, { sorted: o.etcd !== null });
    const self = o.self;
    const record: MemberRecord = {
      id: self.id,
      cluster: o.cluster,
      host: self.host,
      peerPort: self.peerPort,
      adminPort: self.adminPort,
      weight: self.weight,
      phase: 'joining',
      incarnation: randomBytes(8).toString('hex'),
      startedAt: Date.now(),
      version: tandemVersion(),
    };
    this.#etcd =
      o.etcd === null
        ? null
        : new EtcdDiscovery({
            settings: o.etcd,
            cluster: o.cluster,
            self: record,
            logger: this.#log,
            metrics: this.#metrics,
            onMembers: (records) => this.#onMembers(records),
            onConfig: (doc) => this.#onConfig(doc),
            onStatuses: () => undefined,
            onState: (state, error) => {
              o.events.add('discovery', state === 'degraded' ? `discovery degraded (etcd unreachable: ${error ?? 'no session'})` : `discovery ${state}`, { state, error });
            },
          });
  }

  /** The members, self included (a new array when it changed). */
  nodes(): readonly NodeConfig[] {
    return this.#set.nodes();
  }

  /** May own new flows (not joining or leaving by its etcd record). */
  eligible(id: string): boolean {
    return this.#set.eligible(id);
  }

  info(id: string): MemberView | null {
    const i = this.#set.info(id);
    if (i === null) return null;
    if (id === this.#o.self.id && this.#etcd !== null) return { source: 'self', phase: this.#phase, configRevision: this.#applied };
    const configRevision = id === this.#o.self.id ? this.#applied : (this.#etcd?.statuses().get(id)?.applied ?? null);
    return { ...i, configRevision };
  }

  discovery(): DiscoveryView | null {
    const e = this.#etcd;
    if (e === null || this.#o.etcd === null) return null;
    return { kind: 'etcd', state: e.state, error: e.state === 'connected' ? null : e.lastError, endpoints: this.#o.etcd.endpoints, prefix: e.keys.prefix, members: e.members().size };
  }

  config(): ConfigView {
    return { revision: this.#applied, refused: this.#refused };
  }

  /** The services of the pushed config this node runs (for a SIGHUP reload), or undefined. */
  pushedServices(): readonly unknown[] | undefined {
    return this.#appliedServices;
  }

  /**
   * Connect to etcd and read the members and the pushed config, waiting at most dialTimeoutMs
   * (etcd away: the node starts with its file's nodes and services and joins later); then apply
   * the pushed config (if any) before the node opens its services. Without discovery, nothing.
   */
  async start(): Promise<void> {
    if (this.#etcd === null || this.#o.etcd === null) return;
    const loaded = await this.#etcd.start(this.#o.etcd.dialTimeoutMs);
    if (!loaded) this.#log.warn({ endpoints: this.#o.etcd.endpoints }, 'etcd unreachable at start: starting with the nodes of the config file; joining when etcd is back');
    await this.#drain();
  }

  /** The node is ready and serves: peers may rank it for new flows. */
  serving(): void {
    this.#started = true;
    this.#phase = 'serving';
    void this.#etcd?.setPhase('serving');
    void this.#drain();
  }

  /** SIGTERM: peers stop ranking this node for new flows (best effort, bounded). */
  async leaving(timeoutMs = 500): Promise<void> {
    this.#phase = 'leaving';
    await this.#etcd?.setPhase('leaving', timeoutMs);
  }

  /** Leave etcd: `revoke` deletes this node's keys now (graceful stop). */
  async stop(revoke: boolean): Promise<void> {
    await this.#etcd?.stop(revoke);
  }

  get phase(): MemberPhase {
    return this.#phase;
  }

  /** The heartbeats judged a peer dead (after the node's death handling): drop it if it departed. */
  peerDead(id: string): void {
    if (this.#set.peerDead(id)) {
      this.#log.info({ peer: id }, 'departed member is dead: removed from the member set');
      this.#o.onChange();
    }
  }

  /** A reload changed the file's nodes. */
  setFileNodes(nodes: readonly NodeConfig[]): void {
    if (this.#set.setFile(nodes, this.#o.isDead)) this.#o.onChange();
  }

  #onMembers(records: ReadonlyMap<string, MemberRecord>): void {
    const before = new Map(this.#set.nodes().map((n) => [n.id, this.#set.info(n.id)?.phase ?? null]));
    this.#set.setDiscovered(records, this.#o.isDead);
    for (const id of this.#set.conflicts) this.#log.warn({ peer: id }, 'etcd has another address for a node of the config file; the file wins');
    const after = this.#set.nodes();
    const changed = after.length !== before.size || after.some((n) => !before.has(n.id) || before.get(n.id) !== (this.#set.info(n.id)?.phase ?? null));
    if (changed) this.#o.onChange();
  }

  #onConfig(doc: ConfigDoc | null): void {
    this.#wanted = doc;
    if (this.#started) void this.#drain();
  }

  /** Apply the newest wanted config, one at a time. */
  async #drain(): Promise<void> {
    while (this.#applying !== null) await this.#applying;
    if (this.#wanted === undefined) return;
    const run = async (): Promise<void> => {
      while (this.#wanted !== undefined) {
        const doc = this.#wanted;
        this.#wanted = undefined;
        await this.#apply(doc);
      }
    };
    this.#applying = run().finally(() => (this.#applying = null));
    await this.#applying;
  }

  async #apply(doc: ConfigDoc | null): Promise<void> {
    if (doc === null && this.#applied === null) return;
    const problems = await this.#o.applyServices(doc === null ? null : doc.services).catch((err: Error) => [`(node): ${err.message}`]);
    if (problems === null) {
      this.#applied = doc === null ? null : doc.revision;
      this.#appliedServices = doc === null ? undefined : doc.services;
      this.#refused = null;
      this.#metrics.configRevision.set(this.#applied ?? 0);
      const what = doc === null ? 'pushed config removed: back to the services of the config file' : `pushed config revision ${doc.revision} applied (${doc.services.length} services, pushed by ${doc.by})`;
      this.#log.info({ revision: this.#applied }, what);
      this.#o.events.add('reload', what, { revision: this.#applied });
    } else {
      const revision = doc?.revision ?? 0;
      this.#refused = { revision, problems };
      this.#metrics.configRefusals.inc();
      this.#log.error({ revision, problems }, `pushed config revision ${revision} refused: the running config stays`);
      this.#o.events.add('reload', `pushed config revision ${revision} refused (${problems.length} problems); the running config stays`, { revision, problems });
    }
    this.#report();
  }

  #report(): void {
    const status: ConfigStatus = { node: this.#o.self.id, applied: this.#applied, refused: this.#refused, at: new Date().toISOString() };
    this.#etcd?.reportStatus(status);
  }
}
