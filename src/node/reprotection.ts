/**
 * When this node re-protects its table (docs/design.md §1 step 7): a peer declared dead (its
 * backups promoted), a dead peer back (flows re-owned while too few nodes were alive get a backup
 * again), a member removed (whatever still names it gets owners from the members), and the
 * hand-over of a node that drains. The rule itself is the router's (reprotectAll); this file
 * decides when, and whom re-protection may keep as an owner.
 */
import type { Logger } from 'pino';
import type { NodeConfig } from '../config/schema.js';
import type { FlowEntry } from '../cluster/flow-entry.js';
import type { FlowRouter } from '../cluster/router.js';
import type { PeerState } from '../proxy/context.js';
import type { EventLog } from './events.js';

export interface ReprotectionDeps {
  readonly selfId: string;
  readonly router: FlowRouter;
  readonly logger: Logger;
  readonly events: EventLog;
  /** The member set in force. */
  nodes(): readonly NodeConfig[];
  stateOf(id: string): PeerState;
  /** May the node own new flows (members.ts: not joining or leaving)? */
  eligible(id: string): boolean;
  /** The node's flow entries (no control entries). */
  flows(): Iterable<FlowEntry>;
}

export class Reprotection {
  readonly #d: ReprotectionDeps;
  /** Peers heard from since this process started (see #notKnownDead). */
  readonly #heard = new Set<string>();

  constructor(deps: ReprotectionDeps) {
    this.#d = deps;
  }

  /** A peer's state changed; `started`: this node serves (a starting node never re-protects). */
  peerState(id: string, state: PeerState, prev: PeerState, started: boolean): void {
    // Only a peer heard from since this process started can be known dead ('suspect' implies
    // heard: it needs a frame within failureTimeoutMs).
    if (state !== 'dead') this.#heard.add(id);
    // A node still starting has a partial view: peers it has not reached yet read 'dead' (never
    // heard from), and its table is whatever snapshots arrived so far. Re-protecting then would
    // strip live peers of their flows, and the result reaches every peer whose full resync starts
    // afterwards (found by the chaos test: tables never converged after a restart). The running
    // nodes have already re-protected whatever really died; this node gets their result.
    if (!started) return;
    const { router, logger, events } = this.#d;
    if (state === 'dead' && prev !== 'dead') {
      const n = router.reprotectAll(this.#d.flows(), this.#notKnownDead()).length;
      logger.warn({ peer: id, reprotected: n }, 'peer dead: flows re-protected');
      events.add('reprotect', `${id} dead: ${n} flows re-protected (backups promoted)`, { peer: id, flows: n });
    } else if (state === 'alive' && prev === 'dead') {
      // Flows re-owned while too few nodes were alive may lack a backup: protect them again now.
      const n = router.reprotectAll(this.#d.flows(), this.#notKnownDead()).length;
      logger.info({ peer: id, reprotected: n }, 'peer alive');
      if (n > 0) events.add('reprotect', `${id} back: ${n} flows given a backup`, { peer: id, flows: n });
    }
  }

  /** Members left the member set; `started` as in peerState(). */
  removed(removed: readonly string[], started: boolean): void {
    for (const id of removed) this.#heard.delete(id);
    if (!started || removed.length === 0) return;
    // Whatever still names a removed node (a view that differed) gets owners from the members.
    const n = this.#d.router.reprotectAll(this.#d.flows(), this.#notKnownDead()).length;
    if (n > 0) this.#d.events.add('reprotect', `${removed.join(', ')} removed: ${n} flows re-protected`, { peers: removed, flows: n });
  }

  /** Re-protect every entry as if this node were dead (among `alive`), and replicate the result. */
  handOver(alive: ReadonlySet<string>): number {
    const self = this.#d.selfId;
    const mine = [...this.#d.flows()].filter((e) => e.primary === self || e.backup === self);
    // reprotectAll replicates what it writes.
    const written = this.#d.router.reprotectAll(mine, alive);
    this.#d.logger.info({ flows: written.length }, 'flows handed over');
    return written.length;
  }

  /**
   * The nodes re-protection may keep as owners: every node except the peers this node saw die.
   * A node ready after a restart may still wait for some peers to redial it (their back-off runs
   * up to reconnectMaxMs): they read 'dead' but are not known dead, and moving their flows away
   * would write a table the rest of the cluster never agrees with (found by the chaos test).
   * Routing still skips them (router.hops): this set only decides whom to strip of flows.
   */
  #notKnownDead(): Set<string> {
    const out = new Set<string>();
    for (const n of this.#d.nodes()) {
      if (n.id === this.#d.selfId) out.add(n.id);
      else if ((!this.#heard.has(n.id) || this.#d.stateOf(n.id) !== 'dead') && this.#d.eligible(n.id)) out.add(n.id);
    }
    return out;
  }
}
