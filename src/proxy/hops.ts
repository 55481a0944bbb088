/**
 * The one forwarding loop of every protocol (docs/design.md §1, the routing rule, steps 3-6): given
 * a flow's entry, try its owners in the order `router.hops()` gives, skip a node already tried,
 * tell membership when a peer did not answer, cut an attempt short when its peer is declared dead
 * or its link goes silent, ask a new flow's primary for its backend before serving it here (a claim),
 * and re-own the flow once when no owner could take it. A communication forwarded in by a peer is
 * served here and never forwarded again (`hops(entry, true)` is `[LOCAL]`, and it is never re-owned).
 *
 * Each protocol supplies only `attempt(a)`: move the communication to one hop and say what
 * happened as an `AttemptResult`. The rules that decide whether another hop may be tried (HTTP's
 * "nothing sent, or idempotent and replayable"; TCP's "the owner answered a status byte") live in
 * the attempt, which answers `next: false` when the communication must not be sent again.
 *
 * Modelled on undici's `PoolBase[kDispatch]` loop over the candidates that `BalancedPool` yields,
 * and Caddy's `proxyLoopIteration` with its single `tryAgain` rule (reverseproxy.go).
 */
import type { FlowEntry } from '../cluster/flow-entry.js';
import type { FlowRouter, Hop } from '../cluster/router.js';
import type { PeerState } from '../cluster/cluster-options.js';
import { ErrorCodes, TandemError } from '../errors.js';

/**
 * What the loop needs of the cluster: the suspect mark and peer-state changes. The node's
 * DataPlane (context.ts) has them; the loop asks for no more, so it depends on the cluster layer
 * only, not on the proxies' contract.
 */
export interface PeerSignals {
  markSuspect(id: string): void;
  on?(event: 'peer-state', listener: (id: string, state: PeerState, prev: PeerState) => void): unknown;
  off?(event: 'peer-state', listener: (id: string, state: PeerState, prev: PeerState) => void): unknown;
  on?(event: 'peer-unreachable', listener: (id: string) => void): unknown;
  off?(event: 'peer-unreachable', listener: (id: string) => void): unknown;
}

/**
 * What the loop asks before it serves a flow here (src/cluster/claims.ts): null to serve now, or a
 * wait for the flow's primary to say which backend it has.
 */
export interface ClaimGate {
  before(entry: FlowEntry): Promise<void> | null;
}

/** How a communication reached the node that served it; a metrics label shared by all protocols. */
export type HopKind = 'local' | 'to-primary' | 'to-backup' | 'reowned';

/** One try of one hop, handed to the protocol's `attempt`. */
export interface Attempt {
  readonly hop: Hop;
  /** The node tried: this node's id for a local hop. */
  readonly node: string;
  readonly kind: HopKind;
  /** The entry as the loop knows it (after a re-own, the new owners). */
  readonly entry: FlowEntry;
  /** 0 for the first hop tried, 1 for the first failover, … */
  readonly index: number;
  /**
   * Set by the protocol while a peer attempt is in flight: called when membership declares the
   * peer dead, so that the attempt ends now (and resolves `next`) rather than at its timeout.
   */
  onAbort: ((reason: Error) => void) | null;
}

export type AttemptResult<F extends string> =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly failure: F;
      /** Another owner may be tried: nothing of the communication was consumed that cannot be sent again. */
      readonly next: boolean;
      /** The peer did not answer at all: membership marks it suspect at once. */
      readonly suspect: boolean;
    };

export type LoopResult<F extends string> =
  | { readonly ok: true; readonly kind: HopKind; readonly node: string; readonly entry: FlowEntry; readonly failovers: number }
  | { readonly ok: false; readonly failure: F; readonly entry: FlowEntry; readonly failovers: number };

/** The one `ok: true` result: attempts that succeed allocate nothing. */
export const SERVED: AttemptResult<never> = Object.freeze({ ok: true });

/** A failure after which the next owner is tried. */
export function tryNext<F extends string>(failure: F, suspect: boolean): AttemptResult<F> {
  return { ok: false, failure, next: true, suspect };
}

/** A failure that ends the loop: the communication must not be sent again. */
export function stop<F extends string>(failure: F): AttemptResult<F> {
  return { ok: false, failure, next: false, suspect: false };
}

export type AttemptFn<F extends string> = (a: Attempt) => AttemptResult<F> | Promise<AttemptResult<F>>;

/**
 * One per node, made by the composition root and shared by every proxy: it holds the single
 * peer-state subscription and the attempts in flight per peer, so that a peer declared dead cuts
 * every attempt to it, whatever the protocol.
 */
export class Forwarder {
  readonly #router: FlowRouter;
  readonly #dp: PeerSignals;
  /** Peer attempts in flight, by peer id. */
  readonly #inflight = new Map<string, Set<Attempt>>();
  readonly #claims: ClaimGate | null;
  readonly #onPeerState = (id: string, state: PeerState): void => {
    if (state === 'dead') this.#abort(id, 'declared dead');
  };
  // Silent for the failure timeout but heard by a witness: suspect, not dead, yet nothing sent to
  // it directly will be answered (a one-way cut). Its attempts fail over now, as for a death.
  readonly #onUnreachable = (id: string): void => this.#abort(id, 'unreachable from here');
  #closed = false;

  constructor(router: FlowRouter, dataPlane: PeerSignals, claims: ClaimGate | null = null) {
    this.#router = router;
    this.#dp = dataPlane;
    this.#claims = claims;
    dataPlane.on?.('peer-state', this.#onPeerState);
    dataPlane.on?.('peer-unreachable', this.#onUnreachable);
  }

  #abort(id: string, why: string): void {
    const set = this.#inflight.get(id);
    if (set === undefined || set.size === 0) return;
    const reason = new TandemError(ErrorCodes.PEER_UNAVAILABLE, `peer ${id} ${why}`);
    for (const a of [...set]) a.onAbort?.(reason);
  }

  get selfId(): string {
    return this.#router.selfId;
  }

  /** Peer attempts in flight (for tests and drain). */
  get inflight(): number {
    let n = 0;
    for (const s of this.#inflight.values()) n += s.size;
    return n;
  }

  /**
   * Runs the loop for one communication. `unavailable` is the failure reported when no owner
   * could be tried at all. Never rejects because of a peer: an attempt that throws is a bug of
   * the protocol and rejects the returned promise.
   */
  async run<F extends string>(entry: FlowEntry, fromPeer: boolean, attempt: AttemptFn<F>, unavailable: F): Promise<LoopResult<F>> {
    const router = this.#router;
    const self = router.selfId;
    let hops = router.hops(entry, fromPeer);
    let reowned = false;
    if (hops.length === 0 && !fromPeer) {
      entry = router.reown(entry);
      reowned = true;
      hops = router.hops(entry, false);
    }
    // Nodes tried, in order; a flow has two owners (three after a re-own), so a list beats a Set.
    const tried: string[] = [];
    let failure: F = unavailable;
    for (;;) {
      for (let i = 0; i < hops.length; i++) {
        const hop = hops[i];
        const node = hop.kind === 'local' ? self : hop.id;
        if (tried.includes(node)) continue;
        tried.push(node);
        const kind: HopKind = reowned ? 'reowned' : hop.kind === 'local' ? 'local' : node === entry.primary ? 'to-primary' : 'to-backup';
        if (hop.kind === 'local' && this.#claims !== null) {
          // Only a flow without a backend that this node does not own waits (claims.ts); every
          // other communication goes on synchronously (UDP keeps its datagrams in order).
          const wait = this.#claims.before(entry);
          if (wait !== null) await wait;
        }
        const a: Attempt = { hop, node, kind, entry, index: tried.length - 1, onAbort: null };
        const r = hop.kind === 'local' ? await attempt(a) : await this.#peerAttempt(node, a, attempt);
        if (r.ok) return { ok: true, kind, node, entry, failovers: tried.length - 1 };
        failure = r.failure;
        if (r.suspect && hop.kind === 'peer') this.#dp.markSuspect(node);
        if (!r.next) return { ok: false, failure, entry, failovers: tried.length - 1 };
      }
      // Step 6: no owner could take it. Re-own once, keeping the backend; a forwarded-in
      // communication is served here or not at all.
      if (reowned || fromPeer) return { ok: false, failure, entry, failovers: Math.max(0, tried.length - 1) };
      entry = router.reown(entry, tried);
      reowned = true;
      hops = router.hops(entry, false);
    }
  }

  /** Stops cutting attempts short (the node is closing). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#dp.off?.('peer-state', this.#onPeerState);
    this.#dp.off?.('peer-unreachable', this.#onUnreachable);
    this.#inflight.clear();
  }

  async #peerAttempt<F extends string>(peer: string, a: Attempt, attempt: AttemptFn<F>): Promise<AttemptResult<F>> {
    let set = this.#inflight.get(peer);
    if (set === undefined) this.#inflight.set(peer, (set = new Set()));
    set.add(a);
    try {
      return await attempt(a);
    } finally {
      set.delete(a);
    }
  }
}
