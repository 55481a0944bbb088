/**
 * What each peer hears of the others, and the witness rule built on it (docs/design.md §5,
 * "Witnesses").
 *
 * Every heartbeat carries the sender's view: for each of its peers, how long ago it last heard
 * from it. A node keeps the latest view of each peer and asks it one question: when did *anyone*
 * last hear node X? That is the least of, over every view, the silence it reports for X plus the
 * age of the view. A node is declared dead only when its own silence and that witnessed silence
 * both pass failureTimeoutMs, so in a partial partition (lb1 → lb2 cut, lb3 hears both) lb1 and lb2
 * see each other suspect, not dead, and the three views agree on who owns what. A node that is
 * really gone is heard by nobody: the witnessed silence grows with the node's own, and it is
 * declared dead one view period later at most. The indirect probe of SWIM (Das, Gupta and
 * Motivala, "SWIM: Scalable Weakly-consistent Infection-style Process Group Membership
 * Protocol", 2002, §4.2) asks a witness on demand; here the answer rides on heartbeats that are
 * sent anyway.
 *
 *   view payload = u8 count, then count × (str peer id, u32 ms since heard; 0xffffffff never)
 *
 * The payload rides on HEARTBEAT, whose payload a node of an earlier version ignores, so a
 * rolling upgrade mixes both; a peer that sent a view is known to speak the frames that need one
 * (claims.ts).
 */
import { ByteReader, ByteWriter, FrameType } from './frame.js';

const NEVER = 0xffff_ffff;
/** More peers than any tier has; bounds what a peer can make us store. */
const MAX_VIEW_PEERS = 255;
const MAX_ID_BYTES = 255;

export interface ViewItem {
  readonly id: string;
  /** Milliseconds since the sender last heard from `id`; null if never. */
  readonly silenceMs: number | null;
}

export function encodeViewHeartbeat(items: readonly ViewItem[]): Buffer {
  const w = ByteWriter.frame(FrameType.HEARTBEAT, 16 + items.length * 16);
  const n = Math.min(items.length, MAX_VIEW_PEERS);
  w.u8(n);
  for (let i = 0; i < n; i++) {
    const it = items[i];
    w.str(it.id);
    w.u32(it.silenceMs === null ? NEVER : Math.min(NEVER - 1, Math.max(0, Math.round(it.silenceMs))));
  }
  return w.finish();
}

/** Throws FRAME_MALFORMED on a payload that is not a view; an empty payload (an older peer) is no view: null. */
export function decodeView(payload: Buffer): ViewItem[] | null {
  if (payload.length === 0) return null;
  const r = new ByteReader(payload);
  const n = r.u8('view count');
  const out: ViewItem[] = [];
  for (let i = 0; i < n; i++) {
    const id = r.str(MAX_ID_BYTES, 'view peer id');
    const ms = r.u32('view silence');
    out.push({ id, silenceMs: ms === NEVER ? null : ms });
  }
  r.end('view');
  return out;
}

/** The latest view of each peer; pure (time comes in as `now`, performance.now() milliseconds). */
export class Witnesses {
  /** By witness id: when its view arrived and, by peer id, the silence it reported. */
  readonly #views = new Map<string, { at: number; silence: Map<string, number> }>();

  /** A view from `witness` arrived at `now`. */
  record(witness: string, items: readonly ViewItem[], now: number): void {
    const silence = new Map<string, number>();
    for (const it of items) if (it.silenceMs !== null) silence.set(it.id, it.silenceMs);
    this.#views.set(witness, { at: now, silence });
  }

  forget(id: string): void {
    this.#views.delete(id);
    for (const v of this.#views.values()) v.silence.delete(id);
  }

  /** Whether `witness` ever sent a view (it speaks the frames that need one). */
  sentView(witness: string): boolean {
    return this.#views.has(witness);
  }

  /**
   * Milliseconds since any witness other than `id` itself last heard from `id`, as of `now`;
   * Infinity when none ever did.
   */
  silence(id: string, now: number): number {
    return this.#freshest(id, now).ms;
  }

  /** A witness that heard `id` within `withinMs` as of `now` (the freshest), or null. */
  witness(id: string, now: number, withinMs: number): string | null {
    const f = this.#freshest(id, now);
    return f.ms <= withinMs ? f.witness : null;
  }

  /** The view that heard `id` most recently, and how long ago as of `now`. */
  #freshest(id: string, now: number): { witness: string | null; ms: number } {
    let witness: string | null = null;
    let ms = Infinity;
    for (const [w, v] of this.#views) {
      if (w === id) continue;
      const s = v.silence.get(id);
      if (s === undefined) continue;
      const total = s + (now - v.at);
      if (total < ms) {
        witness = w;
        ms = total;
      }
    }
    return { witness, ms };
  }
}
