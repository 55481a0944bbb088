/**
 * Prometheus metrics of TLS termination, once per registry; children are looked up once per label
 * set and cached, so a handshake costs a map probe, not a label hash. Every label value comes from
 * a fixed set (service names are configured).
 */
import type { Counter, Registry } from 'prom-client';
import { counter, gauge, perRegistry } from '../metrics.js';

/** Why a connection to a TLS port never became a secure connection. */
export type HandshakeFailure =
  | 'plain-http' // a cleartext HTTP request on the TLS port (answered 400)
  | 'not-tls' // other bytes that are not a TLS handshake
  | 'oversized' // a ClientHello larger than the bound (16 KiB)
  | 'malformed' // a ClientHello that does not parse
  | 'timeout' // no complete handshake within the handshake timeout
  | 'reset' // the client went away during the handshake
  | 'protocol-version' // no TLS version in common (TLS 1.0, 1.1, SSLv3 are refused)
  | 'no-shared-cipher'
  | 'alpn' // the client offered only application protocols this service does not speak
  | 'client-alert' // the client aborted with an alert (e.g. it does not trust the certificate)
  | 'renegotiation' // TLS 1.2 renegotiation, refused (the connection is closed)
  | 'other';

export type SniResult = 'exact' | 'wildcard' | 'default' | 'none';

const tlsMetrics = perRegistry((registry: Registry) => {
  return {
    handshakes: counter(registry, {
      name: 'tandem_tls_handshakes_total',
      help: 'Completed TLS handshakes, by TLS version (1.2, 1.3), negotiated ALPN (h2, http/1.1, none) and session (new, resumed).',
      labelNames: ['service', 'version', 'alpn', 'session'],
    }),
    failures: counter(registry, {
      name: 'tandem_tls_handshake_failures_total',
      help: 'Connections to a TLS port that never became secure, or that were closed for a refused renegotiation, by reason.',
      labelNames: ['service', 'reason'],
    }),
    serverNames: counter(registry, {
      name: 'tandem_tls_server_names_total',
      help: 'ClientHellos by how their server name picked the certificate: exact, wildcard, default (a name no certificate covers), none (no SNI).',
      labelNames: ['service', 'result'],
    }),
    fragmented: counter(registry, {
      name: 'tandem_tls_client_hellos_fragmented_total',
      help: 'ClientHellos that spanned more than one TLS record.',
      labelNames: ['service'],
    }),
    expiry: gauge(registry, {
      name: 'tandem_tls_certificate_expiry_timestamp_seconds',
      help: 'When each served certificate expires (its notAfter, Unix seconds); certificate is its position in the list.',
      labelNames: ['service', 'certificate'],
    }),
    reloads: counter(registry, {
      name: 'tandem_tls_certificate_reloads_total',
      help: 'Certificate reloads, by result: applied (files changed), unchanged, refused (a file unreadable, mismatched or invalid: the old set stays).',
      labelNames: ['service', 'result'],
    }),
  };
});

type Child = ReturnType<Counter<string>['labels']>;

/** The metrics of one TLS service, with cached children. */
export class ServiceTlsMetrics {
  readonly #service: string;
  readonly #m: ReturnType<typeof tlsMetrics>;
  readonly #handshakes = new Map<string, Child>();
  readonly #failures = new Map<HandshakeFailure, Child>();
  readonly #names = new Map<SniResult, Child>();
  readonly #fragmented: Child;
  #certificates = 0;

  constructor(registry: Registry, service: string) {
    this.#service = service;
    this.#m = tlsMetrics(registry);
    this.#fragmented = this.#m.fragmented.labels(service);
  }

  handshake(version: string, alpn: string, resumed: boolean): void {
    const k = `${version}|${alpn}|${resumed ? 1 : 0}`;
    let c = this.#handshakes.get(k);
    if (c === undefined) {
      c = this.#m.handshakes.labels(this.#service, version, alpn, resumed ? 'resumed' : 'new');
      this.#handshakes.set(k, c);
    }
    c.inc();
  }

  failure(reason: HandshakeFailure): void {
    let c = this.#failures.get(reason);
    if (c === undefined) {
      c = this.#m.failures.labels(this.#service, reason);
      this.#failures.set(reason, c);
    }
    c.inc();
  }

  serverName(result: SniResult): void {
    let c = this.#names.get(result);
    if (c === undefined) {
      c = this.#m.serverNames.labels(this.#service, result);
      this.#names.set(result, c);
    }
    c.inc();
  }

  fragmented(): void {
    this.#fragmented.inc();
  }

  reload(result: 'applied' | 'unchanged' | 'refused'): void {
    this.#m.reloads.inc({ service: this.#service, result });
  }

  /** Replace the expiry gauges of this service with the given notAfter times (ms). */
  certificates(notAfter: readonly number[]): void {
    for (let i = 0; i < this.#certificates; i++) this.#m.expiry.remove({ service: this.#service, certificate: String(i) });
    this.#certificates = notAfter.length;
    notAfter.forEach((ms, i) => this.#m.expiry.set({ service: this.#service, certificate: String(i) }, Math.floor(ms / 1000)));
  }
}
