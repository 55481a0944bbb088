/**
 * Metrics of the HTTP/2 front (docs/http.md, "HTTP/2"; docs/metrics.md): sessions accepted, and
 * abuse bounded, by kind. Made once per registry; children resolved once per service and kind.
 * Requests themselves are counted by the engine's metrics (tandem_http_requests_total), whatever
 * the protocol the client spoke.
 */
import type { Counter, Registry } from 'prom-client';
import { counter, perRegistry } from '../../metrics.js';

/** What the abuse guard of a session counted (docs/http.md, "HTTP/2 limits"). */
export type H2AbuseKind =
  | 'rapid-reset' // streams reset by the client before their response, over the budget (CVE-2023-44487)
  | 'settings-flood' // SETTINGS frames over the budget
  | 'ping-flood' // PING frames over the budget
  | 'refused-streams' // streams node:http2 refused before tandem saw them (header list too large, HPACK bomb, over the concurrency limit), over the budget
  | 'oversized-headers' // heads over the header list limit (HPACK bombs) answered 431, over the budget
  | 'flood' // nghttp2 detected a flood (frames answered faster than the client reads them, empty frames) and ended the session
  | 'continuation-flood' // a header block in too many CONTINUATION frames, ended by nghttp2 (CVE-2024-27316 class)
  | 'protocol-error' // the session ended on a protocol error of the client (bad preface, invalid frames)
  | 'stream-timeout'; // a stream whose request did not arrive within requestMs (answered 408)

export const H2_ABUSE_KINDS: readonly H2AbuseKind[] = ['rapid-reset', 'settings-flood', 'ping-flood', 'refused-streams', 'oversized-headers', 'flood', 'continuation-flood', 'protocol-error', 'stream-timeout'];

const made = perRegistry((registry: Registry) => ({
  sessions: counter(registry, {
    name: 'tandem_http2_sessions_total',
    help: 'HTTP/2 connections (ALPN h2) accepted by an http service.',
    labelNames: ['service'],
  }),
  abuse: counter(registry, {
    name: 'tandem_http2_abuse_total',
    help: 'HTTP/2 abuse bounded by tandem, by kind: the session is sent GOAWAY and closed (stream-timeout: the stream is answered 408).',
    labelNames: ['service', 'kind'],
  }),
}));

type Inc = ReturnType<Counter['labels']>;

export class H2Metrics {
  readonly #sessions: Inc;
  readonly #abuse = new Map<H2AbuseKind, Inc>();

  constructor(registry: Registry, service: string) {
    const m = made(registry);
    this.#sessions = m.sessions.labels({ service });
    for (const kind of H2_ABUSE_KINDS) this.#abuse.set(kind, m.abuse.labels({ service, kind }));
  }

  session(): void {
    this.#sessions.inc();
  }

  abuse(kind: H2AbuseKind): void {
    this.#abuse.get(kind)!.inc();
  }
}
