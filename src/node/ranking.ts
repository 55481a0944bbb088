/**
 * Who owns a flow, as this node ranks it (docs/design.md §2): weighted rendezvous over the member
 * set, and over the candidates — this node and the members not seen dead that may own new flows.
 * The candidate list is recomputed when membership or a peer's state changes, never per flow.
 */
import type { NodeConfig } from '../config/schema.js';
import { Rendezvous, type NodeScore, type RendezvousNode } from '../cluster/rendezvous.js';

export class NodeRanking {
  readonly #rendezvous: Rendezvous;
  #rankNodes: RendezvousNode[];
  #candidates: string[] = [];
  #candidateNodes: RendezvousNode[] = [];

  constructor(secret: string, nodes: readonly NodeConfig[]) {
    this.#rendezvous = new Rendezvous(secret);
    this.#rankNodes = nodes.map((n) => ({ id: n.id, weight: n.weight }));
  }

  /** The member set changed (recompute the candidates after). */
  setNodes(nodes: readonly NodeConfig[]): void {
    this.#rankNodes = nodes.map((n) => ({ id: n.id, weight: n.weight }));
  }

  /** The candidates: the nodes of `nodes`, in order, that `candidate` accepts. */
  recompute(nodes: readonly NodeConfig[], candidate: (id: string) => boolean): void {
    const ids: string[] = [];
    for (const n of nodes) if (candidate(n.id)) ids.push(n.id);
    this.#candidates = ids;
    this.#candidateNodes = this.#rankNodes.filter((n) => ids.includes(n.id));
  }

  /** The same array until the next recompute (owners() knows it by identity). */
  get candidates(): readonly string[] {
    return this.#candidates;
  }

  /**
   * The top two of `candidates`: the precomputed candidate list on the hot path; a narrower list
   * (a re-own that leaves out the nodes that just failed) is ranked from the member set.
   */
  owners(key: string, candidates: readonly string[]): { primary: string; backup: string | null } {
    return this.#rendezvous.owners(key, candidates === this.#candidates ? this.#candidateNodes : this.#rankNodes.filter((n) => candidates.includes(n.id)));
  }

  /** Every member ranked for the key, best first. */
  rank(key: string): string[] {
    return this.#rendezvous.rank(key, this.#rankNodes);
  }

  /** Every member's score for the key, best first (for `tandem flow`). */
  scores(key: string): NodeScore[] {
    return this.#rendezvous.scores(key, this.#rankNodes);
  }

  /** Where a new flow for this key would go now. */
  wouldOwn(key: string): { primary: string; backup: string | null } {
    return this.#rendezvous.owners(key, this.#candidateNodes);
  }
}
