/**
 * The dashboard page: one EventSource to the serving node's `/api/stream` (snapshots, timeline
 * events), rendered by the views. The browser reconnects by itself after a network error (the
 * server's `retry:`); when it gives up (an HTTP error such as the 503 of a full node) or the stream
 * goes quiet, the page reconnects on its own timer, so a restarted node is picked up again.
 */
import type { Hello, Snapshot, TimelineEvent } from '../wire.js';
import { byId, setText } from './dom.js';
import { clock } from './format.js';
import { NodesView } from './nodes.js';
import { ServicesView } from './services.js';
import { LookupView } from './lookup.js';
import { TimelineView } from './timeline.js';
import { TokenStore } from './api.js';
import { DiscoveryView } from './discovery.js';

/** Snapshots come every second: this long without any message means the stream is stuck. */
const STALE_MS = 5000;
const REOPEN_MS = 2000;

type ConnState = 'connecting' | 'live' | 'reconnecting' | 'offline';

class App {
  readonly #nodes = new NodesView(byId('nodes'), byId('summary'));
  readonly #services = new ServicesView(byId('services'), new TokenStore());
  readonly #lookup = new LookupView();
  readonly #timeline = new TimelineView(byId<HTMLOListElement>('events'));
  readonly #discovery = new DiscoveryView(byId('discovery-banner'), byId('config-revision'));
  readonly #conn = byId('conn');
  readonly #updated = byId('updated');
  #source: EventSource | null = null;
  #lastMessage = 0;
  #reopen: number | null = null;

  start(): void {
    this.#connect();
    window.setInterval(() => {
      if (this.#source && this.#source.readyState === EventSource.OPEN && Date.now() - this.#lastMessage > STALE_MS) {
        this.#setConn('reconnecting', 'no update for 5 s');
        this.#connect();
      }
    }, 1000);
  }

  #connect(): void {
    this.#source?.close();
    if (this.#reopen !== null) window.clearTimeout(this.#reopen);
    this.#reopen = null;
    const es = new EventSource('/api/stream');
    this.#source = es;
    this.#lastMessage = Date.now();
    es.addEventListener('open', () => this.#setConn('live'));
    es.addEventListener('hello', (m) => {
      const hello = JSON.parse((m as MessageEvent<string>).data) as Hello;
      this.#lastMessage = Date.now();
      this.#timeline.reset(hello.events);
    });
    es.addEventListener('snapshot', (m) => {
      this.#lastMessage = Date.now();
      this.#render(JSON.parse((m as MessageEvent<string>).data) as Snapshot);
    });
    es.addEventListener('node-event', (m) => {
      this.#lastMessage = Date.now();
      this.#timeline.add(JSON.parse((m as MessageEvent<string>).data) as TimelineEvent);
    });
    es.addEventListener('error', () => {
      if (es !== this.#source) return;
      if (es.readyState === EventSource.CLOSED) {
        // The browser will not retry this one (an HTTP error answer): retry on our own timer.
        this.#setConn('offline', 'retrying in 2 s');
        this.#reopen = window.setTimeout(() => this.#connect(), REOPEN_MS);
      } else {
        this.#setConn('reconnecting');
      }
    });
  }

  #setConn(state: ConnState, detail?: string): void {
    this.#conn.dataset.state = state;
    const label = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', offline: 'offline' }[state];
    setText(this.#conn, detail ? `${label} (${detail})` : label);
    document.body.dataset.conn = state;
  }

  #render(s: Snapshot): void {
    setText(byId('cluster-name'), s.cluster);
    setText(byId('served-by'), s.self);
    setText(this.#updated, clock(s.at));
    const down = s.nodes.filter((n) => n.state !== 'alive').length;
    document.title = `${down > 0 ? `(${down} down) ` : ''}tandem · ${s.cluster} · ${s.self}`;
    this.#nodes.update(s);
    this.#services.update(s);
    this.#lookup.update(s);
    this.#discovery.update(s);
  }
}

new App().start();
