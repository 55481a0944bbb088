/**
 * Checks of routes, rate limits, header rules and redirects that span fields (load.ts runs them
 * on the raw input, beside its own cross-checks), and the resolution of routes into RouteConfig.
 */
import { covers, type RouteMatch } from '../routes/matcher.js';
import { parseHostPort } from './address.js';
import { HEADER_NAME, resolveHeaderRules, resolveMatch, resolveRateLimit } from './routes-schema.js';
import { isFlowKeyAllowed, flowKeysFor } from '../flowkey/spec.js';
import type { BackendConfig, RawConfig, RouteConfig, ServiceConfig } from './schema.js';

export interface Issue {
  readonly path: string;
  readonly message: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Framing and connection management stay the proxy's: rules may not touch these fields. */
const RESERVED = new Set(['connection', 'content-length', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'keep-alive', 'proxy-connection', 'host']);
const BAD_VALUE = /[\r\n\0]/;
const RATE_KEY = /^(client-ip|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+|cookie:[!#$%&'*+.^_`|~0-9A-Za-z-]+)$/;

/** Backend addresses parse and are not listed twice. */
export function backendIssues(at: string, backends: unknown): Issue[] {
  const issues: Issue[] = [];
  const seen = new Map<string, number>();
  list(backends).forEach((b, j) => {
    if (!isObj(b) || typeof b.address !== 'string') return;
    if (!parseHostPort(b.address)) {
      issues.push({ path: `${at}.backends[${j}].address`, message: `"${b.address}" is not "host:port" with a port from 1 to 65535` });
      return;
    }
    const first = seen.get(b.address);
    if (first !== undefined) issues.push({ path: `${at}.backends[${j}].address`, message: `duplicate backend (also backends[${first}])` });
    else seen.set(b.address, j);
  });
  return issues;
}

function headerRuleIssues(at: string, rules: unknown): Issue[] {
  const issues: Issue[] = [];
  if (!isObj(rules)) return issues;
  for (const op of ['set', 'add'] as const) {
    const m = rules[op];
    if (!isObj(m)) continue;
    for (const [name, value] of Object.entries(m)) {
      if (!HEADER_NAME.test(name)) issues.push({ path: `${at}.${op}.${name}`, message: 'is not a valid header name' });
      else if (RESERVED.has(name.toLowerCase())) issues.push({ path: `${at}.${op}.${name}`, message: 'is managed by the proxy and cannot be set by a rule' });
      if (typeof value === 'string' && BAD_VALUE.test(value)) issues.push({ path: `${at}.${op}.${name}`, message: 'must not contain CR, LF or NUL' });
    }
  }
  list(rules.remove).forEach((name, i) => {
    if (typeof name !== 'string') return;
    if (!HEADER_NAME.test(name)) issues.push({ path: `${at}.remove[${i}]`, message: `"${name}" is not a valid header name` });
    else if (RESERVED.has(name.toLowerCase())) issues.push({ path: `${at}.remove[${i}]`, message: `"${name}" is managed by the proxy and cannot be removed by a rule` });
  });
  return issues;
}

function redirectIssues(at: string, r: unknown): Issue[] {
  if (!isObj(r) || typeof r.to !== 'string') return [];
  const to = r.to;
  if (BAD_VALUE.test(to)) return [{ path: `${at}.to`, message: 'must not contain CR, LF or NUL' }];
  const probe = to.replaceAll('{host}', 'h.invalid').replaceAll('{path}', '/p');
  if (probe.startsWith('/') && !probe.startsWith('//')) return [];
  try {
    const u = new URL(probe);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return [{ path: `${at}.to`, message: 'must be an http or https URL, or a path starting with "/"' }];
  } catch {
    return [{ path: `${at}.to`, message: 'must be an http or https URL, or a path starting with "/"' }];
  }
  return [];
}

function rateLimitIssues(at: string, r: unknown): Issue[] {
  if (!isObj(r) || typeof r.key !== 'string' || RATE_KEY.test(r.key)) return [];
  return [{ path: `${at}.key`, message: 'must be client-ip, header:NAME or cookie:NAME' }];
}

/** The checks of one service's routes and L7 settings; `at` is "services[i]". */
export function routeIssues(at: string, s: Obj): Issue[] {
  const issues: Issue[] = [];
  const http = s.protocol === 'http';
  const routes = list(s.routes);
  if (!http) {
    for (const k of ['routes', 'rateLimit', 'requestHeaders', 'responseHeaders'] as const) {
      if (s[k] !== undefined) issues.push({ path: `${at}.${k}`, message: 'only allowed for protocol http' });
    }
  }
  const hasBackends = Array.isArray(s.backends) && s.backends.length > 0;
  if (!hasBackends && !(http && routes.length > 0) && (s.backends === undefined || Array.isArray(s.backends))) {
    issues.push({ path: `${at}.backends`, message: s.backends === undefined ? 'is required' : 'must list at least one backend' });
  }
  issues.push(...headerRuleIssues(`${at}.requestHeaders`, s.requestHeaders), ...headerRuleIssues(`${at}.responseHeaders`, s.responseHeaders));
  issues.push(...rateLimitIssues(`${at}.rateLimit`, s.rateLimit));
  if (!http) return issues;
  const names = new Map<string, number>();
  const matches: Array<RouteMatch | null> = [];
  routes.forEach((r, j) => {
    const rat = `${at}.routes[${j}]`;
    if (!isObj(r)) return void matches.push(null);
    if (typeof r.name === 'string') {
      const first = names.get(r.name);
      if (first !== undefined) issues.push({ path: `${rat}.name`, message: `duplicate route name "${r.name}" (also routes[${first}].name)` });
      else names.set(r.name, j);
    }
    const rb = Array.isArray(r.backends) && r.backends.length > 0;
    if (r.redirect !== undefined && r.backends !== undefined) issues.push({ path: `${rat}.backends`, message: 'a redirect route takes no backends' });
    else if (r.redirect === undefined && !rb) issues.push({ path: `${rat}.backends`, message: 'must list at least one backend (or set redirect)' });
    issues.push(...backendIssues(rat, r.backends));
    if (typeof r.flowKey === 'string' && !isFlowKeyAllowed('http', r.flowKey)) {
      issues.push({ path: `${rat}.flowKey`, message: `"${r.flowKey}" is not allowed for protocol http (allowed: ${flowKeysFor('http').join(', ')})` });
    }
    issues.push(...headerRuleIssues(`${rat}.requestHeaders`, r.requestHeaders), ...headerRuleIssues(`${rat}.responseHeaders`, r.responseHeaders));
    issues.push(...redirectIssues(`${rat}.redirect`, r.redirect), ...rateLimitIssues(`${rat}.rateLimit`, r.rateLimit));
    const m = r.match === undefined ? {} : r.match;
    const match = isObj(m) ? safeMatch(m) : null;
    matches.push(match);
    if (match === null) return;
    for (let k = 0; k < j; k++) {
      const earlier = matches[k];
      if (earlier === null || earlier === undefined || !covers(earlier, match)) continue;
      const name = isObj(routes[k]) && typeof (routes[k] as Obj).name === 'string' ? `"${String((routes[k] as Obj).name)}" ` : '';
      issues.push({ path: `${rat}.match`, message: `unreachable: every request it matches is matched first by route ${name}(routes[${k}])` });
      break;
    }
  });
  return issues;
}

function safeMatch(m: Obj): RouteMatch | null {
  const ok =
    (m.host === undefined || typeof m.host === 'string') &&
    (m.pathPrefix === undefined || typeof m.pathPrefix === 'string') &&
    (m.method === undefined || typeof m.method === 'string') &&
    (m.header === undefined || (isObj(m.header) && Object.values(m.header).every((v) => typeof v === 'string')));
  return ok ? resolveMatch(m) : null;
}

type RawService = RawConfig['services'][number];

/** The L7 part of a resolved service: routes with every default filled in from the service. */
export function resolveRoutes(s: RawService, base: Pick<ServiceConfig, 'policy' | 'flowKey' | 'healthCheck' | 'timeouts'>, backends: (list: RawService['backends']) => BackendConfig[]): Pick<ServiceConfig, 'routes' | 'rateLimit' | 'requestHeaders' | 'responseHeaders'> {
  const routes: RouteConfig[] = (s.routes ?? []).map((r) => ({
    name: r.name,
    flowService: `${s.name}/${r.name}`,
    match: resolveMatch(r.match),
    backends: backends(r.backends),
    policy: r.policy ?? base.policy,
    flowKey: r.flowKey ?? base.flowKey,
    healthCheck: r.healthCheck ?? base.healthCheck,
    timeouts: { ...base.timeouts, ...Object.fromEntries(Object.entries(r.timeouts ?? {}).filter(([, v]) => v !== undefined)) },
    requestHeaders: resolveHeaderRules(r.requestHeaders),
    responseHeaders: resolveHeaderRules(r.responseHeaders),
    redirect: r.redirect ?? null,
    rateLimit: resolveRateLimit(r.rateLimit),
  }));
  return {
    routes,
    rateLimit: resolveRateLimit(s.rateLimit),
    requestHeaders: resolveHeaderRules(s.requestHeaders),
    responseHeaders: resolveHeaderRules(s.responseHeaders),
  };
}
