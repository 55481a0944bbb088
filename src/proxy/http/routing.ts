/**
 * The routes of one http service as the engine uses them (docs/http.md, "Routes"): each route and
 * the default route become a Lane — where its flows live (`SERVICE/ROUTE`, or the service's name),
 * its flow-key spec, header rules, redirect and rate-limit key — and one RouteMatcher picks the
 * lane of a request. Built once per config (start and every reload), read per request.
 */
import type { ServiceConfig } from '../../config/schema.js';
import type { HeaderRules, RateLimitConfig, RedirectConfig } from '../../config/routes-schema.js';
import { parseFlowKeySpec, type FlowKeySpec } from '../../flowkey/index.js';
import { RouteMatcher, type MatchRequest } from '../../routes/matcher.js';
import { parseLimitKey, type LimitKeySpec } from '../../ratelimit/key.js';

export interface Lane {
  /** The flow table's service name of the lane: "SERVICE/ROUTE", or SERVICE for the default route. */
  readonly flowService: string;
  /** The route's name, '' for the default route (metrics). */
  readonly route: string;
  readonly spec: FlowKeySpec;
  readonly flowHeader: string | null;
  readonly flowCookie: boolean;
  /** The flow key spec is the service's: the head scan already found what the key needs. */
  readonly sameKey: boolean;
  readonly requestHeaders: HeaderRules | null;
  readonly responseHeaders: HeaderRules | null;
  readonly redirect: RedirectConfig | null;
  readonly rateLimit: RateLimitConfig | null;
  readonly limitKey: LimitKeySpec | null;
}

function lane(flowService: string, route: string, flowKey: string, serviceKey: string, o: Pick<Lane, 'requestHeaders' | 'responseHeaders' | 'redirect' | 'rateLimit'>): Lane {
  const spec = parseFlowKeySpec(flowKey);
  return {
    flowService,
    route,
    spec,
    flowHeader: spec.kind === 'header' ? spec.name : null,
    flowCookie: spec.kind === 'cookie',
    sameKey: flowKey === serviceKey,
    ...o,
    limitKey: o.rateLimit === null ? null : parseLimitKey(o.rateLimit.key),
  };
}

export class Routing {
  /** The default route's lane (always there: its flow key is the service's). */
  readonly base: Lane;
  /** What a request that matches no route gets: the default lane, or null when it has no backends (→ 404). */
  readonly fallback: Lane | null;
  readonly #lanes: Lane[];
  readonly #matcher: RouteMatcher | null;
  readonly #byFlow = new Map<string, Lane>();
  /** Flow services keyed by `connection`: their flows end with the client connection. */
  readonly connectionKeyed: readonly string[];

  constructor(cfg: ServiceConfig) {
    this.base = lane(cfg.name, '', cfg.flowKey, cfg.flowKey, { requestHeaders: cfg.requestHeaders, responseHeaders: cfg.responseHeaders, redirect: null, rateLimit: cfg.rateLimit });
    this.fallback = cfg.backends.length > 0 ? this.base : null;
    this.#byFlow.set(this.base.flowService, this.base);
    this.#lanes = cfg.routes.map((r) => lane(r.flowService, r.name, r.flowKey, cfg.flowKey, r));
    for (const l of this.#lanes) this.#byFlow.set(l.flowService, l);
    this.#matcher = cfg.routes.length > 0 ? new RouteMatcher(cfg.routes.map((r) => r.match)) : null;
    this.connectionKeyed = [...this.#byFlow.values()].filter((l) => l.spec.kind === 'connection').map((l) => l.flowService);
  }

  get routed(): boolean {
    return this.#matcher !== null;
  }

  /** The lane of a request, or null (no route and no default backends). */
  choose(req: MatchRequest): Lane | null {
    if (this.#matcher === null) return this.fallback;
    const i = this.#matcher.match(req);
    return i < 0 ? this.fallback : this.#lanes[i];
  }

  /** The lane a peer named in a forwarded request's OPEN head. */
  byFlowService(name: string): Lane | undefined {
    return this.#byFlow.get(name);
  }

  lanes(): Iterable<Lane> {
    return this.#byFlow.values();
  }
}
