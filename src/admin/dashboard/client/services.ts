/**
 * Services and backends: per service, and per route of an http service (SERVICE/ROUTE), what it
 * matches, its policy, and each backend's health, draining state, weight, active connections and
 * rate, with drain and undrain buttons (the admin token is asked for once); for a TLS service its
 * ALPN, session tickets, certificates, ACME state and handshakes.
 * Rows are keyed by service and address and updated in place, so a button under the pointer
 * stays the same element across snapshots.
 */
import type { BackendView, ServiceView, Snapshot, TlsView } from '../wire.js';
import { h, setText } from './dom.js';
import { count, rate } from './format.js';
import { ApiError, postJson, type TokenStore } from './api.js';

/** Header text and cell class; the phone layout labels each cell from the same names. */
const COLUMNS: ReadonlyArray<readonly [string, string | undefined]> = [
  ['Backend', 'addr'],
  ['Health', undefined],
  ['State', undefined],
  ['Weight', 'num'],
  ['Active', 'num'],
  ['Rate/s', 'num'],
  ['', 'action'],
];

interface Row {
  readonly tr: HTMLTableRowElement;
  readonly health: HTMLElement;
  readonly state: HTMLElement;
  readonly weight: HTMLElement;
  readonly active: HTMLElement;
  readonly rate: HTMLElement;
  readonly button: HTMLButtonElement;
  draining: boolean;
}

interface Block {
  readonly root: HTMLElement;
  readonly meta: HTMLElement;
  readonly tls: HTMLElement;
  readonly body: HTMLTableSectionElement;
  readonly message: HTMLElement;
  readonly rows: Map<string, Row>;
}

export class ServicesView {
  readonly #el: HTMLElement;
  readonly #tokens: TokenStore;
  readonly #blocks = new Map<string, Block>();

  constructor(el: HTMLElement, tokens: TokenStore) {
    this.#el = el;
    this.#tokens = tokens;
  }

  reset(): void {
    this.#blocks.clear();
    this.#el.replaceChildren();
  }

  update(s: Snapshot): void {
    const seen = new Set<string>();
    for (const svc of s.services) {
      seen.add(svc.name);
      let b = this.#blocks.get(svc.name);
      if (!b) {
        b = this.#makeBlock(svc);
        this.#blocks.set(svc.name, b);
        this.#el.append(b.root);
      }
      setText(b.meta, meta(svc));
      setText(b.tls, svc.tls === null ? '' : tlsText(svc.tls));
      b.tls.hidden = svc.tls === null;
      b.tls.dataset.kind = svc.tls?.acme.some((a) => a.lastError !== null) ? 'error' : '';
      this.#updateRows(svc, b);
    }
    for (const [name, b] of this.#blocks) {
      if (!seen.has(name)) {
        b.root.remove();
        this.#blocks.delete(name);
      }
    }
    if (s.services.length === 0 && !this.#el.firstChild) this.#el.append(h('p', { class: 'muted' }, 'No services are configured.'));
  }

  #makeBlock(svc: ServiceView): Block {
    const meta = h('p', { class: 'service-meta' });
    const tls = h('p', { class: 'service-meta service-tls' });
    const body = h('tbody');
    const message = h('p', { class: 'service-message', role: 'status' });
    const head = h(
      'thead',
      {},
      h('tr', {}, ...COLUMNS.map(([t, cls]) => h('th', { scope: 'col', class: cls }, t))),
    );
    const root = h(
      'div',
      { class: 'service', 'data-service': svc.name },
      h('h3', {}, svc.name),
      meta,
      tls,
      h('div', { class: 'table-wrap' }, h('table', { class: 'backends' }, head, body)),
      message,
    );
    return { root, meta, tls, body, message, rows: new Map() };
  }

  #updateRows(svc: ServiceView, b: Block): void {
    const seen = new Set<string>();
    for (const be of svc.backends) {
      seen.add(be.address);
      let row = b.rows.get(be.address);
      if (!row) {
        row = this.#makeRow(svc.name, be, b);
        b.rows.set(be.address, row);
        b.body.append(row.tr);
      }
      row.draining = be.draining;
      row.tr.dataset.state = be.state;
      setText(row.health, be.healthy ? 'up' : 'down');
      row.health.dataset.ok = String(be.healthy);
      setText(row.state, be.draining ? 'draining' : be.state === 'ejected' ? 'ejected' : 'serving');
      row.state.dataset.state = be.state;
      setText(row.weight, be.effectiveWeight !== be.weight ? `${be.weight} (now ${be.effectiveWeight.toFixed(2)})` : String(be.weight));
      setText(row.active, count(be.active));
      setText(row.rate, rate(be.ratePerSec));
      if (!row.button.disabled) setText(row.button, be.draining ? 'Undrain' : 'Drain');
      row.button.dataset.action = be.draining ? 'undrain' : 'drain';
    }
    for (const [address, row] of b.rows) {
      if (!seen.has(address)) {
        row.tr.remove();
        b.rows.delete(address);
      }
    }
  }

  #makeRow(service: string, be: BackendView, b: Block): Row {
    const td = (cls: string | undefined, label: string) => h('td', { class: cls, 'data-label': label });
    const button = h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `drain or undrain ${be.address}` });
    const row: Row = {
      tr: h('tr', { 'data-backend': be.address }),
      health: h('span', { class: 'dot-label' }),
      state: h('span', { class: 'badge' }),
      weight: td('num', 'weight'),
      active: td('num', 'active'),
      rate: td('num', 'rate/s'),
      button,
      draining: be.draining,
    };
    const healthCell = td(undefined, 'health');
    healthCell.append(row.health);
    const stateCell = td(undefined, 'state');
    stateCell.append(row.state);
    const actionCell = td('action', '');
    actionCell.append(button);
    row.tr.append(h('td', { class: 'addr mono' }, be.address), healthCell, stateCell, row.weight, row.active, row.rate, actionCell);
    button.addEventListener('click', () => void this.#toggle(service, be.address, row, b));
    return row;
  }

  async #toggle(service: string, address: string, row: Row, b: Block): Promise<void> {
    const on = !row.draining;
    const verb = on ? 'drain' : 'undrain';
    const token = await this.#tokens.get(`${on ? 'Drain' : 'Undrain'} ${address} in service ${service} on every node.`);
    if (token === null) return;
    row.button.disabled = true;
    setText(b.message, `${on ? 'Draining' : 'Undraining'} ${address}…`);
    try {
      await postJson(`/api/backends/${verb}`, { service, address }, token);
      row.draining = on;
      setText(b.message, `${address} ${on ? 'draining' : 'undrained'}: replicated to every node.`);
      b.message.dataset.kind = 'ok';
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) this.#tokens.forget();
      setText(b.message, `Could not ${verb} ${address}: ${(err as Error).message}`);
      b.message.dataset.kind = 'error';
    } finally {
      row.button.disabled = false;
      setText(row.button, row.draining ? 'Undrain' : 'Drain');
    }
  }
}

function meta(svc: ServiceView): string {
  const base = `${svc.protocol} :${svc.port} · ${svc.policy} · key ${svc.flowKey} · ${count(svc.flows)} flows`;
  const r = svc.route;
  if (r === null) return base;
  const extra = [r.redirect === null ? null : `redirect ${r.redirect}`, r.rateLimit === null ? null : `limit ${r.rateLimit}`].filter((x) => x !== null);
  return `route ${r.name} of ${r.service}: ${r.match} · ${base}${extra.length > 0 ? ` · ${extra.join(' · ')}` : ''}`;
}

function tlsText(t: TlsView): string {
  const certs = t.certificates.map((c) => `#${c.id} until ${new Date(c.notAfter).toISOString().slice(0, 10)}`).join(', ');
  const acme = t.acme.map((a) => `ACME ${a.state} (owner ${a.owner}${a.notAfter ? `, until ${a.notAfter.slice(0, 10)}` : ''}${a.lastError ? `, last error: ${a.lastError}` : ''})`);
  return [
    `TLS · ALPN ${t.alpn.join(', ')} · tickets ${t.sessionTickets}`,
    `${count(t.handshakes)} handshakes (${count(t.resumed)} resumed, ${count(t.failures)} failed)`,
    certs === '' ? null : `certificates ${certs}`,
    ...acme,
  ].filter((x) => x !== null).join(' · ');
}
