/**
 * One ACME order (RFC 8555 section 7.4) through acme-client: account, order, HTTP-01 for each
 * name, finalize with a fresh ECDSA P-256 key, download the chain. tandem only supplies the
 * challenge hooks (which replicate the answer to every node) and the trust for the ACME server.
 *
 * acme-client keeps one HTTP client per process (`acme.axios`), so the trust and the timeout are
 * set there: the system roots plus every configured `caFile`.
 */
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { rootCertificates } from 'node:tls';
import * as acme from 'acme-client';

export interface OrderRequest {
  readonly directory: string;
  readonly email: string;
  readonly domains: readonly string[];
  /** The account key PEM (kept in the state directory by the caller). */
  readonly accountKey: string;
}

export interface ChallengeHooks {
  /** Make `keyAuthorization` the answer for `token` on every node; resolves when sent. */
  create(token: string, keyAuthorization: string): Promise<void>;
  remove(token: string): Promise<void>;
}

export interface Issued {
  readonly cert: string;
  readonly key: string;
}

export interface AcmeTransport {
  readonly requestTimeoutMs: number;
  readonly caFiles: readonly string[];
}

let configured = '';
let requestTimeoutMs = 0;

/** A request to the ACME server that got no response at all (timeout, connection lost). */
export class AcmeNoResponseError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(timeoutMs: number, options?: { cause?: unknown }) {
    super(`no response from the ACME server within ${timeoutMs} ms (request timed out or connection lost)`, options);
    this.name = 'AcmeNoResponseError';
  }
}

/** Set acme-client's shared HTTP client (idempotent for the same settings). */
export function configureTransport(t: AcmeTransport): void {
  const sig = JSON.stringify(t);
  if (sig === configured) return;
  configured = sig;
  requestTimeoutMs = t.requestTimeoutMs;
  const extra = t.caFiles.map((f) => readFileSync(f, 'utf8'));
  acme.axios.defaults.timeout = t.requestTimeoutMs;
  acme.axios.defaults.httpsAgent = new Agent({ ca: [...rootCertificates, ...extra], keepAlive: true, maxSockets: 4 });
  // acme-client retries 5xx/429 itself (RFC 8555 section 6.6); bound it, tandem backs off above.
  const settings = (acme.axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number; retryDefaultDelay: number } }).acmeSettings;
  settings.retryMaxAttempts = 2;
  settings.retryDefaultDelay = 1;
}

export async function createAccountKey(): Promise<string> {
  return (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
}

export async function order(req: OrderRequest, hooks: ChallengeHooks): Promise<Issued> {
  // Polling of authorizations and the order: bounded (about 30 s worst case).
  const client = new acme.Client({ directoryUrl: req.directory, accountKey: req.accountKey, backoffAttempts: 8, backoffMin: 500, backoffMax: 5000 });
  const [key, csr] = await acme.crypto.createCsr({ commonName: req.domains[0], altNames: [...req.domains] }, await acme.crypto.createPrivateEcdsaKey('P-256'));
  const cert = await autoOrder(client, {
    csr,
    email: req.email,
    termsOfServiceAgreed: true,
    challengePriority: ['http-01'],
    // acme-client's own pre-check would resolve the names and dial port 80 from here: the
    // ACME server's view is what counts, and it may differ (split DNS, a test port).
    skipChallengeVerification: true,
    challengeCreateFn: async (_authz, challenge, keyAuthorization) => hooks.create(challenge.token, keyAuthorization),
    challengeRemoveFn: async (_authz, challenge) => hooks.remove(challenge.token),
  });
  return { cert, key: key.toString() };
}

/**
 * client.auto(), with one translation: acme-client's retry interceptor reads
 * error.response.config, so a request that got no response surfaces as that TypeError.
 */
async function autoOrder(client: acme.Client, opts: Parameters<acme.Client['auto']>[0]): Promise<string> {
  try {
    return await client.auto(opts);
  } catch (err) {
    if (err instanceof TypeError && /reading 'config'/.test(err.message)) throw new AcmeNoResponseError(requestTimeoutMs, { cause: err });
    throw err;
  }
}

/** The certificate's issuer CN, validity and names (acme-client's parser). */
export function certificateInfo(pem: string): { issuer: string; notBefore: number; notAfter: number; names: string[] } {
  const i = acme.crypto.readCertificateInfo(pem);
  return { issuer: i.issuer.commonName, notBefore: i.notBefore.getTime(), notAfter: i.notAfter.getTime(), names: i.domains.altNames };
}
