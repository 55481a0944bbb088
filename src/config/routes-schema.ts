/**
 * The config of L7 routes and rate limits on http services (docs/configuration.md, "Routes" and
 * "Rate limits"): the zod parts that schema.ts puts on a service, and the resolved types.
 */
import { z } from 'zod';
import type { RouteMatch } from '../routes/matcher.js';
import { int, str, strictObject } from './schema-helpers.js';

/** RFC 9110 §5.1: a field name is a token. */
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HOST = /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$|^\[[0-9A-Fa-f:.]+\]$/;
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const REDIRECT_STATUS: readonly number[] = [301, 302, 303, 307, 308];
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

const headerMap = z.record(str(), { invalid_type_error: 'must be a mapping of header names to values' });

const RATE_MSG = 'must be a number from 0.001 to 10000000';
export const rateLimitSchema = strictObject({
  requestsPerSecond: z.number({ invalid_type_error: RATE_MSG, required_error: 'is required' }).min(0.001, RATE_MSG).max(10_000_000, RATE_MSG),
  burst: int(1, 10_000_000).optional(),
  key: str().default('client-ip'),
  maxKeys: int(100, 10_000_000).default(100_000),
});

const headerRulesSchema = strictObject({
  set: headerMap.optional(),
  add: headerMap.optional(),
  remove: z.array(str(), { invalid_type_error: 'must be a list of header names' }).optional(),
});

const redirectSchema = strictObject({
  to: str('a URL or a path'),
  status: z
    .custom<301 | 302 | 303 | 307 | 308>((v) => REDIRECT_STATUS.includes(v as number), { message: 'must be one of 301, 302, 303, 307, 308' })
    .default(302),
});

const matchSchema = strictObject({
  host: str().regex(HOST, 'must be a host name or "*.example.com"').optional(),
  pathPrefix: str().startsWith('/', 'must start with "/"').optional(),
  method: str().regex(METHOD, 'must be an HTTP method').optional(),
  header: headerMap.optional(),
});

/**
 * The fields a route shares with its service are given by schema.ts (`common`), so that a route's
 * policy, flowKey, healthCheck and timeouts are validated exactly as a service's.
 */
export function routeSchema<T extends z.ZodRawShape>(common: T) {
  return strictObject({
    name: str().regex(NAME, 'must be 1-63 characters of letters, digits, ".", "_" or "-"'),
    match: matchSchema.default({}),
    requestHeaders: headerRulesSchema.optional(),
    responseHeaders: headerRulesSchema.optional(),
    redirect: redirectSchema.optional(),
    rateLimit: rateLimitSchema.optional(),
    ...common,
  });
}

export const serviceRouteFields = {
  requestHeaders: headerRulesSchema.optional(),
  responseHeaders: headerRulesSchema.optional(),
  rateLimit: rateLimitSchema.optional(),
};

export interface HeaderRules {
  /** Lower-case names to values: replaces every field of that name. */
  readonly set: ReadonlyArray<readonly [string, string]>;
  readonly add: ReadonlyArray<readonly [string, string]>;
  /** Lower-case names. */
  readonly remove: readonly string[];
}

export interface RateLimitConfig {
  readonly requestsPerSecond: number;
  /** Defaults to requestsPerSecond (at least 1). */
  readonly burst: number;
  /** client-ip | header:NAME | cookie:NAME */
  readonly key: string;
  readonly maxKeys: number;
}

export interface RedirectConfig {
  /** May hold {host} and {path} (the original path and query). */
  readonly to: string;
  readonly status: 301 | 302 | 303 | 307 | 308;
}

export type RawHeaderRules = z.output<typeof headerRulesSchema>;
export type RawRateLimit = z.output<typeof rateLimitSchema>;
export type RawRedirect = z.output<typeof redirectSchema>;
export type RawMatch = z.output<typeof matchSchema>;

export function resolveHeaderRules(r: RawHeaderRules | undefined): HeaderRules | null {
  if (r === undefined) return null;
  const pairs = (m: Record<string, string> | undefined) => Object.entries(m ?? {}).map(([k, v]) => [k.toLowerCase(), v] as const);
  return { set: pairs(r.set), add: pairs(r.add), remove: (r.remove ?? []).map((n) => n.toLowerCase()) };
}

export function resolveRateLimit(r: RawRateLimit | undefined): RateLimitConfig | null {
  if (r === undefined) return null;
  return { requestsPerSecond: r.requestsPerSecond, burst: r.burst ?? Math.max(1, Math.ceil(r.requestsPerSecond)), key: r.key, maxKeys: r.maxKeys };
}

export function resolveMatch(m: RawMatch): RouteMatch {
  const out: { host?: string; pathPrefix?: string; method?: string; header?: Record<string, string> } = {};
  if (m.host !== undefined) out.host = m.host.toLowerCase().replace(/\.$/, '');
  if (m.pathPrefix !== undefined) out.pathPrefix = m.pathPrefix;
  if (m.method !== undefined) out.method = m.method.toUpperCase();
  if (m.header !== undefined) out.header = Object.fromEntries(Object.entries(m.header).map(([k, v]) => [k.toLowerCase(), v]));
  return out;
}
