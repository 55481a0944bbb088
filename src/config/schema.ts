/**
 * The one config schema: it gives both the TypeScript types (`Config`, `ServiceConfig`, …) and the
 * validator. Every key of DESIGN.md section 6 is here under its contract name; later keys extend it.
 *
 * Why preprocess for unknown keys: zod's refinements do not run on an object whose fields already
 * failed, and the contract is "every problem in one run". A preprocess step sees the raw object
 * first, so unknown keys are reported alongside type errors in the same pass.
 */
import { z } from 'zod';
import { didYouMean } from './suggest.js';

const PORT_MSG = 'must be an integer from 1 to 65535';

function strictObject<T extends z.ZodRawShape>(shape: T) {
  const known = Object.keys(shape);
  return z.preprocess((value, ctx) => {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      for (const key of Object.keys(value)) {
        if (!known.includes(key)) {
          const hint = didYouMean(key, known);
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            path: [key],
            message: `unknown key${hint ? ` (did you mean "${hint}"?)` : ''}`,
          });
        }
      }
    }
    return value;
  }, z.object(shape, { invalid_type_error: 'must be a mapping', required_error: 'is required' }));
}

const str = (what = 'a string') => z.string({ invalid_type_error: `must be ${what}`, required_error: 'is required' });

const int = (min: number, max: number, msg = `must be an integer from ${min} to ${max}`) =>
  z
    .number({ invalid_type_error: msg, required_error: 'is required' })
    .int(msg)
    .min(min, msg)
    .max(max, msg);

const port = () => int(1, 65535, PORT_MSG);

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
  nodes: z
    .array(nodeSchema, { invalid_type_error: 'must be a list of nodes', required_error: 'is required' })
    .min(1, 'must list at least one node'),
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
  backends: z
    .array(backendSchema, { invalid_type_error: 'must be a list of backends', required_error: 'is required' })
    .min(1, 'must list at least one backend'),
  healthCheck: healthCheckSchema.optional(),
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

export interface ServiceConfig
  extends Readonly<Omit<RawService, 'backends' | 'flowKey' | 'flowIdleTimeoutMs' | 'healthCheck' | 'timeouts' | 'maxFlows'>> {
  readonly flowKey: string;
  readonly maxFlows: number;
  readonly flowIdleTimeoutMs: number;
  readonly backends: readonly BackendConfig[];
  readonly healthCheck: HealthCheckConfig;
  readonly timeouts: TimeoutsConfig;
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
  readonly nodes: readonly NodeConfig[];
}

export type AnnounceConfig = Readonly<NonNullable<RawConfig['cluster']['announce']>>;

export interface Config {
  readonly cluster: ClusterConfig;
  readonly services: readonly ServiceConfig[];
  /** Where it was loaded from, for reloads; null for configs built in memory. */
  readonly source: string | null;
}
