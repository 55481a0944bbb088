/** Shared fixtures of the upstream tests. */
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import type { BackendConfig, HealthCheckConfig, ServiceConfig } from '../../src/config/schema.js';

export function backend(address: string, weight = 1): BackendConfig {
  const i = address.lastIndexOf(':');
  return { address, host: address.slice(0, i), port: Number(address.slice(i + 1)), weight };
}

export const HC_DEFAULTS: HealthCheckConfig = {
  type: 'http',
  path: '/healthz',
  method: 'GET',
  expectStatus: '200-399',
  intervalMs: 1000,
  timeoutMs: 1000,
  rise: 2,
  fall: 3,
};

export function service(backends: readonly BackendConfig[], hc: Partial<HealthCheckConfig> = {}, name = 'web'): ServiceConfig {
  return {
    name,
    protocol: 'http',
    port: 8080,
    flowKey: 'client-ip',
    policy: 'round-robin',
    flowIdleTimeoutMs: 600_000,
    maxFlows: 1_000_000,
    maxConnections: 10_000,
    quicCidLength: 8,
    slowStartMs: 0,
    accessLog: false,
    timeouts: { connectMs: 3000, headerMs: 10_000, idleMs: 60_000, requestMs: 60_000 },
    backends,
    healthCheck: { ...HC_DEFAULTS, ...hc },
    routes: [],
    rateLimit: null,
    requestHeaders: null,
    responseHeaders: null,
    tls: null,
  };
}

/** A pino logger whose records land in `lines` (parsed), at `level`. */
export function captureLogger(level = 'debug'): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level }, stream), lines };
}
