/**
 * The member set of one node: the nodes its config file lists, itself, and the nodes found in etcd
 * (docs/operations.md, "Membership through etcd"). Pure: the caller feeds it what etcd says and
 * which peers its heartbeats judge dead, and reads the members and which of them may own new
 * flows.
 *
 * Rules (decisions; the heartbeats stay the judge of who is alive, etcd never is):
 *   - A node is a member while the file lists it or etcd holds its record. When it leaves both, it
 *     stays a member until this node sees it dead (the usual death handling, re-protection, runs
 *     first), and is dropped then: a node whose lease merely expired (its etcd session broke, or
 *     etcd itself was away) but which still answers heartbeats keeps its place and its flows.
 *   - The file wins over etcd for a node both name (the operator's file is the authority for what
 *     it lists); self is what this process was started with.
 *   - Ranking: a member may own new flows unless its etcd record says `joining` (still syncing its
 *     table) or `leaving` (draining on SIGTERM). A node etcd never heard of (file only) is judged
 *     by heartbeats alone. The last phase seen stays in force after the record is gone.
 */
import type { MemberPhase, MemberRecord } from './records.js';

/** The fields of a node the cluster needs (NodeConfig in src/config/schema.ts has them all). */
export interface MemberNode {
  readonly id: string;
  readonly host: string;
  readonly peerPort: number;
  readonly adminPort: number;
  readonly weight: number;
}

export type MemberSource = 'self' | 'file' | 'etcd' | 'file+etcd' | 'departed';

export interface MemberInfo {
  readonly source: MemberSource;
  /** The phase of its etcd record (or the last one seen); null when etcd never had one. */
  readonly phase: MemberPhase | null;
}

export interface MemberSetOptions {
  /** Sort members by id (numeric-aware), so that every node lists them alike. Default: file order. */
  readonly sorted?: boolean;
}

interface Departed {
  readonly node: MemberNode;
  readonly phase: MemberPhase | null;
}

const collator = new Intl.Collator('en', { numeric: true });

export class MemberSet {
  readonly #self: MemberNode;
  readonly #sorted: boolean;
  #file = new Map<string, MemberNode>();
  #etcd = new Map<string, MemberRecord>();
  readonly #departed = new Map<string, Departed>();
  #nodes: readonly MemberNode[] = [];
  /** Ids of file nodes whose etcd record disagrees on the address (warned once per change). */
  #conflicts: string[] = [];

  #fileOrder: string[];

  constructor(self: MemberNode, file: readonly MemberNode[], opts: MemberSetOptions = {}) {
    this.#self = self;
    this.#sorted = opts.sorted ?? false;
    this.#file = new Map(file.filter((n) => n.id !== self.id).map((n) => [n.id, n]));
    this.#fileOrder = file.map((n) => n.id);
    this.#rebuild();
  }

  /** The members, self included: a new array whenever the set changed, the same one otherwise. */
  nodes(): readonly MemberNode[] {
    return this.#nodes;
  }

  has(id: string): boolean {
    return id === this.#self.id || this.#file.has(id) || this.#etcd.has(id) || this.#departed.has(id);
  }

  /** File nodes whose etcd record names another address (the file's is used). */
  get conflicts(): readonly string[] {
    return this.#conflicts;
  }

  /** A reload changed the file's nodes. Returns whether the member list changed. */
  setFile(file: readonly MemberNode[], isDead: (id: string) => boolean): boolean {
    const before = this.#nodes;
    const gone = [...this.#file.keys()].filter((id) => !file.some((n) => n.id === id));
    this.#file = new Map(file.filter((n) => n.id !== this.#self.id).map((n) => [n.id, n]));
    this.#fileOrder = file.map((n) => n.id);
    for (const id of gone) this.#depart(id, before, this.#etcd.get(id)?.phase ?? null, isDead);
    this.#rebuild();
    return this.#nodes !== before;
  }

  /** What etcd holds now (the whole members/ range). Returns whether the member list changed. */
  setDiscovered(records: ReadonlyMap<string, MemberRecord>, isDead: (id: string) => boolean): boolean {
    const before = this.#nodes;
    const gone = [...this.#etcd.values()].filter((r) => !records.has(r.id));
    this.#etcd = new Map([...records].filter(([id]) => id !== this.#self.id));
    for (const r of gone) this.#depart(r.id, before, r.phase, isDead);
    this.#rebuild();
    return this.#nodes !== before;
  }

  /** This node's heartbeats judge the peer dead: a departed member is dropped now. */
  peerDead(id: string): boolean {
    if (!this.#departed.delete(id)) return false;
    const before = this.#nodes;
    this.#rebuild();
    return this.#nodes !== before;
  }

  /** May own new flows (be ranked for a new flow, or be picked as a new owner by re-protection). */
  eligible(id: string): boolean {
    if (id === this.#self.id) return true;
    const phase = this.#etcd.get(id)?.phase ?? this.#departed.get(id)?.phase ?? null;
    return phase === null || phase === 'serving';
  }

  info(id: string): MemberInfo | null {
    if (id === this.#self.id) return { source: 'self', phase: null };
    const rec = this.#etcd.get(id);
    if (this.#file.has(id)) return { source: rec ? 'file+etcd' : 'file', phase: rec?.phase ?? null };
    if (rec) return { source: 'etcd', phase: rec.phase };
    const d = this.#departed.get(id);
    return d ? { source: 'departed', phase: d.phase } : null;
  }

  /** `id` left one source; if it is in none any more and still alive, it stays as departed. */
  #depart(id: string, before: readonly MemberNode[], phase: MemberPhase | null, isDead: (id: string) => boolean): void {
    if (this.#file.has(id) || this.#etcd.has(id) || id === this.#self.id) return;
    const node = before.find((n) => n.id === id);
    if (node === undefined || isDead(id)) return;
    this.#departed.set(id, { node, phase });
  }

  #rebuild(): void {
    for (const id of this.#departed.keys()) if (this.#file.has(id) || this.#etcd.has(id)) this.#departed.delete(id);
    const conflicts: string[] = [];
    const byId = new Map<string, MemberNode>();
    for (const d of this.#departed.values()) byId.set(d.node.id, d.node);
    for (const [id, r] of this.#etcd) byId.set(id, { id, host: r.host, peerPort: r.peerPort, adminPort: r.adminPort, weight: r.weight });
    for (const [id, n] of this.#file) {
      const r = this.#etcd.get(id);
      if (r !== undefined && (r.host !== n.host || r.peerPort !== n.peerPort || r.adminPort !== n.adminPort)) conflicts.push(id);
      byId.set(id, n);
    }
    byId.set(this.#self.id, this.#self);
    let ids = [...byId.keys()];
    if (this.#sorted) ids.sort(collator.compare);
    else {
      // File order first (self where the file lists it), then the others by id.
      const rank = new Map(this.#fileOrder.map((id, i) => [id, i]));
      ids = ids.sort((a, b) => (rank.get(a) ?? Infinity) - (rank.get(b) ?? Infinity) || collator.compare(a, b));
    }
    const next = ids.map((id) => byId.get(id)!);
    this.#conflicts = conflicts;
    if (!sameNodes(next, this.#nodes)) this.#nodes = Object.freeze(next);
  }
}

function sameNodes(a: readonly MemberNode[], b: readonly MemberNode[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x.id !== y.id || x.host !== y.host || x.peerPort !== y.peerPort || x.adminPort !== y.adminPort || x.weight !== y.weight) return false;
  }
  return true;
}
