/**
 * The pools the dashboard shows: each service's default pool under its name, then each route's
 * under SERVICE/ROUTE (the name its flows, its pool and its metrics have, docs/http.md "Routes").
 * A service that has only routes has no default pool to show.
 */
import type { RouteConfig, ServiceConfig } from '../../config/schema.js';

export interface Pool {
  readonly name: string;
  readonly service: ServiceConfig;
  readonly route: RouteConfig | null;
}

export function pools(services: readonly ServiceConfig[]): Pool[] {
  const out: Pool[] = [];
  for (const s of services) {
    if (s.backends.length > 0 || s.routes.length === 0) out.push({ name: s.name, service: s, route: null });
    for (const r of s.routes) out.push({ name: r.flowService, service: s, route: r });
  }
  return out;
}

export function poolNames(services: readonly ServiceConfig[]): string[] {
  return pools(services).map((p) => p.name);
}

/** "host api.test · path /v1/ · GET · header x-env=blue"; "everything" when the route matches all. */
export function describeMatch(r: RouteConfig): string {
  const m = r.match;
  const parts: string[] = [];
  if (m.host !== undefined) parts.push(`host ${m.host}`);
  if (m.pathPrefix !== undefined) parts.push(`path ${m.pathPrefix}`);
  if (m.method !== undefined) parts.push(m.method);
  for (const [k, v] of Object.entries(m.header ?? {})) parts.push(`header ${k}=${v}`);
  return parts.length === 0 ? 'everything' : parts.join(' · ');
}
