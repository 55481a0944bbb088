/**
 * ACME metrics (docs/tls.md, "ACME"): one set per node, made by the node's one AcmeManager (which
 * the composition root, src/node/node.ts, creates once).
 */
import type { Registry } from 'prom-client';
import { counter, gauge } from '../metrics.js';

/** The node's ACME metric set; call once per node (a second call takes the names over). */
export function acmeMetrics(registry: Registry) {
  return {
    orders: counter(registry, {
      name: 'tandem_acme_orders_total',
      help: 'ACME orders this node ran as the order owner, by result: issued, failed.',
      labelNames: ['certificate', 'result'],
    }),
    errors: counter(registry, {
      name: 'tandem_acme_errors_total',
      help: 'Errors from ACME orders, by kind: network (unreachable, timeout), acme (a problem document from the server), local.',
      labelNames: ['certificate', 'kind'],
    }),
    challenges: counter(registry, {
      name: 'tandem_acme_challenges_answered_total',
      help: 'HTTP-01 requests answered by this node, by result: answered (a known token), unknown.',
      labelNames: ['result'],
    }),
    frames: counter(registry, {
      name: 'tandem_acme_frames_total',
      help: 'ACME_STATE frames received from peers, by result: applied, unchanged, refused (did not open, parse or check).',
      labelNames: ['result'],
    }),
    expiry: gauge(registry, {
      name: 'tandem_acme_certificate_expiry_timestamp_seconds',
      help: 'When the ACME certificate this node serves expires (Unix seconds); absent while on the self-signed fallback.',
      labelNames: ['certificate'],
    }),
    fallback: gauge(registry, {
      name: 'tandem_acme_self_signed',
      help: '1 while a certificate is served by its self-signed fallback (no ACME certificate yet).',
      labelNames: ['certificate'],
    }),
  };
}
export type AcmeMetrics = ReturnType<typeof acmeMetrics>;
