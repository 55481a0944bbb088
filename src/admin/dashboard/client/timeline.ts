/**
 * The events timeline, newest first: membership changes, failovers (re-protections), re-ownerships,
 * reloads, health and drain changes, as the serving node recorded them.
 */
import type { TimelineEvent } from '../wire.js';
import { h } from './dom.js';
import { clock } from './format.js';

const MAX = 200;
/** Re-protection after a death is what an operator calls a failover. */
const LABELS: Readonly<Record<string, string>> = { reprotect: 'failover', reown: 're-own' };

export class TimelineView {
  readonly #list: HTMLOListElement;
  #lastSeq = 0;

  constructor(list: HTMLOListElement) {
    this.#list = list;
  }

  /** A fresh backlog (on every (re)connection): the serving node may have restarted. */
  reset(events: readonly TimelineEvent[]): void {
    this.#list.replaceChildren();
    this.#lastSeq = 0;
    for (const e of events.slice(-MAX)) this.add(e);
    if (events.length === 0) this.#list.append(h('li', { class: 'muted empty' }, 'No events yet.'));
  }

  add(e: TimelineEvent): void {
    if (e.seq <= this.#lastSeq) return;
    this.#lastSeq = e.seq;
    this.#list.querySelector('.empty')?.remove();
    const time = h('time', { datetime: new Date(e.at).toISOString() }, clock(e.at));
    const kind = h('span', { class: 'kind', 'data-kind': e.kind }, LABELS[e.kind] ?? e.kind);
    this.#list.prepend(h('li', { 'data-kind': e.kind }, time, kind, h('span', { class: 'msg' }, e.message)));
    while (this.#list.children.length > MAX) this.#list.lastElementChild?.remove();
  }
}
