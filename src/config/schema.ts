/**
 * The one config schema: it gives both the TypeScript types (`Config`, `ServiceConfig`, …) and the
 * validator. Every key of docs/design.md §6 is here under its contract name; later keys extend it.
 *
 * Why preprocess for unknown keys: zod's refinements do not run on an object whose fields already
 * failed, and the contract is "every problem in one run". A preprocess step sees the raw object
 * first, so unknown keys are reported alongside type errors in the same pass.
 */
import { z } from 'zod';
import { int, port, str, strictObject } from './schema-helpers.js';
import { routeSchema, serviceRouteFields, type HeaderRules, type RateLimitConfig, type RedirectConfig } from './routes-schema.js';
import type { RouteMatch } from '../routes/matcher.js';

const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

const nodeSchema = strictObject({
  id: str().regex(NODE_ID, 'must be 1-63 characters of letters, digits, ".", "_" or "-"'),
  host: str().min(1, 'must not be empty'),
  peerPort: port().default(7000),
  adminPort: port().default(9000),
  weight: z
    .number({ invalid_type_error: 'must be a number from 0 to 1000' })
    .min(0, 'must be a number from 0 to 1000')
    .max(1000, 'must be a number from 0 to 1000')
    .default(1),
});

const tlsSchema = strictObject({
  cert: str('a file path'),
  key: str('a file path'),
  ca: str('a file path'),
});

/**
 * The route announcement watchdog (`tandem announce`, docs/deploy-ecmp.md): commands run through
 * `sh -c` when the node's /readyz turns healthy (`rise` checks in a row) or unhealthy (`fall`).
 */
const announceSchema = strictObject({
  up: str('a shell command').min(1, 'must not be empty'),
  down: str('a shell command').min(1, 'must not be empty'),
  checkIntervalMs: int(10, 60_000).default(100),
  /** One check's deadline; a node that does not answer in time counts as not ready. */
  checkTimeoutMs: int(10, 60_000).default(1000),
  rise: int(1, 100).default(2),
  fall: int(1, 100).default(3),
  /** How long one command may run before it is killed (and counted as failed). */
  commandTimeoutMs: int(100, 600_000).default(10_000),
  withdrawGraceMs: int(0, 600_000).default(1000),
});

/** cluster.discovery.etcd (docs/configuration.md, "Membership through etcd"). */
const etcdSchema = strictObject({
  endpoints: z
    .array(str('a URL such as "http://127.0.0.1:2379"'), { invalid_type_error: 'must be a list of URLs', required_error: 'is required' })
    .min(1, 'must list at least one endpoint'),
  prefix: str().startsWith('/', 'must start with "/"').optional(),
  ttlMs: int(1000, 600_000).default(3000),
  dialTimeoutMs: int(100, 60_000).default(2000),
  auth: strictObject({ username: str().min(1, 'must not be empty'), password: str().optional(), passwordFile: str('a file path').optional() }).optional(),
  tls: strictObject({ ca: str('a file path').optional(), cert: str('a file path').optional(), key: str('a file path').optional() }).optional(),
});

const discoverySchema = strictObject({ etcd: etcdSchema });

const clusterSchema = strictObject({
  name: str().regex(NAME, 'must be 1-63 characters of letters, digits, ".", "_" or "-"'),
  secret: str().optional(),
  secretFile: str('a file path').optional(),
  adminToken: str().optional(),
  adminTokenFile: str('a file path').optional(),
  heartbeatMs: int(10, 60_000).default(100),
  failureTimeoutMs: int(20, 600_000).default(500),
  snapshotTimeoutMs: int(0, 600_000).default(2000),
  drainTimeoutMs: int(0, 3_600_000).default(10_000),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    errorMap: () => ({ message: 'must be one of fatal, error, warn, info, debug, trace, silent' }),
  }).default('info'),
  tls: tlsSchema.optional(),
  stateDir: str('a directory path').min(1, 'must not be empty').optional(),
  announce: announceSchema.optional(),
  discovery: discoverySchema.optional(),
  // At least one node unless cluster.discovery is set (checked in load.ts, crossCheck).
  nodes: z.array(nodeSchema, { invalid_type_error: 'must be a list of nodes', required_error: 'is required' }).default([]),
});

const backendSchema = strictObject({
  address: str('"host:port"'),
  weight: z
    .number({ invalid_type_error: 'must be a number from 0 to 1000' })
    .min(0, 'must be a number from 0 to 1000')
    .max(1000, 'must be a number from 0 to 1000')
    .default(1),
});

const healthCheckSchema = strictObject({
  type: z.enum(['http', 'tcp', 'udp', 'none'], { errorMap: () => ({ message: 'must be one of http, tcp, udp, none' }) }),
  path: str().startsWith('/', 'must start with "/"').default('/healthz'),
  method: z.enum(['GET', 'HEAD', 'OPTIONS'], { errorMap: () => ({ message: 'must be one of GET, HEAD, OPTIONS' }) }).default('GET'),
  expectStatus: str().regex(/^[1-5]\d\d(-[1-5]\d\d)?$/, 'must be a status or a range like "200-399"').default('200-399'),
  intervalMs: int(50, 3_600_000).default(1000),
  timeoutMs: int(10, 600_000).default(1000),
  rise: int(1, 100).default(2),
  fall: int(1, 100).default(3),
  payload: str().optional(),
  expect: str().optional(),
});

const timeoutsSchema = strictObject({
  connectMs: int(1, 600_000).default(3000),
  headerMs: int(1, 600_000).default(10_000),
  idleMs: int(1, 86_400_000).default(60_000),
  requestMs: int(1, 86_400_000).default(60_000),
});

/** A route's timeouts: each unset one is the service's. */
const routeTimeoutsSchema = strictObject({
  connectMs: int(1, 600_000).optional(),
  headerMs: int(1, 600_000).optional(),
  idleMs: int(1, 86_400_000).optional(),
  requestMs: int(1, 86_400_000).optional(),
});

export const ALPN_PROTOCOLS = ['h2', 'http/1.1'] as const;
export const SESSION_TICKET_MODES = ['cluster', 'node', 'off'] as const;

const certificatePairSchema = strictObject({
  cert: str('a file path'),
  key: str('a file path'),
});

const acmeSchema = strictObject({
  directory: str('an https:// URL').regex(/^https:\/\/[^\s/]+/, 'must be an https:// URL (RFC 8555 section 6.1)'),
  email: str().regex(/^[^@\s]+@[^@\s]+\.[^@\s]+$/, 'must be an e-mail address'),
  domains: z
    .array(str(), { invalid_type_error: 'must be a list of domain names', required_error: 'is required' })
    .min(1, 'must list at least one domain'),
  caFile: str('a file path').optional(),
  /** The port the ACME server validates HTTP-01 on (80 by RFC 8555 section 8.3; a test server may differ). */
  challengePort: int(1, 65_535).default(80),
});

/** `services[].tls` (http services): this service terminates TLS (docs/tls.md). */
const serviceTlsSchema = strictObject({
  certificates: z
    .array(certificatePairSchema, { invalid_type_error: 'must be a list of { cert, key } file pairs' })
    .min(1, 'must list at least one certificate (or leave it out and use acme)')
    .optional(),
  acme: acmeSchema.optional(),
  alpn: z
    .array(z.enum(ALPN_PROTOCOLS, { errorMap: () => ({ message: 'must be h2 or http/1.1' }) }), { invalid_type_error: 'must be a list of h2, http/1.1' })
    .min(1, 'must list at least one protocol')
    .refine((l) => new Set(l).size === l.length, 'must not repeat a protocol')
    .default(['h2', 'http/1.1']),
  sessionTickets: z
    .enum(SESSION_TICKET_MODES, { errorMap: () => ({ message: 'must be one of cluster, node, off' }) })
    .default('cluster'),
});

export const PROTOCOLS = ['http', 'tcp', 'udp'] as const;
export const POLICIES = ['round-robin', 'least-connections', 'p2c', 'consistent-hash', 'random'] as const;

const serviceSchema = strictObject({
  name: str().regex(NAME, 'must be 1-63 characters of letters, digits, ".", "_" or "-"'),
  protocol: z.enum(PROTOCOLS, { errorMap: () => ({ message: 'must be one of http, tcp, udp' }) }),
  port: port(),
  vip: str('an IP address').optional(),
  flowKey: str().optional(),
  policy: z.enum(POLICIES, { errorMap: () => ({ message: `must be one of ${POLICIES.join(', ')}` }) }).default('round-robin'),
  flowIdleTimeoutMs: int(100, 86_400_000 * 7).optional(),
  maxFlows: int(1, 100_000_000).optional(),
  maxConnections: int(1, 10_000_000).default(10_000),
  proxyProtocol: z.enum(['v1', 'v2'], { errorMap: () => ({ message: 'must be v1 or v2' }) }).optional(),
  quicCidLength: int(0, 20).default(8),
  slowStartMs: int(0, 3_600_000).default(0),
  accessLog: z.boolean({ invalid_type_error: 'must be true or false' }).default(false),
  timeouts: timeoutsSchema.default({}),
  // At least one, unless an http service has routes (then they are the default route): load.ts.
  backends: z.array(backendSchema, { invalid_type_error: 'must be a list of backends', required_error: 'is required' }).optional(),
  healthCheck: healthCheckSchema.optional(),
  ...serviceRouteFields,
  routes: z
    .array(
      routeSchema({
        backends: z.array(backendSchema, { invalid_type_error: 'must be a list of backends' }).optional(),
        policy: z.enum(POLICIES, { errorMap: () => ({ message: `must be one of ${POLICIES.join(', ')}` }) }).optional(),
        flowKey: str().optional(),
        healthCheck: healthCheckSchema.optional(),
        timeouts: routeTimeoutsSchema.optional(),
      }),
      { invalid_type_error: 'must be a list of routes' },
    )
    .optional(),
  tls: serviceTlsSchema.optional(),
});

export const rawConfigSchema = strictObject({
  cluster: clusterSchema,
  services: z.array(serviceSchema, { invalid_type_error: 'must be a list of services' }).default([]),
});

export type RawConfig = z.output<typeof rawConfigSchema>;
type RawService = RawConfig['services'][number];
type RawNode = RawConfig['cluster']['nodes'][number];

/** A backend after its address was parsed. */
export interface BackendConfig {
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
}

export type NodeConfig = Readonly<RawNode>;
export type HealthCheckConfig = Readonly<NonNullable<RawService['healthCheck']>>;
export type TimeoutsConfig = Readonly<RawService['timeouts']>;
export type Protocol = (typeof PROTOCOLS)[number];
export type PolicyName = (typeof POLICIES)[number];
export type AlpnProtocol = (typeof ALPN_PROTOCOLS)[number];
export type SessionTicketMode = (typeof SESSION_TICKET_MODES)[number];

/** A certificate and its key, as absolute file paths. */
export interface CertificatePairConfig {
  readonly cert: string;
  readonly key: string;
}

export interface AcmeConfig {
  readonly directory: string;
  readonly email: string;
  readonly domains: readonly string[];
  /** Absolute path, or null. */
  readonly caFile: string | null;
  readonly challengePort: number;
}

/** `services[].tls` after loading: paths absolute, defaults applied. */
export interface ServiceTlsConfig {
  readonly certificates: readonly CertificatePairConfig[];
  readonly acme: AcmeConfig | null;
  readonly alpn: readonly AlpnProtocol[];
  readonly sessionTickets: SessionTicketMode;
}

export interface ServiceConfig
  extends Readonly<
    Omit<RawService, 'backends' | 'flowKey' | 'flowIdleTimeoutMs' | 'healthCheck' | 'timeouts' | 'maxFlows' | 'routes' | 'rateLimit' | 'requestHeaders' | 'responseHeaders' | 'tls'>
  > {
  readonly flowKey: string;
  readonly maxFlows: number;
  readonly flowIdleTimeoutMs: number;
  /** The default route's backends; empty when an http service has only routes. */
  readonly backends: readonly BackendConfig[];
  readonly healthCheck: HealthCheckConfig;
  readonly timeouts: TimeoutsConfig;
  /** L7 routes of an http service, tried in order (empty otherwise). */
  readonly routes: readonly RouteConfig[];
  /** The default route's rate limit and header rules. */
  readonly rateLimit: RateLimitConfig | null;
  readonly requestHeaders: HeaderRules | null;
  readonly responseHeaders: HeaderRules | null;
  /** Absent or null: cleartext (the loader always sets it; configs built in code may leave it out). */
  readonly tls?: ServiceTlsConfig | null;
}

/** One route, resolved: every field its service would give is filled in from the service. */
export interface RouteConfig {
  readonly name: string;
  /** Where its flows live in the table, its pool and its metrics: "SERVICE/ROUTE". */
  readonly flowService: string;
  readonly match: RouteMatch;
  readonly backends: readonly BackendConfig[];
  readonly policy: PolicyName;
  readonly flowKey: string;
  readonly healthCheck: HealthCheckConfig;
  readonly timeouts: TimeoutsConfig;
  readonly requestHeaders: HeaderRules | null;
  readonly responseHeaders: HeaderRules | null;
  readonly redirect: RedirectConfig | null;
  readonly rateLimit: RateLimitConfig | null;
}

export interface ClusterConfig {
  readonly name: string;
  /** Resolved from `secret` or `secretFile`. */
  readonly secret: string;
  /** Resolved from `adminToken` or `adminTokenFile`; null when neither is set (state-changing calls are then refused). */
  readonly adminToken: string | null;
  readonly heartbeatMs: number;
  readonly failureTimeoutMs: number;
  readonly snapshotTimeoutMs: number;
  readonly drainTimeoutMs: number;
  readonly logLevel: RawConfig['cluster']['logLevel'];
  readonly tls: { readonly cert: string; readonly key: string; readonly ca: string } | null;
  /** Absolute; each node keeps its state in its own subdirectory (`nodeStateDir`). Null when unset. */
  readonly stateDir: string | null;
  /** Null when the tier is not announced by a route watchdog. */
  readonly announce: AnnounceConfig | null;
  /** Membership and configuration through etcd; null when the file's nodes are the whole membership. */
  readonly discovery: DiscoveryConfig | null;
  readonly nodes: readonly NodeConfig[];
}

/** `cluster.discovery.etcd`, resolved: file paths absolute, the password read, the prefix ending in "/". */
export interface EtcdConfig {
  readonly endpoints: readonly string[];
  /** Default `/tandem/<cluster name>/`. */
  readonly prefix: string;
  readonly ttlMs: number;
  readonly dialTimeoutMs: number;
  readonly auth: { readonly username: string; readonly password: string } | null;
  readonly tls: { readonly ca: string | null; readonly cert: string | null; readonly key: string | null } | null;
}

export interface DiscoveryConfig {
  readonly etcd: EtcdConfig;
}

export type AnnounceConfig = Readonly<NonNullable<RawConfig['cluster']['announce']>>;

export interface Config {
  readonly cluster: ClusterConfig;
  readonly services: readonly ServiceConfig[];
  /** Where it was loaded from, for reloads; null for configs built in memory. */
  readonly source: string | null;
}
