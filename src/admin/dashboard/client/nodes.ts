/**
 * The cluster view: one card per node with its state, weight, flows held as primary and backup,
 * traffic rates, replication lag and a small traffic chart. Cards are created once per node and
 * updated in place on every snapshot.
 */
import type { NodeView, Snapshot } from '../wire.js';
import { h, setText } from './dom.js';
import { NodeChart, TrafficHistory } from './chart.js';
import { count, ms, rate, uptime } from './format.js';

interface Card {
  readonly root: HTMLElement;
  readonly state: HTMLElement;
  readonly meta: HTMLElement;
  readonly primary: HTMLElement;
  readonly backup: HTMLElement;
  readonly http: HTMLElement;
  readonly tcp: HTMLElement;
  readonly udp: HTMLElement;
  readonly lag: HTMLElement;
  readonly heard: HTMLElement;
  readonly chart: NodeChart;
}

function stat(label: string, value: HTMLElement, unit?: string): HTMLElement {
  return h('div', { class: 'stat' }, h('span', { class: 'stat-label' }, label), value, unit ? h('span', { class: 'stat-unit' }, unit) : null);
}

function makeCard(n: NodeView): Card {
  const v = (name: string) => h('span', { class: 'stat-value', 'data-field': name });
  const c = {
    state: h('span', { class: 'badge', 'data-field': 'state' }),
    meta: h('div', { class: 'node-meta' }),
    primary: v('primary'),
    backup: v('backup'),
    http: v('http'),
    tcp: v('tcp'),
    udp: v('udp'),
    lag: v('lag'),
    heard: v('heard'),
    chart: new NodeChart(`traffic of ${n.id} over the last 5 minutes`),
  };
  const root = h(
    'article',
    { class: 'node', 'data-node': n.id },
    h('header', { class: 'node-head' }, h('h3', {}, n.id), n.self ? h('span', { class: 'tag', title: 'the node serving this page' }, 'this node') : null, c.state),
    c.meta,
    h('div', { class: 'stats' }, stat('primary', c.primary, 'flows'), stat('backup', c.backup, 'flows')),
    h('div', { class: 'stats stats-3' }, stat('http', c.http, 'req/s'), stat('tcp', c.tcp, 'conn/s'), stat('udp', c.udp, 'dgram/s')),
    h('div', { class: 'stats' }, stat('replication lag', c.lag), stat('last heard', c.heard)),
    c.chart.el,
  );
  return { root, ...c };
}

export class NodesView {
  readonly #el: HTMLElement;
  readonly #summary: HTMLElement;
  readonly #cards = new Map<string, Card>();
  readonly #history = new TrafficHistory();

  constructor(el: HTMLElement, summary: HTMLElement) {
    this.#el = el;
    this.#summary = summary;
  }

  /** A new serving node (page reconnected elsewhere or node restarted): start the cards over. */
  reset(): void {
    this.#cards.clear();
    this.#el.replaceChildren();
  }

  update(s: Snapshot): void {
    const seen = new Set<string>();
    let alive = 0;
    let traffic = 0;
    for (const n of s.nodes) {
      seen.add(n.id);
      let card = this.#cards.get(n.id);
      if (!card) {
        card = makeCard(n);
        this.#cards.set(n.id, card);
        this.#el.append(card.root);
      }
      if (n.state === 'alive') alive++;
      const total = n.rates ? n.rates.http + n.rates.tcp + n.rates.udp : null;
      if (total !== null) traffic += total;
      this.#history.push(n.id, s.at, n.state === 'dead' ? null : total);
      card.root.dataset.state = n.state;
      setText(card.state, n.state);
      card.state.dataset.state = n.state;
      const ready = n.ready === false ? ' · not ready' : '';
      const config = n.configRevision ? ` · config r${n.configRevision}` : '';
      setText(card.meta, `${n.host} · weight ${n.weight} · up ${uptime(n.uptimeSec)}${ready}${config}`);
      setText(card.primary, count(n.primary));
      setText(card.backup, count(n.backup));
      setText(card.http, rate(n.rates?.http));
      setText(card.tcp, rate(n.rates?.tcp));
      setText(card.udp, rate(n.rates?.udp));
      setText(card.lag, n.self ? '–' : ms(n.replicationLagMs));
      setText(card.heard, n.self ? '–' : n.state === 'dead' && n.lastHeartbeatAgoMs === null ? 'never' : ms(n.lastHeartbeatAgoMs));
    }
    for (const [id, card] of this.#cards) {
      if (!seen.has(id)) {
        card.root.remove();
        this.#cards.delete(id);
      }
    }
    const max = this.#history.scaleMax();
    for (const [id, card] of this.#cards) card.chart.draw(this.#history.points(id), s.at, max);
    setText(this.#summary, `${alive} of ${s.nodes.length} nodes alive · ${count(s.flows.total)} flows · ${rate(traffic)} communications/s`);
    this.#summary.dataset.health = alive === s.nodes.length ? 'ok' : alive > 0 ? 'degraded' : 'down';
  }
}
