/**
 * Flow lookup: a service and a key give the flow's primary, backup and backend as the serving
 * node's replicated table holds them, and the full score ranking of the nodes for that key.
 */
import type { Lookup, Snapshot } from '../wire.js';
import { byId, h, replaceChildren } from './dom.js';
import { clock, score } from './format.js';
import { getJson } from './api.js';

export class LookupView {
  readonly #form = byId<HTMLFormElement>('lookup-form');
  readonly #service = byId<HTMLSelectElement>('lookup-service');
  readonly #key = byId<HTMLInputElement>('lookup-key');
  readonly #result = byId('lookup-result');
  #services = '';
  #seq = 0;

  constructor() {
    this.#form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      void this.#lookup();
    });
  }

  /** Keeps the service list in step with the config, without losing the user's choice. */
  update(s: Snapshot): void {
    const names = s.services.map((x) => x.name);
    const sig = names.join('\n');
    if (sig === this.#services) return;
    this.#services = sig;
    const chosen = this.#service.value;
    this.#service.replaceChildren(...names.map((n) => h('option', { value: n }, n)));
    if (names.includes(chosen)) this.#service.value = chosen;
  }

  async #lookup(): Promise<void> {
    const service = this.#service.value;
    const key = this.#key.value;
    if (!service || key === '') {
      replaceChildren(this.#result, h('p', { class: 'muted' }, 'Choose a service and type a flow key.'));
      return;
    }
    // Answers can arrive out of order when the user types fast: only the latest one is shown.
    const seq = ++this.#seq;
    this.#result.setAttribute('aria-busy', 'true');
    try {
      const r = await getJson<Lookup>(`/api/dashboard/lookup?service=${encodeURIComponent(service)}&key=${encodeURIComponent(key)}`);
      if (seq === this.#seq) this.#show(r);
    } catch (err) {
      if (seq === this.#seq) replaceChildren(this.#result, h('p', { class: 'error' }, `Lookup failed: ${(err as Error).message}`));
    } finally {
      if (seq === this.#seq) this.#result.removeAttribute('aria-busy');
    }
  }

  #show(r: Lookup): void {
    const f = r.flow;
    const owners = f
      ? h(
          'dl',
          { class: 'owners' },
          h('dt', {}, 'Primary'),
          h('dd', { id: 'lookup-primary' }, f.primary),
          h('dt', {}, 'Backup'),
          h('dd', { id: 'lookup-backup' }, f.backup ?? 'none'),
          h('dt', {}, 'Backend'),
          h('dd', { id: 'lookup-backend', class: 'mono' }, f.backend ?? 'not chosen yet'),
          h('dt', {}, 'Last written'),
          h('dd', {}, `by ${f.writer}, active ${clock(f.lastActive)}`),
        )
      : h(
          'p',
          { class: 'muted', id: 'lookup-absent' },
          r.knownService ? `No flow with this key in ${r.service} on ${r.servedBy}. ` : `${r.servedBy} has no service named ${r.service}. `,
          `A new flow would have primary ${r.wouldOwn.primary} and backup ${r.wouldOwn.backup ?? 'none'}.`,
        );
    const rows = r.ranking.map((n, i) => {
      const role = f ? (n.id === f.primary ? 'primary' : n.id === f.backup ? 'backup' : '') : '';
      return h(
        'tr',
        { 'data-node': n.id, 'data-role': role || undefined },
        h('td', { class: 'num' }, i + 1),
        h('td', {}, n.id),
        h('td', {}, h('span', { class: 'badge', 'data-state': n.state }, n.state)),
        h('td', { class: 'num' }, n.weight),
        h('td', { class: 'num mono' }, score(n.score)),
        h('td', {}, role ? h('span', { class: `role role-${role}` }, role) : ''),
      );
    });
    const ranking = h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'ranking', id: 'lookup-ranking' },
        h('caption', {}, `Score ranking for key “${r.key}” (highest first)`),
        h('thead', {}, h('tr', {}, ...[['#', 'num'], ['Node'], ['State'], ['Weight', 'num'], ['Score', 'num'], ['Role']].map(([t, cls]) => h('th', { scope: 'col', class: cls }, t)))),
        h('tbody', {}, ...rows),
      ),
    );
    replaceChildren(this.#result, owners, ranking);
  }
}
