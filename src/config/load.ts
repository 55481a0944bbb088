/**
 * Config loading: file → YAML → schema → cross-checks (cross-check.ts) → resolved, frozen `Config`.
 * Every problem is collected in one pass and reported as `<path>: <problem>`; a config is either
 * valid whole or refused whole (reload relies on that).
 */
import { readFileSync, existsSync, statSync } from 'node:fs';
import { resolve, dirname, isAbsolute } from 'node:path';
import { parseDocument } from 'yaml';
import type { ZodIssue } from 'zod';
import { ErrorCodes } from '../errors.js';
import { crossCheck, isObj, list } from './cross-check.js';
import { rawConfigSchema, type Config, type EtcdConfig, type RawConfig, type ServiceConfig, type Protocol } from './schema.js';
import { parseHostPort } from './address.js';
import { resolveRoutes } from './routes-check.js';
import { defaultFlowKey, formatFlowKeySpec } from '../flowkey/spec.js';
import { inspectPair } from '../tls/pem.js';
import { ConfigError, formatIssue, formatPath, type ConfigIssue } from './issues.js';

export { ConfigError, formatIssue, formatPath, type ConfigIssue };

const DEFAULT_IDLE_MS: Record<Protocol, number> = { http: 600_000, tcp: 600_000, udp: 30_000 };
/** A UDP flow holds a backend socket (a file descriptor and an ephemeral port) on its owner. */
const DEFAULT_MAX_FLOWS: Record<Protocol, number> = { http: 1_000_000, tcp: 1_000_000, udp: 50_000 };

/**
 * What a caller may do to the parsed document before validation: `tandem start --host` adds its
 * own node, a node applies services pushed through etcd (src/config/layers.ts).
 */
export type RawTransform = (raw: unknown) => unknown;

/** Reads and validates a config file. Throws ConfigError listing every problem. */
export function loadConfigFile(file: string, transform?: RawTransform): Config {
  const path = resolve(file);
  if (!existsSync(path)) throw new ConfigError(ErrorCodes.CONFIG_NOT_FOUND, [{ path: file, message: 'file not found' }]);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(ErrorCodes.CONFIG_NOT_FOUND, [{ path: file, message: `cannot read: ${(err as Error).message}` }]);
  }
  return parseConfigText(text, file, dirname(path), path, transform);
}

/** Validates YAML text; `baseDir` resolves relative secretFile/tls paths. */
export function parseConfigText(text: string, name = '(config)', baseDir = process.cwd(), source: string | null = null, transform?: RawTransform): Config {
  if (text.trim() === '' || /^\s*(#.*)?(\n\s*(#.*)?)*$/.test(text)) {
    throw new ConfigError(ErrorCodes.CONFIG_EMPTY, [{ path: name, message: 'file is empty' }]);
  }
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((e) => {
      const pos = e.linePos?.[0];
      const where = pos ? ` (line ${pos.line}, column ${pos.col})` : '';
      return { path: name, message: `not valid YAML: ${e.message.split('\n')[0]}${where}` };
    });
    throw new ConfigError(ErrorCodes.CONFIG_NOT_YAML, issues);
  }
  const parsed: unknown = doc.toJS();
  if (parsed === null || parsed === undefined) throw new ConfigError(ErrorCodes.CONFIG_EMPTY, [{ path: name, message: 'file is empty' }]);
  return validateConfig(transform ? transform(parsed) : parsed, { baseDir, source });
}

/** Validates an already-parsed object (tests and the demo build configs in memory). */
export function validateConfig(raw: unknown, opts: { baseDir?: string; source?: string | null } = {}): Config {
  const baseDir = opts.baseDir ?? process.cwd();
  const issues: ConfigIssue[] = [];
  const parsed = rawConfigSchema.safeParse(raw);
  if (!parsed.success) issues.push(...zodIssues(parsed.error.issues));
  issues.push(...crossCheck(raw));
  const secrets = resolveSecrets(raw, baseDir, issues);
  checkCertificateFiles(raw, baseDir, issues, Date.now());
  if (issues.length > 0 || !parsed.success) throw new ConfigError(ErrorCodes.CONFIG_INVALID, dedupe(issues));
  return freeze(build(parsed.data, secrets, baseDir, opts.source ?? null));
}

function zodIssues(list: readonly ZodIssue[]): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of list) {
    if (issue.code === 'invalid_union') {
      for (const inner of issue.unionErrors) out.push(...zodIssues(inner.issues));
      continue;
    }
    const message = issue.code === 'invalid_type' && issue.received === 'undefined' ? 'is required' : issue.message;
    out.push({ path: formatPath(issue.path), message });
  }
  return out;
}

function dedupe(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const k = formatIssue(i);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

interface Secrets {
  secret: string;
  adminToken: string | null;
  /** cluster.discovery.etcd.auth, password resolved. */
  etcdPassword: string | null;
}

function readSecretFile(path: string, baseDir: string, at: string, issues: ConfigIssue[]): string | null {
  const full = isAbsolute(path) ? path : resolve(baseDir, path);
  try {
    return readFileSync(full, 'utf8').trim();
  } catch {
    issues.push({ path: at, message: `cannot read file "${path}"` });
    return null;
  }
}

function resolveSecrets(raw: unknown, baseDir: string, issues: ConfigIssue[]): Secrets {
  const out: Secrets = { secret: '', adminToken: null, etcdPassword: null };
  if (!isObj(raw) || !isObj(raw.cluster)) return out;
  const c = raw.cluster;
  const hasSecret = typeof c.secret === 'string';
  const hasFile = typeof c.secretFile === 'string';
  if (hasSecret && hasFile) issues.push({ path: 'cluster.secretFile', message: 'set either secret or secretFile, not both' });
  else if (!hasSecret && !hasFile && c.secret === undefined && c.secretFile === undefined) {
    issues.push({ path: 'cluster.secret', message: 'is required (or cluster.secretFile)' });
  } else {
    const value = hasSecret ? (c.secret as string) : hasFile ? readSecretFile(c.secretFile as string, baseDir, 'cluster.secretFile', issues) : null;
    if (value !== null) {
      if (value.length < 16) issues.push({ path: hasSecret ? 'cluster.secret' : 'cluster.secretFile', message: 'must be at least 16 characters' });
      out.secret = value;
    }
  }
  if (typeof c.adminToken === 'string' && typeof c.adminTokenFile === 'string') {
    issues.push({ path: 'cluster.adminTokenFile', message: 'set either adminToken or adminTokenFile, not both' });
  } else if (typeof c.adminToken === 'string' || typeof c.adminTokenFile === 'string') {
    const token = typeof c.adminToken === 'string' ? c.adminToken : readSecretFile(c.adminTokenFile as string, baseDir, 'cluster.adminTokenFile', issues);
    if (token !== null && token.length < 16) {
      issues.push({ path: typeof c.adminToken === 'string' ? 'cluster.adminToken' : 'cluster.adminTokenFile', message: 'must be at least 16 characters' });
    }
    out.adminToken = token;
  }
  if (typeof c.stateDir === 'string' && c.stateDir !== '') {
    const dir = isAbsolute(c.stateDir) ? c.stateDir : resolve(baseDir, c.stateDir);
    // It need not exist yet (the node makes its subdirectory), but it must not be something else.
    if (existsSync(dir) && !statSync(dir).isDirectory()) issues.push({ path: 'cluster.stateDir', message: `not a directory: ${c.stateDir}` });
  }
  if (isObj(c.tls)) {
    for (const k of ['cert', 'key', 'ca'] as const) {
      const p = c.tls[k];
      if (typeof p === 'string' && !existsSync(isAbsolute(p) ? p : resolve(baseDir, p))) {
        issues.push({ path: `cluster.tls.${k}`, message: `file not found: ${p}` });
      }
    }
  }
  const etcd = isObj(c.discovery) && isObj(c.discovery.etcd) ? c.discovery.etcd : null;
  if (etcd !== null && isObj(etcd.auth)) {
    const a = etcd.auth;
    if (typeof a.password === 'string' && a.passwordFile === undefined) out.etcdPassword = a.password;
    else if (typeof a.passwordFile === 'string' && a.password === undefined) {
      out.etcdPassword = readSecretFile(a.passwordFile, baseDir, 'cluster.discovery.etcd.auth.passwordFile', issues);
    }
  }
  if (etcd !== null && isObj(etcd.tls)) {
    for (const k of ['ca', 'cert', 'key'] as const) {
      const p = etcd.tls[k];
      if (typeof p === 'string' && !existsSync(isAbsolute(p) ? p : resolve(baseDir, p))) {
        issues.push({ path: `cluster.discovery.etcd.tls.${k}`, message: `file not found: ${p}` });
      }
    }
  }
  return out;
}

/**
 * Reads every `services[].tls.certificates[]` pair and reports what is wrong with it (tls/pem.ts):
 * unreadable, unparsable, a key that does not match, a certificate expired or not yet valid.
 */
function checkCertificateFiles(raw: unknown, baseDir: string, issues: ConfigIssue[], now: number): void {
  if (!isObj(raw)) return;
  list(raw.services).forEach((s, i) => {
    if (!isObj(s) || !isObj(s.tls)) return;
    list(s.tls.certificates).forEach((pair, j) => {
      if (!isObj(pair) || typeof pair.cert !== 'string' || typeof pair.key !== 'string') return;
      const at = `services[${i}].tls.certificates[${j}]`;
      const cert = readPem(pair.cert, baseDir, `${at}.cert`, issues);
      const key = readPem(pair.key, baseDir, `${at}.key`, issues);
      if (cert === null || key === null) return;
      for (const p of inspectPair(cert, key, now).problems) issues.push({ path: `${at}.${p.file}`, message: p.message });
    });
    const acme = s.tls.acme;
    if (isObj(acme) && typeof acme.caFile === 'string') readPem(acme.caFile, baseDir, `services[${i}].tls.acme.caFile`, issues);
  });
}

function readPem(path: string, baseDir: string, at: string, issues: ConfigIssue[]): Buffer | null {
  try {
    return readFileSync(isAbsolute(path) ? path : resolve(baseDir, path));
  } catch (err) {
    const code = (err as { code?: string }).code;
    issues.push({ path: at, message: code === 'ENOENT' ? `file not found: ${path}` : `cannot read file "${path}" (${code ?? (err as Error).message})` });
    return null;
  }
}

function build(raw: RawConfig, secrets: Secrets, baseDir: string, source: string | null): Config {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const resolveBackends = (list: RawConfig['services'][number]['backends']) =>
    (list ?? []).map((b) => {
      const hp = parseHostPort(b.address)!;
      return { address: b.address, host: hp.host, port: hp.port, weight: b.weight };
    });
  const services: ServiceConfig[] = raw.services.map((s) => {
    const { flowKey, flowIdleTimeoutMs, healthCheck, backends, maxFlows, tls, routes: _routes, rateLimit: _rl, requestHeaders: _rq, responseHeaders: _rs, ...rest } = s;
    const base = {
      ...rest,
      tls: tls
        ? {
            certificates: (tls.certificates ?? []).map((c) => ({ cert: abs(c.cert), key: abs(c.key) })),
            acme: tls.acme ? { directory: tls.acme.directory, email: tls.acme.email, domains: tls.acme.domains, caFile: tls.acme.caFile ? abs(tls.acme.caFile) : null, challengePort: tls.acme.challengePort } : null,
            alpn: tls.alpn,
            sessionTickets: tls.sessionTickets,
          }
        : null,
      maxFlows: maxFlows ?? DEFAULT_MAX_FLOWS[s.protocol],
      flowKey: flowKey ?? formatFlowKeySpec(defaultFlowKey(s.protocol)),
      flowIdleTimeoutMs: flowIdleTimeoutMs ?? DEFAULT_IDLE_MS[s.protocol],
      backends: resolveBackends(backends),
      healthCheck: healthCheck ?? defaultHealthCheck(s.protocol),
    };
    return { ...base, ...resolveRoutes(s, base, resolveBackends) };
  });
  const c = raw.cluster;
  return {
    cluster: {
      name: c.name,
      secret: secrets.secret,
      adminToken: secrets.adminToken,
      heartbeatMs: c.heartbeatMs,
      failureTimeoutMs: c.failureTimeoutMs,
      snapshotTimeoutMs: c.snapshotTimeoutMs,
      drainTimeoutMs: c.drainTimeoutMs,
      logLevel: c.logLevel,
      tls: c.tls ? { cert: abs(c.tls.cert), key: abs(c.tls.key), ca: abs(c.tls.ca) } : null,
      stateDir: c.stateDir ? abs(c.stateDir) : null,
      announce: c.announce ?? null,
      discovery: c.discovery ? { etcd: buildEtcd(c.discovery.etcd, c.name, secrets.etcdPassword, abs) } : null,
      nodes: c.nodes,
    },
    services,
    source,
  };
}

function buildEtcd(e: NonNullable<RawConfig['cluster']['discovery']>['etcd'], cluster: string, password: string | null, abs: (p: string) => string): EtcdConfig {
  const prefix = e.prefix ?? `/tandem/${cluster}/`;
  return {
    endpoints: e.endpoints,
    prefix: prefix.endsWith('/') ? prefix : `${prefix}/`,
    ttlMs: e.ttlMs,
    dialTimeoutMs: e.dialTimeoutMs,
    auth: e.auth ? { username: e.auth.username, password: password ?? '' } : null,
    tls: e.tls ? { ca: e.tls.ca ? abs(e.tls.ca) : null, cert: e.tls.cert ? abs(e.tls.cert) : null, key: e.tls.key ? abs(e.tls.key) : null } : null,
  };
}

function defaultHealthCheck(protocol: Protocol): ServiceConfig['healthCheck'] {
  // A connect check is safe for any TCP backend; an HTTP path is not (many backends have none).
  // UDP has no connect, and a probe needs a payload the backend answers, so none by default.
  return {
    type: protocol === 'udp' ? 'none' : 'tcp',
    path: '/healthz',
    method: 'GET',
    expectStatus: '200-399',
    intervalMs: 1000,
    timeoutMs: 1000,
    rise: 2,
    fall: 3,
  };
}

function freeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) freeze(v);
  }
  return value;
}
