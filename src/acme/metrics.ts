/** ACME metrics, one set per registry (docs/tls.md, "ACME"). */
import { Counter, Gauge, type Registry } from 'prom-client';
import { perRegistry, takeOverName } from '../metrics.js';

export const acmeMetrics = perRegistry((registry: Registry) => {
  const registers = [registry];
  return {
    orders: new Counter({
      name: takeOverName(registry, 'tandem_acme_orders_total'),
      help: 'ACME orders this node ran as the order owner, by result: issued, failed.',
      labelNames: ['certificate', 'result'],
      registers,
    }),
    errors: new Counter({
      name: takeOverName(registry, 'tandem_acme_errors_total'),
      help: 'Errors from ACME orders, by kind: network (unreachable, timeout), acme (a problem document from the server), local.',
      labelNames: ['certificate', 'kind'],
      registers,
    }),
    challenges: new Counter({
      name: takeOverName(registry, 'tandem_acme_challenges_answered_total'),
      help: 'HTTP-01 requests answered by this node, by result: answered (a known token), unknown.',
      labelNames: ['result'],
      registers,
    }),
    frames: new Counter({
      name: takeOverName(registry, 'tandem_acme_frames_total'),
      help: 'ACME_STATE frames received from peers, by result: applied, unchanged, refused (did not open, parse or check).',
      labelNames: ['result'],
      registers,
    }),
    expiry: new Gauge({
      name: takeOverName(registry, 'tandem_acme_certificate_expiry_timestamp_seconds'),
      help: 'When the ACME certificate this node serves expires (Unix seconds); absent while on the self-signed fallback.',
      labelNames: ['certificate'],
      registers,
    }),
    fallback: new Gauge({
      name: takeOverName(registry, 'tandem_acme_self_signed'),
      help: '1 while a certificate is served by its self-signed fallback (no ACME certificate yet).',
      labelNames: ['certificate'],
      registers,
    }),
  };
});
export type AcmeMetrics = ReturnType<typeof acmeMetrics>;
