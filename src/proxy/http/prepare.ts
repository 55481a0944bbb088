/**
 * What happens to an HTTP request head before the forwarding loop sees it (docs/http.md, "Errors"
 * and "Routes"): the checks RFC 9110/9112 ask of a proxy, the route (routing.ts), the route's
 * cluster-wide rate limit, an ACME HTTP-01 answer, the flow key, and the head written for the
 * next hop. One per http service, swapped with its config on reload; the same steps for an
 * HTTP/1.1 request, an HTTP/2 stream (the next hop speaks HTTP/1.1) and a head a peer forwarded.
 *
 * Each method fills the exchange and returns null, or the error kind the exchange is answered
 * with. A request this node answers itself (no route, over the limit, a redirect, a challenge)
 * also returns null, with the answer recorded on the exchange for its turn (service.ts).
 */
import type { AcmeFeed, ProxyContext } from '../context.js';
import type { ServiceConfig } from '../../config/schema.js';
import { httpFlowKey, parseFlowKeySpec, type FlowKeySpec } from '../../flowkey/index.js';
import { isTandemError, ErrorCodes } from '../../errors.js';
import type { HttpParser } from './parser.js';
import { Body, isTargetAllowed, requestBody, scanRequest, viaEntry, writeRequestHead, parseClient, type RequestHead } from './head.js';
import type { Exchange } from './exchange.js';
import { FLAG_CLOSE, FLAG_HTTP10, type PeerHead } from './peer-head.js';
import type { HttpErrorKind } from './errors.js';
import { Routing, type Lane } from './routing.js';
import type { H2RequestHead } from './h2-head.js';
import { normalizeHost, normalizeTarget } from '../../routes/normalize.js';
import type { MatchRequest } from '../../routes/matcher.js';
import { applyHeaderRules, rawHeader, redirectLocation } from '../../routes/header-rules.js';
import { limitKey } from '../../ratelimit/key.js';

const ACME_CHALLENGE_PREFIX = '/.well-known/acme-challenge/';

export class RequestPrep {
  readonly #ctx: ProxyContext;
  readonly #selfId: string;
  /** This node's Via entry on responses, and per ingress node the pair an owner appends. */
  readonly #via: string;
  readonly #peerVia = new Map<string, string>();
  /** The node's ACME manager, which answers HTTP-01 challenges on every http service. */
  readonly #acme: AcmeFeed | undefined;
  #spec: FlowKeySpec;
  #flowHeader: string | null = null;
  #flowCookie = false;
  #routing: Routing;
  /** The Forwarded/X-Forwarded-Proto value this listener's requests carry. */
  proto: 'http' | 'https' = 'http';
  /** Reused for httpFlowKey, which is synchronous. */
  readonly #src = { remoteAddress: '', remotePort: 0, headers: {} as Record<string, string | string[] | undefined> };
  /** Reused for each match: the request as the matcher sees it. */
  readonly #req = new MatchReq();

  constructor(ctx: ProxyContext, cfg: ServiceConfig) {
    this.#ctx = ctx;
    this.#selfId = ctx.self.id;
    this.#via = viaEntry('1.1', ctx.self.id);
    this.#acme = ctx.tls?.acme;
    this.#spec = this.#applySpec(cfg);
    this.#routing = new Routing(cfg);
  }

  get routing(): Routing {
    return this.#routing;
  }

  update(cfg: ServiceConfig): void {
    this.#spec = this.#applySpec(cfg);
    this.#routing = new Routing(cfg);
  }

  /** A client's HTTP/1.x request head. */
  client(ex: Exchange, p: HttpParser, ip: string, port: number): HttpErrorKind | null {
    const minor = p.versionMinor;
    ex.method = p.method;
    ex.url = p.url;
    ex.http10 = minor === 0;
    ex.version = minor === 0 ? '1.0' : '1.1';
    ex.closeWanted = !p.keepAlive;
    ex.via = this.#via;
    // RFC 9110 section 15.6.6: this is an HTTP/1.x listener.
    if (p.versionMajor !== 1) return 'version-not-supported';
    if (ex.method === 'CONNECT') return 'method-not-allowed';
    if (ex.method === '' || !isTargetAllowed(ex.method, ex.url)) return 'bad-request';
    const head = (ex.head = scanRequest(p.headers, this.#flowHeader, this.#flowCookie));
    // RFC 9112 section 6.1: Transfer-Encoding in an HTTP/1.0 request is faulty framing.
    if (minor === 0 && head.chunked) return 'bad-request';
    // RFC 9112 section 3.2: exactly one Host in HTTP/1.1, at most one before.
    if (head.hostCount > 1 || (head.hostCount === 0 && minor === 1)) return 'bad-request';
    ex.upgrade = p.upgrade;
    return this.#routed(ex, p.headers, head, ip, port);
  }

  /**
   * An HTTP/2 stream's head (h2-stream.ts): the same checks, route, key and head for the next hop
   * as an HTTP/1.1 request's. The next hop speaks HTTP/1.1: a body of unknown length goes chunked.
   */
  h2(ex: Exchange, h: H2RequestHead, bodyUnknownLength: boolean): HttpErrorKind | null {
    ex.method = h.method;
    ex.url = h.path;
    ex.version = '2';
    ex.via = this.#via;
    // RFC 9113 section 8.5: CONNECT opens a tunnel, which tandem does not do (as on HTTP/1.1).
    if (ex.method === 'CONNECT') return 'method-not-allowed';
    if (!isTargetAllowed(ex.method, ex.url)) return 'bad-request';
    const head = (ex.head = scanRequest(h.fields, this.#flowHeader, this.#flowCookie));
    if (head.contentLength < 0 && bodyUnknownLength) head.chunked = true;
    return this.#routed(ex, h.fields, head, ex.clientIp, ex.clientPort);
  }

  /** A head a peer forwarded: the flow and client from the OPEN frame, the fields from the parsed head. */
  forwarded(ex: Exchange, p: HttpParser, h: PeerHead, peer: string): HttpErrorKind | null {
    ex.method = p.method;
    ex.url = p.url;
    ex.http10 = (h.flags & FLAG_HTTP10) !== 0;
    ex.version = '1.1';
    ex.closeWanted = (h.flags & FLAG_CLOSE) !== 0;
    ex.ingress = peer;
    let via = this.#peerVia.get(peer);
    if (via === undefined) this.#peerVia.set(peer, (via = `${this.#via}, ${viaEntry('1.1', peer)}`));
    ex.via = via;
    const client = parseClient(h.client);
    if (ex.method === 'CONNECT') return 'method-not-allowed';
    // A peer always writes HTTP/1.1 request lines (head.ts): anything else did not come from tandem.
    if (client === undefined || h.key === '' || p.versionMajor !== 1 || p.versionMinor !== 1 || ex.method === '' || !isTargetAllowed(ex.method, ex.url)) return 'bad-request';
    ex.clientIp = client.ip;
    ex.clientPort = client.port;
    ex.key = h.key;
    // The ingress chose the route; this node serves from that route's pool.
    const lane = this.#routing.byFlowService(h.service);
    if (lane === undefined) return 'unknown-service';
    ex.lane = lane;
    const head = (ex.head = scanRequest(p.headers, null, false));
    if (head.hostCount > 1) return 'bad-request';
    ex.body = requestBody(head);
    ex.upgrade = p.upgrade;
    ex.text = writeRequestHead(ex.method, ex.url, p.headers, head, this.#via, null, this.#selfId, ex.upgrade);
    return null;
  }

  /** Route, answers of this node, flow key and the head for the next hop (HTTP/1.1 and HTTP/2 alike). */
  #routed(ex: Exchange, fields: readonly string[], head: RequestHead, ip: string, port: number): HttpErrorKind | null {
    const lane = this.#routing.routed ? this.#route(ex, fields) : this.#routing.fallback;
    ex.body = requestBody(head);
    if (ex.upgrade && ex.body !== Body.NONE) return 'bad-request';
    // HTTP-01 (RFC 8555 section 8.3): a token the tier's ACME order waits on is answered by
    // whichever node the validator reaches; any other path under the prefix goes to the backend,
    // which may run ACME of its own.
    if (this.#acme !== undefined && ex.url.startsWith(ACME_CHALLENGE_PREFIX) && (ex.method === 'GET' || ex.method === 'HEAD')) {
      ex.challenge = this.#acme.challengeResponse(ex.url);
      if (ex.challenge !== null) return null;
    }
    // Answered by this node in the exchange's turn (serve): no route, over the limit, a redirect.
    if (lane === null) return null;
    ex.lane = lane;
    if (lane.limitKey !== null && !this.#admit(ex, lane, ip, fields)) return null;
    if (lane.redirect !== null) {
      ex.location = redirectLocation(lane.redirect.to, rawHeader(fields, 'host') ?? '', ex.url);
      return null;
    }
    const key = lane.sameKey ? this.#key(this.#spec, ip, port, head) : this.#key(lane.spec, ip, port, scanRequest(fields, lane.flowHeader, lane.flowCookie));
    if (key === null) return 'bad-request';
    ex.key = key;
    let out = lane.requestHeaders === null ? fields : applyHeaderRules(fields, lane.requestHeaders);
    // RFC 9112 section 3.2: the head goes on as HTTP/1.1, which needs a Host; an HTTP/1.0 client
    // may have sent none — then it is empty, as for a target without an authority.
    if (head.hostCount === 0) out = [...out, 'Host', ''];
    ex.text = writeRequestHead(ex.method, ex.url, out, head, viaEntry(ex.version, this.#selfId), ip, this.#selfId, ex.upgrade, this.proto);
    return null;
  }

  /** The route of a client request: normalised host (an absolute-form target's authority wins) and path. */
  #route(ex: Exchange, fields: readonly string[]): Lane | null {
    const t = normalizeTarget(ex.url);
    const req = this.#req;
    req.raw = fields;
    req.host = t.host ?? normalizeHost(rawHeader(fields, 'host'));
    req.path = t.path;
    req.method = ex.method;
    const lane = this.#routing.choose(req);
    req.raw = EMPTY_FIELDS;
    return lane;
  }

  /** The lane's cluster-wide rate limit (docs/rate-limits.md); false when the request is over it. */
  #admit(ex: Exchange, lane: Lane, ip: string, raw: readonly string[]): boolean {
    const limiter = this.#ctx.limiter?.(lane.flowService);
    if (limiter === undefined) return true;
    const d = limiter.take(limitKey(lane.limitKey!, ip, raw), Date.now());
    if (d.ok) return true;
    ex.retryAfterS = d.retryAfterS;
    return false;
  }

  /** Flow key of a client request, or null for a key that fails the hygiene rules (→ 400). */
  #key(spec: FlowKeySpec, ip: string, port: number, head: RequestHead): string | null {
    const src = this.#src;
    src.remoteAddress = ip;
    src.remotePort = port;
    if (spec.kind === 'header') src.headers[spec.name] = head.flowValue;
    else if (spec.kind === 'cookie') src.headers.cookie = head.cookie;
    try {
      return httpFlowKey(spec, src);
    } catch (err) {
      if (isTandemError(err, ErrorCodes.BAD_REQUEST)) return null;
      throw err;
    }
  }

  #applySpec(cfg: ServiceConfig): FlowKeySpec {
    const spec = parseFlowKeySpec(cfg.flowKey);
    this.#flowHeader = spec.kind === 'header' ? spec.name : null;
    this.#flowCookie = spec.kind === 'cookie';
    this.#src.headers = {};
    return spec;
  }
}

const EMPTY_FIELDS: readonly string[] = [];

/** The request as the matcher sees it; one per service, refilled per request. */
class MatchReq implements MatchRequest {
  host = '';
  path = '';
  method = '';
  raw: readonly string[] = EMPTY_FIELDS;
  header(name: string): string | undefined {
    return rawHeader(this.raw, name);
  }
}
