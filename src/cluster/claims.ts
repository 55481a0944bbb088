/**
 * Claims: the backend of a new flow is chosen by its primary, even when the node about to serve
 * it cannot reach that primary (docs/design.md §3.5).
 *
 * A node serves a flow that it does not own as primary when the primary failed it (a forward that
 * got no answer) or when the primary cannot be reached from here but a witness still hears it
 * (membership.ts: such a primary is suspect, not dead, in every view). If the flow already has a
 * backend that is the failover of the routing rule and needs nothing. If it has none, the primary
 * may be choosing one at this very moment — for the same flow arriving at another node — and a
 * second choice here would give the flow two backends. So the serving node first asks the
 * primary: a CLAIM goes to it over the control link, or, when that link is down, to a witness
 * that relays it once. The primary answers with its entry, choosing the backend if the flow has
 * none (the same choice it makes for a request it serves); the answer comes back the same way and
 * is merged before the flow is served here with that backend. A claim whose link goes silent or
 * whose relay dies meanwhile is asked again through another witness. No answer within the failure
 * timeout, no witness left, a relay that cannot reach the primary, or a primary declared dead
 * meanwhile: the node decides as before. One claim per flow is in flight at a time; datagrams and
 * requests of the flow that arrive meanwhile wait for the same answer.
 *
 *   CLAIM       = u32 id, str origin, str target, str service, str key
 *   CLAIM_REPLY = u32 id, str origin, u8 answered (0 | 1), then, if 1, an entry batch of one entry
 *
 * A peer that never sent a view (peer-view.ts) runs an older version without these frames; it is
 * neither asked nor used as a relay.
 */
import { ByteReader, ByteWriter, FrameType, malformed } from './frame.js';
import { EntryBatchEncoder, MAX_KEY_BYTES, MAX_NAME_BYTES, decodeEntryBatch } from './entry-codec.js';
import type { FlowEntry } from './flow-entry.js';
import type { PeerState } from './cluster-options.js';

export interface ClaimsDeps {
  readonly selfId: string;
  /** Queue a control frame to a peer; false when there is no link. */
  send(peer: string, frame: Buffer): boolean;
  /**
   * The next hop toward `target`: the target itself while its control link is up, else a peer
   * that hears it (a witness); null when there is neither. Only peers that speak these frames.
   */
  via(target: string): string | null;
  /** Whether the control link to `peer` is up and the peer speaks these frames. */
  direct(peer: string): boolean;
  state(id: string): PeerState;
  get(service: string, key: string): FlowEntry | undefined;
  /**
   * On the primary: the flow's entry with its backend, chosen now if it has none and this node
   * owns it; null when this node does not decide for the flow.
   */
  answer(service: string, key: string): FlowEntry | null;
  /** Store an entry that came in an answer (clock observed, merged by version). */
  accept(entry: FlowEntry): void;
  readonly timeoutMs: number;
  /** Counted by outcome: answered | unanswered | timeout | relayed | refused. */
  count?(outcome: ClaimOutcome): void;
}

export type ClaimOutcome = 'asked' | 'answered' | 'unanswered' | 'timeout' | 'relayed' | 'served';

interface Pending {
  readonly id: number;
  readonly flow: string;
  readonly service: string;
  readonly key: string;
  readonly target: string;
  /** Where the claim went: the target, or the witness relaying it. */
  hop: string;
  readonly done: Promise<void>;
  settle: () => void;
  timer: NodeJS.Timeout | null;
}

export class FlowClaims {
  readonly #d: ClaimsDeps;
  readonly #byId = new Map<number, Pending>();
  readonly #byFlow = new Map<string, Pending>();
  #seq = 0;

  constructor(deps: ClaimsDeps) {
    this.#d = deps;
  }

  /** Claims in flight (tests, diagnostics). */
  get inflight(): number {
    return this.#byId.size;
  }

  /**
   * Before this node serves `entry` locally: null when it may serve now (the flow has a backend,
   * this node is its primary, the primary is dead, or there is no way to ask it); otherwise a
   * promise that settles once the primary answered (its entry merged) or could not.
   */
  before(entry: FlowEntry): Promise<void> | null {
    const d = this.#d;
    // The common case — this node is the primary, or the flow has its backend — costs no lookup.
    if (entry.primary === d.selfId || entry.backend !== null) return null;
    const current = d.get(entry.service, entry.key) ?? entry;
    if (current.backend !== null) return null;
    const target = current.primary;
    if (target === d.selfId || d.state(target) === 'dead') return null;
    const flow = `${entry.service}\0${entry.key}`;
    const open = this.#byFlow.get(flow);
    if (open !== undefined) return open.done;
    const hop = d.via(target);
    if (hop === null) return null;
    const id = (this.#seq = (this.#seq + 1) >>> 0);
    if (!d.send(hop, encodeClaim(id, d.selfId, target, entry.service, entry.key))) return null;
    d.count?.('asked');
    let settle!: () => void;
    const done = new Promise<void>((resolve) => (settle = resolve));
    const p: Pending = { id, flow, service: entry.service, key: entry.key, target, hop, done, settle, timer: null };
    p.timer = setTimeout(() => this.#finish(p, 'timeout'), d.timeoutMs);
    this.#byId.set(id, p);
    this.#byFlow.set(flow, p);
    return done;
  }

  /**
   * A peer was declared dead: claims for it are settled now (the caller decides); claims relayed
   * through it go to another witness, or are settled when there is none.
   */
  peerDead(id: string): void {
    for (const p of [...this.#byId.values()]) {
      if (p.target === id) this.#finish(p, 'unanswered');
      else if (p.hop === id) this.#reroute(p);
    }
  }

  /**
   * The control link to a peer went silent and was closed (the peer may still be witnessed): a
   * claim that went over it, to that peer or relayed through it, will not come back that way, so
   * it is asked again through a witness, or settled when there is none. This is the one-way cut
   * that begins while a claim is in flight.
   */
  peerUnreachable(id: string): void {
    for (const p of [...this.#byId.values()]) if (p.hop === id) this.#reroute(p);
  }

  /** Settles everything (the node is closing). */
  close(): void {
    for (const p of [...this.#byId.values()]) this.#finish(p, 'unanswered');
  }

  /** A CLAIM from `from`. Throws FRAME_MALFORMED on bad bytes (the link is dropped). */
  onClaim(from: string, payload: Buffer): void {
    const c = decodeClaim(payload);
    const d = this.#d;
    if (c.target === d.selfId) {
      d.count?.('served');
      d.send(from, encodeReply(c.id, c.origin, d.answer(c.service, c.key)));
      return;
    }
    // A relay, once: only a claim that comes straight from its origin is passed on.
    if (from === c.origin && d.direct(c.target) && d.send(c.target, encodeClaim(c.id, c.origin, c.target, c.service, c.key))) {
      d.count?.('relayed');
      return;
    }
    d.send(from, encodeReply(c.id, c.origin, null));
  }

  /** A CLAIM_REPLY from `from`. Throws FRAME_MALFORMED on bad bytes. */
  onReply(from: string, payload: Buffer): void {
    const r = decodeReply(payload);
    const d = this.#d;
    if (r.origin !== d.selfId) {
      // Relayed back toward the origin; a reply that comes back to a relay goes on once.
      if (from !== r.origin && d.direct(r.origin)) d.send(r.origin, encodeReply(r.id, r.origin, r.entry));
      return;
    }
    const p = this.#byId.get(r.id);
    if (p === undefined) return; // timed out meanwhile
    if (r.entry !== null) d.accept(r.entry);
    this.#finish(p, r.entry !== null ? 'answered' : 'unanswered');
  }

  /** The claim again, through the next hop there is now; settled when there is none. */
  #reroute(p: Pending): void {
    const d = this.#d;
    const lost = p.hop;
    const hop = d.via(p.target);
    if (hop === null || hop === lost || !d.send(hop, encodeClaim(p.id, d.selfId, p.target, p.service, p.key))) return this.#finish(p, 'unanswered');
    p.hop = hop;
  }

  #finish(p: Pending, outcome: ClaimOutcome): void {
    if (this.#byId.get(p.id) !== p) return;
    this.#byId.delete(p.id);
    if (this.#byFlow.get(p.flow) === p) this.#byFlow.delete(p.flow);
    if (p.timer !== null) clearTimeout(p.timer);
    p.timer = null;
    this.#d.count?.(outcome);
    p.settle();
  }
}

export function encodeClaim(id: number, origin: string, target: string, service: string, key: string): Buffer {
  const w = ByteWriter.frame(FrameType.CLAIM, 32 + service.length + key.length * 3);
  w.u32(id);
  w.str(origin);
  w.str(target);
  w.str(service);
  w.str(key);
  return w.finish();
}

export function decodeClaim(payload: Buffer): { id: number; origin: string; target: string; service: string; key: string } {
  const r = new ByteReader(payload);
  const id = r.u32('claim id');
  const origin = r.str(MAX_NAME_BYTES, 'claim origin');
  const target = r.str(MAX_NAME_BYTES, 'claim target');
  const service = r.str(MAX_NAME_BYTES, 'claim service');
  const key = r.str(MAX_KEY_BYTES, 'claim key');
  r.end('claim');
  return { id, origin, target, service, key };
}

export function encodeReply(id: number, origin: string, entry: FlowEntry | null): Buffer {
  const w = ByteWriter.frame(FrameType.CLAIM_REPLY, 96);
  w.u32(id);
  w.str(origin);
  w.u8(entry === null ? 0 : 1);
  if (entry !== null) {
    const enc = new EntryBatchEncoder(w);
    enc.add(entry);
    enc.finish();
  }
  return w.finish();
}

export function decodeReply(payload: Buffer): { id: number; origin: string; entry: FlowEntry | null } {
  const r = new ByteReader(payload);
  const id = r.u32('claim id');
  const origin = r.str(MAX_NAME_BYTES, 'claim origin');
  const answered = r.u8('claim answered');
  let entry: FlowEntry | null = null;
  if (answered === 1) {
    const entries = decodeEntryBatch(r);
    if (entries.length !== 1) throw malformed(`a claim reply carries one entry, got ${entries.length}`);
    entry = entries[0];
  } else if (answered !== 0) throw malformed(`claim answered flag ${answered}`);
  r.end('claim reply');
  return { id, origin, entry };
}
