/**
 * Membership through etcd on the page: a banner while the serving node cannot reach etcd (it keeps
 * serving with the membership and config it has), and the pushed config revision it runs.
 */
import type { Snapshot } from '../wire.js';
import { setText } from './dom.js';

export class DiscoveryView {
  readonly #banner: HTMLElement;
  readonly #revision: HTMLElement;

  constructor(banner: HTMLElement, revision: HTMLElement) {
    this.#banner = banner;
    this.#revision = revision;
  }

  update(s: Snapshot): void {
    const d = s.discovery ?? null;
    const degraded = d !== null && d.state === 'degraded';
    this.#banner.hidden = !degraded;
    this.#banner.dataset.state = d?.state ?? 'off';
    if (degraded) {
      setText(this.#banner, `Discovery degraded: ${s.self} cannot reach etcd${d.error ? ` (${d.error})` : ''}. It keeps serving with the membership and config it has; joins, leaves and config pushes wait until etcd is back.`);
    }
    setText(this.#revision, s.configRevision ? ` · config revision ${s.configRevision}` : '');
  }
}
