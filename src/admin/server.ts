/**
 * The admin API (docs/design.md §6) on host:adminPort. Routes are registered by the node, so
 * later features (backends, drain, reload, the dashboard's event stream) add routes without
 * touching this file. State-changing routes require the admin token as `Authorization: Bearer T`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { ErrorCodes, TandemError } from '../errors.js';

export interface AdminRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly body: unknown;
  readonly raw: IncomingMessage;
}

export type AdminReply =
  | { status: number; json: unknown; headers?: Record<string, string> }
  | { status: number; text: string; contentType?: string; headers?: Record<string, string> }
  /** The handler took over the response (event streams). */
  | { stream: true };

export type AdminHandler = (req: AdminRequest, res: ServerResponse) => AdminReply | Promise<AdminReply>;

interface Route {
  readonly method: string;
  readonly path: string;
  readonly handler: AdminHandler;
  readonly mutates: boolean;
}

const MAX_BODY = 64 * 1024;

export class AdminServer {
  readonly #host: string;
  readonly #port: number;
  readonly #log: Logger;
  #token: string | null;
  #routes = new Map<string, Route>();
  #server: Server | null = null;
  readonly stats = { requests: 0, unauthorized: 0, badRequests: 0 };

  constructor(opts: { host: string; port: number; token: string | null; logger: Logger }) {
    this.#host = opts.host;
    this.#port = opts.port;
    this.#token = opts.token;
    this.#log = opts.logger;
  }

  set token(token: string | null) {
    this.#token = token;
  }

  get(path: string, handler: AdminHandler): void {
    this.#routes.set(`GET ${path}`, { method: 'GET', path, handler, mutates: false });
  }

  /** A state-changing route: refused with 401 without the right token. */
  post(path: string, handler: AdminHandler): void {
    this.#routes.set(`POST ${path}`, { method: 'POST', path, handler, mutates: true });
  }

  get address(): { host: string; port: number } {
    const a = this.#server?.address();
    return { host: this.#host, port: a && typeof a === 'object' ? a.port : this.#port };
  }

  async start(): Promise<void> {
    const server = createServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => void this.#handle(req, res));
    server.keepAliveTimeout = 5000;
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // Bound to the node's host only, never the wildcard address (docs/design.md §5).
      server.listen(this.#port, this.#host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  #authorized(req: IncomingMessage): boolean {
    if (this.#token === null) return false;
    const h = req.headers.authorization ?? '';
    const m = /^Bearer (.+)$/.exec(h);
    if (!m) return false;
    // Compare digests so that neither length nor content leaks through timing.
    const a = createHash('sha256').update(m[1]).digest();
    const b = createHash('sha256').update(this.#token).digest();
    return timingSafeEqual(a, b);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.stats.requests++;
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://admin');
    } catch {
      this.stats.badRequests++;
      return send(res, { status: 400, json: { error: 'bad request target' } });
    }
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    const route = this.#routes.get(`${method} ${url.pathname}`);
    if (!route) {
      const other = [...this.#routes.values()].some((r) => r.path === url.pathname);
      req.resume();
      return send(res, other ? { status: 405, json: { error: 'method not allowed' } } : { status: 404, json: { error: 'not found' } });
    }
    if (route.mutates && !this.#authorized(req)) {
      this.stats.unauthorized++;
      req.resume();
      return send(res, {
        status: 401,
        json: { error: this.#token === null ? 'no admin token is configured (cluster.adminToken)' : 'missing or wrong admin token' },
        headers: { 'www-authenticate': 'Bearer realm="tandem"' },
      });
    }
    let body: unknown = undefined;
    if (method === 'POST') {
      try {
        body = await readJson(req);
      } catch (err) {
        this.stats.badRequests++;
        return send(res, { status: 400, json: { error: (err as Error).message } });
      }
    }
    try {
      const reply = await route.handler({ method, path: url.pathname, query: url.searchParams, body, raw: req }, res);
      if ('stream' in reply) return;
      send(res, reply);
    } catch (err) {
      this.#log.error({ err, path: url.pathname }, 'admin handler failed');
      if (!res.headersSent) send(res, { status: 500, json: { error: 'internal error' } });
      else res.destroy();
    }
  }
}

function send(res: ServerResponse, reply: Exclude<AdminReply, { stream: true }>): void {
  const headers: Record<string, string> = { 'cache-control': 'no-store', ...(reply.headers ?? {}) };
  let payload: string;
  if ('json' in reply) {
    payload = `${JSON.stringify(reply.json, null, 2)}\n`;
    headers['content-type'] = 'application/json; charset=utf-8';
  } else {
    payload = reply.text;
    headers['content-type'] = reply.contentType ?? 'text/plain; charset=utf-8';
  }
  headers['content-length'] = String(Buffer.byteLength(payload));
  res.writeHead(reply.status, headers);
  res.end(res.req?.method === 'HEAD' ? undefined : payload);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new TandemError(ErrorCodes.BAD_REQUEST, 'request body too large');
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new TandemError(ErrorCodes.BAD_REQUEST, 'request body is not valid JSON');
  }
}
