/**
 * The node's event timeline: membership changes, failovers, re-protections, reloads, health and
 * drain changes. Kept in a bounded ring (newest last) for the dashboard and the admin API, and
 * pushed to subscribers (the dashboard's event stream). Nothing per request goes here.
 */
export type NodeEventKind = 'membership' | 'reprotect' | 'failover' | 'reown' | 'reload' | 'health' | 'drain' | 'lifecycle' | 'discovery';

export interface NodeEvent {
  readonly seq: number;
  readonly at: number;
  readonly node: string;
  readonly kind: NodeEventKind;
  readonly message: string;
  readonly data?: Readonly<Record<string, unknown>>;
}

export class EventLog {
  readonly #node: string;
  readonly #max: number;
  #ring: NodeEvent[] = [];
  #seq = 0;
  #subs = new Set<(e: NodeEvent) => void>();

  constructor(node: string, max = 500) {
    this.#node = node;
    this.#max = max;
  }

  add(kind: NodeEventKind, message: string, data?: Record<string, unknown>): NodeEvent {
    const e: NodeEvent = { seq: ++this.#seq, at: Date.now(), node: this.#node, kind, message, ...(data ? { data } : {}) };
    this.#ring.push(e);
    if (this.#ring.length > this.#max) this.#ring.splice(0, this.#ring.length - this.#max);
    for (const s of this.#subs) s(e);
    return e;
  }

  /** Events newer than `afterSeq`, oldest first. */
  since(afterSeq = 0): NodeEvent[] {
    return this.#ring.filter((e) => e.seq > afterSeq);
  }

  subscribe(fn: (e: NodeEvent) => void): () => void {
    this.#subs.add(fn);
    return () => this.#subs.delete(fn);
  }
}
