/**
 * One active health probe per call: http, tcp or udp (ServiceConfig.healthCheck). A probe never
 * throws and never outlives `timeoutMs`: it resolves with ok or a short reason, and it closes its
 * socket whatever happens (and at once when `signal` aborts, so that HealthChecker.stop() leaves
 * nothing open). Like Caddy's active health checks, every probe uses a fresh connection: a pooled
 * keep-alive connection would prove that an old socket still works, not that the backend accepts.
 */
import { request } from 'node:http';
import { connect, isIPv6 } from 'node:net';
import { createSocket } from 'node:dgram';
import type { HealthCheckConfig } from '../config/schema.js';

export interface ProbeTarget {
  readonly address: string;
  readonly host: string;
  readonly port: number;
}

export type ProbeResult = { readonly ok: true } | { readonly ok: false; readonly reason: string; readonly timeout: boolean };

/** What HealthChecker calls; tests inject fakes with the same shape. */
export type Probe = (target: ProbeTarget, check: HealthCheckConfig, signal: AbortSignal) => Promise<ProbeResult>;

export interface StatusRange {
  readonly min: number;
  readonly max: number;
}

/** `expectStatus`: "200" or "200-399" (inclusive), as the schema validates it. */
export function parseStatusRange(spec: string): StatusRange {
  const m = /^\s*([1-5]\d\d)\s*(?:-\s*([1-5]\d\d)\s*)?$/.exec(spec);
  if (!m) throw new RangeError(`expectStatus must be a status or a range like "200-399", got "${spec}"`);
  const min = Number(m[1]);
  const max = m[2] === undefined ? min : Number(m[2]);
  if (max < min) throw new RangeError(`expectStatus range "${spec}" ends before it starts`);
  return { min, max };
}

export function statusInRange(status: number, range: StatusRange): boolean {
  return status >= range.min && status <= range.max;
}

/**
 * UDP payloads and expectations are text, or bytes written `hex:0a0b…` (a DNS or QUIC probe is
 * binary and YAML strings cannot carry arbitrary bytes).
 */
export function decodeBytes(spec: string): Buffer {
  if (spec.startsWith('hex:')) {
    const hex = spec.slice(4).replace(/\s+/g, '');
    if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw new RangeError(`"${spec}" is not valid hex`);
    return Buffer.from(hex, 'hex');
  }
  return Buffer.from(spec, 'utf8');
}

const fail = (reason: string, timeout = false): ProbeResult => ({ ok: false, reason, timeout });
const OK: ProbeResult = { ok: true };

function errorReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ?? e.message ?? String(err);
}

/**
 * The common frame of every probe: one settle, one deadline, abort support, cleanup on every path.
 * `run` gets `settle` and returns its cleanup.
 */
function withDeadline(timeoutMs: number, signal: AbortSignal, run: (settle: (r: ProbeResult) => void) => () => void): Promise<ProbeResult> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(fail('aborted'));
    let done = false;
    let cleanup: () => void = () => {};
    const settle = (r: ProbeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      cleanup();
      resolve(r);
    };
    const onAbort = (): void => settle(fail('aborted'));
    const timer = setTimeout(() => settle(fail(`no answer within ${timeoutMs} ms`, true)), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    cleanup = run(settle);
    if (done) cleanup();
  });
}

/** Host header / URL authority: IPv6 literals in brackets (RFC 9110 section 7.2). */
function authority(t: ProbeTarget): string {
  return isIPv6(t.host) ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

/** HTTP: `method path` on a fresh connection; healthy when the status is within `expectStatus`. */
export const httpProbe: Probe = (target, check, signal) => {
  let range: StatusRange;
  try {
    range = parseStatusRange(check.expectStatus);
  } catch (err) {
    return Promise.resolve(fail(errorReason(err)));
  }
  return withDeadline(check.timeoutMs, signal, (settle) => {
    const req = request({
      host: target.host,
      port: target.port,
      method: check.method,
      path: check.path,
      agent: false,
      headers: { host: authority(target), 'user-agent': 'tandem-health-check', connection: 'close' },
    });
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      settle(statusInRange(status, range) ? OK : fail(`status ${status}`));
    });
    req.on('error', (err) => settle(fail(errorReason(err))));
    req.end();
    return () => req.destroy();
  });
};

/** TCP: healthy when a connection is accepted within the timeout. */
export const tcpProbe: Probe = (target, check, signal) =>
  withDeadline(check.timeoutMs, signal, (settle) => {
    const socket = connect({ host: target.host, port: target.port });
    socket.once('connect', () => settle(OK));
    socket.on('error', (err) => settle(fail(errorReason(err))));
    return () => socket.destroy();
  });

/**
 * UDP: send `payload` (empty datagram when unset) on a connected socket; healthy when a reply
 * arrives within the timeout and, if `expect` is set, contains it. The socket is connected so that
 * an ICMP port-unreachable fails the probe at once (ECONNREFUSED) instead of waiting the timeout.
 */
export const udpProbe: Probe = (target, check, signal) => {
  let payload: Buffer;
  let expect: Buffer | null;
  try {
    payload = decodeBytes(check.payload ?? '');
    expect = check.expect === undefined ? null : decodeBytes(check.expect);
  } catch (err) {
    return Promise.resolve(fail(errorReason(err)));
  }
  return withDeadline(check.timeoutMs, signal, (settle) => {
    const socket = createSocket(isIPv6(target.host) ? 'udp6' : 'udp4');
    socket.on('error', (err) => settle(fail(errorReason(err))));
    socket.on('message', (msg) => {
      if (expect === null || msg.includes(expect)) settle(OK);
      else settle(fail('reply does not contain the expected bytes'));
    });
    socket.connect(target.port, target.host, () => {
      socket.send(payload, (err) => {
        if (err) settle(fail(errorReason(err)));
      });
    });
    return () => {
      try {
        socket.close();
      } catch {
        // already closed
      }
    };
  });
};

/** The probe for a check type; null for `none`. */
export function probeFor(type: HealthCheckConfig['type']): Probe | null {
  switch (type) {
    case 'http':
      return httpProbe;
    case 'tcp':
      return tcpProbe;
    case 'udp':
      return udpProbe;
    case 'none':
      return null;
  }
}
