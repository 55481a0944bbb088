/**
 * An etcd v3 client (the `etcd3` package, github.com/microsoft/etcd3) set up the way tandem uses
 * it: every unary call has a deadline, so that an unreachable etcd fails a call in seconds instead
 * of holding it; watch streams reconnect with capped, jittered exponential back-off (the library's
 * default waits up to 30 s, too long to notice that etcd is back); the per-endpoint circuit
 * breaker (cockatiel, as the library's docs configure it) opens after 3 consecutive failures as
 * by default but tries again after 1 s instead of 5 s, for the same reason; the library's retry
 * across endpoints stays as it is.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { ErrorCodes, TandemError } from '../../errors.js';
import type { Etcd3, IOptions } from 'etcd3';

export interface EtcdClientSettings {
  readonly endpoints: readonly string[];
  readonly dialTimeoutMs: number;
  readonly auth: { readonly username: string; readonly password: string } | null;
  readonly tls: { readonly ca: string | null; readonly cert: string | null; readonly key: string | null } | null;
}

type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/** min(cap, base · 2^n) · U(0.5, 1) ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015). */
export function backoffMs(attempt: number, baseMs: number, capMs: number): number {
  return Math.min(capMs, baseMs * 2 ** Math.min(attempt, 20)) * (0.5 + Math.random() / 2);
}

function watchBackoff(attempt: number, baseMs: number, capMs: number): WatchBackoff {
  return { duration: backoffMs(attempt, baseMs, capMs), next: () => watchBackoff(attempt + 1, baseMs, capMs) };
}

export interface ClientTuning {
  /** Deadline of every unary call. Default: the dial timeout. */
  readonly requestTimeoutMs?: number;
  /** An open circuit (an endpoint that failed 3 times in a row) is tried again after this. Default 1000 ms. */
  readonly halfOpenAfterMs?: number;
  /** Watch reconnect back-off. Defaults 100 ms and 2000 ms. */
  readonly watchBackoffBaseMs?: number;
  readonly watchBackoffMaxMs?: number;
}

/** Node 26 throws ERR_INVALID_ARG_VALUE for an IP address as TLS servername (Node 20–24 warn, DEP0123). */
const IP_SERVERNAME_REFUSED = Number(process.versions.node.split('.')[0]) >= 26;

/** The host of an endpoint URL ("https://10.0.0.1:2379" → "10.0.0.1"; "[::1]" → "::1"). */
function endpointHost(endpoint: string): string {
  try {
    return new URL(endpoint.includes('://') ? endpoint : `https://${endpoint}`).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return endpoint;
  }
}

/**
 * Reads the TLS files now (a missing file throws here, at start, not at the first call). The
 * library (with gRPC) is loaded on first use: a node without discovery never pays for it.
 */
export async function createEtcdClient(s: EtcdClientSettings, t: ClientTuning = {}): Promise<Etcd3> {
  const [{ Etcd3: Client, isRecoverableError }, { ConsecutiveBreaker, circuitBreaker, handleWhen }] = await Promise.all([import('etcd3'), import('cockatiel')]);
  const halfOpenAfter = t.halfOpenAfterMs ?? 1000;
  const requestTimeoutMs = t.requestTimeoutMs ?? s.dialTimeoutMs;
  const options: IOptions = {
    hosts: [...s.endpoints],
    dialTimeout: s.dialTimeoutMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + requestTimeoutMs }),
    faultHandling: {
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter, breaker: new ConsecutiveBreaker(3) }),
      watchBackoff: watchBackoff(0, t.watchBackoffBaseMs ?? 100, t.watchBackoffMaxMs ?? 2000),
    },
  };
  if (s.auth !== null) options.auth = { username: s.auth.username, password: s.auth.password };
  const tls = s.tls;
  if (tls !== null && (tls.ca !== null || tls.cert !== null)) {
    const refused = IP_SERVERNAME_REFUSED ? s.endpoints.filter((e) => isIP(endpointHost(e)) !== 0) : [];
    if (refused.length > 0) {
      // gRPC (@grpc/grpc-js 1.14) sets the endpoint's host as the TLS server name, and Node 26
      // refuses an IP address there (RFC 6066 section 3; DEP0123): the connection would fail on
      // every try. Said once, clearly, instead.
      throw new TandemError(
        ErrorCodes.CONFIG_INVALID,
        `etcd over TLS on Node ${process.versions.node}: give the endpoint${refused.length > 1 ? 's' : ''} ${refused.join(', ')} by host name (a name in the server certificate), not by IP address: gRPC sends the host as the TLS server name, which Node 26 refuses to be an IP address`,
      );
    }
    // grpc wants a root certificate whenever a client certificate is given; null means the
    // system's roots.
    const credentials: { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer } = {
      rootCertificate: tls.ca !== null ? readFileSync(tls.ca) : (null as unknown as Buffer),
    };
    if (tls.cert !== null && tls.key !== null) {
      credentials.certChain = readFileSync(tls.cert);
      credentials.privateKey = readFileSync(tls.key);
    }
    options.credentials = credentials;
  }
  return new Client(options);
}
