/** A certificate a node holds for ACME: parsed, checked, and when to renew it. */
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { certificateInfo } from './order.js';
import type { StoredPem } from './state-dir.js';

export interface Held extends StoredPem {
  readonly issuer: string;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly names: readonly string[];
  readonly fingerprint: string;
}

/** Parse and check a certificate and its key (they match, not expired); a string says why not. */
export function checkCertificate(pem: StoredPem, now: number): Held | string {
  try {
    const x = new X509Certificate(pem.cert);
    createSecureContext({ cert: pem.cert, key: pem.key });
    const i = certificateInfo(pem.cert);
    if (i.notAfter <= now) return 'expired';
    return { cert: pem.cert, key: pem.key, issuer: i.issuer, notBefore: i.notBefore, notAfter: i.notAfter, names: i.names, fingerprint: x.fingerprint256 };
  } catch (err) {
    return (err as Error).message;
  }
}

/** Two thirds into the lifetime, less up to a thirtieth of it at random. */
export function renewTime(h: Held): number {
  const life = h.notAfter - h.notBefore;
  return h.notBefore + (life * 2) / 3 - Math.random() * (life / 30);
}
