/**
 * The TLS settings tandem serves with. Sources: Mozilla's server-side TLS guidelines,
 * "intermediate" configuration (version 5.7, ssl-config.mozilla.org): TLS 1.2 and 1.3, AEAD
 * suites with forward secrecy only, groups X25519, P-256, P-384, and no server cipher preference
 * (every offered suite is strong, so the client's choice, which knows its hardware, wins). The
 * DHE-RSA suites of that list are left out: they need DH parameters and only serve clients older
 * than every browser still updated.
 */
import { createHash } from 'node:crypto';

export const MIN_TLS_VERSION = 'TLSv1.2';
export const MAX_TLS_VERSION = 'TLSv1.3';

/** Node takes the TLS 1.3 suites (TLS_…) and the TLS 1.2 ones in one list. */
export const CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export const ECDH_CURVES = 'X25519:prime256v1:secp384r1';

/**
 * Lifetime of a TLS session (and of the tickets that carry it), in seconds: Node's default and
 * that of NGINX (`ssl_session_timeout 5m`) and HAProxy (`tune.ssl.lifetime 300`). Ticket keys
 * rotate far more slowly (hours), so a ticket never outlives the keys that can open it.
 */
export const SESSION_LIFETIME_S = 300;

/**
 * The session id context of a service (SSL_CTX_set_session_id_context): OpenSSL resumes only
 * sessions made under the same context. It must be the same on every node of the cluster, or no
 * session resumes elsewhere, and different per service, so that a ticket from one service never
 * resumes on another. Node's default is a hash of the process's argv, which differs per node
 * (`--node lb1`), hence an explicit one. At most 32 bytes (SSL_MAX_SID_CTX_LENGTH).
 */
export function sessionIdContext(cluster: string, service: string): string {
  return createHash('sha256').update(`tandem/tls/v1\0${cluster}\0${service}`).digest('hex').slice(0, 32);
}
