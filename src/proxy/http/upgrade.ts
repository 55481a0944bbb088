/**
 * Upgrade requests (WebSocket, RFC 6455; any other RFC 9110 section 7.8 Upgrade): routed like any
 * request, then the connection becomes a byte tunnel to the flow's backend — directly when this
 * node serves the flow, through a dedicated authenticated peer stream otherwise. The request head
 * is written by hand and the backend's answer (101 or a refusal) goes back as raw bytes.
 *
 * Failover: an upgrade is a GET whose head is in memory, so a peer that closes before any answer
 * byte is skipped for the next owner, like an idempotent request (DESIGN.md section 1 step 5).
 */
import { connect as netConnect, type Socket } from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ProxyContext } from '../context.js';
import type { ServiceConfig } from '../../config/schema.js';
import type { FlowEntry } from '../../cluster/flow-entry.js';
import { normalizeAddress, formatHostPort } from '../../flowkey/index.js';
import { scanRequestHead, addProxyHeaders, viaEntry, requestHeadText, encodeFlowKey, decodeFlowKey, parseClient, H_SERVICE, H_FLOW_KEY, H_CLIENT, type RequestHead } from './headers.js';
import { endWithError, type HttpErrorKind } from './errors.js';
import type { ServiceMetrics } from './metrics.js';

/** What the router needs of its HTTP service. */
export interface UpgradeHost {
  readonly name: string;
  readonly config: ServiceConfig;
  readonly metrics: ServiceMetrics;
  keyFor(ip: string, port: number, head: RequestHead): string | null;
  scanClientHead(req: IncomingMessage): RequestHead;
}

type Outcome = 'ok' | 'no-response' | 'timeout' | 'client-gone';

function noop(): void {}

export class UpgradeRouter {
  readonly #ctx: ProxyContext;
  readonly #host: UpgradeHost;
  readonly #open = new Set<Duplex>();

  constructor(ctx: ProxyContext, host: UpgradeHost) {
    this.#ctx = ctx;
    this.#host = host;
  }

  /** Open tunnels (both ends counted). */
  get size(): number {
    return this.#open.size;
  }

  fromClient(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', noop);
    this.#client(req, socket, head).catch(() => socket.destroy());
  }

  fromPeer(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', noop);
    this.#peer(req, socket, head).catch(() => socket.destroy());
  }

  closeAll(): void {
    for (const s of this.#open) s.destroy();
    this.#open.clear();
  }

  async #client(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const host = this.#host;
    const { router, dataPlane, self } = this.#ctx;
    const raw = (socket as Partial<Socket>).remoteAddress;
    if (raw === undefined) return void socket.destroy();
    const ip = normalizeAddress(raw);
    const port = (socket as Partial<Socket>).remotePort ?? 0;
    const rh = host.scanClientHead(req);
    if (rh.hostCount > 1 || (rh.hostCount === 0 && req.httpVersion === '1.1')) return this.#fail(socket, 'bad-request');
    const key = host.keyFor(ip, port, rh);
    if (key === null) return this.#fail(socket, 'bad-request');
    let entry = router.lookup(host.name, key);
    addProxyHeaders(rh, viaEntry(req.httpVersion, self.id), ip, self.id);
    rh.headers.push('connection', 'upgrade', 'upgrade', rh.upgrade);
    const peerFields = [H_SERVICE, host.name, H_FLOW_KEY, encodeFlowKey(key), H_CLIENT, formatHostPort(ip, port)];
    const t = host.config.timeouts;
    const tried: string[] = [];
    let hops = router.hops(entry, false);
    let reowned = false;
    for (;;) {
      for (const hop of hops) {
        if (socket.destroyed) return;
        if (hop.kind === 'local') {
          host.metrics.forward('local');
          if (await this.#serveLocal(entry, req, rh, socket, head)) host.metrics.request(101, 'local', 0);
          return;
        }
        if (tried.includes(hop.id)) continue;
        host.metrics.forward(hop.id === entry.primary ? 'to_primary' : 'to_backup');
        let up: Duplex | null = null;
        try {
          up = await withTimeout(dataPlane.dial(hop.id, 'http'), t.connectMs);
        } catch {
          up = null;
        }
        let outcome: Outcome = 'no-response';
        if (up !== null) {
          const text = requestHeadText(req.method ?? 'GET', req.url ?? '/', rh.headers.concat(peerFields));
          outcome = await this.#splice(socket, up, text, head, t.requestMs + 2000, t.idleMs);
        }
        if (outcome === 'ok') return host.metrics.request(101, hop.id === entry.primary ? 'primary' : 'backup', 0);
        if (outcome === 'client-gone') return;
        if (outcome === 'timeout') return this.#fail(socket, 'backend-timeout');
        dataPlane.markSuspect(hop.id);
        host.metrics.failover();
        tried.push(hop.id);
      }
      if (reowned) break;
      reowned = true;
      entry = router.reown(entry);
      host.metrics.forward('reowned');
      hops = router.hops(entry, false);
    }
    this.#fail(socket, 'peer-unavailable');
  }

  async #peer(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const rh = scanRequestHead(req.rawHeaders, null, false, true);
    const key = rh.flowKey === undefined ? undefined : decodeFlowKey(rh.flowKey);
    if (key === undefined || rh.client === undefined || parseClient(rh.client) === undefined) return this.#fail(socket, 'bad-request');
    const entry = this.#ctx.router.lookup(this.#host.name, key);
    addProxyHeaders(rh, viaEntry(req.httpVersion, this.#ctx.self.id), null, this.#ctx.self.id);
    rh.headers.push('connection', 'upgrade', 'upgrade', rh.upgrade);
    if (await this.#serveLocal(entry, req, rh, socket, head)) this.#host.metrics.peerRequest(101);
  }

  /** Tunnels to the flow's backend; true once the backend answered. */
  async #serveLocal(entry: FlowEntry, req: IncomingMessage, rh: RequestHead, socket: Duplex, head: Buffer): Promise<boolean> {
    const host = this.#host;
    const pool = this.#ctx.pool(host.name);
    if (pool === undefined) return this.#fail(socket, 'no-backend'), false;
    const assigned = this.#ctx.router.assign(entry, (a) => pool.usable(a), (k) => pool.choose(k));
    const b = assigned.backend === null ? undefined : pool.get(assigned.backend);
    if (b === undefined) return this.#fail(socket, 'no-backend'), false;
    const t = host.config.timeouts;
    const state = pool.acquire(b.address);
    let up: Socket;
    try {
      up = await connectWithin(b.host, b.port, t.connectMs);
    } catch (err) {
      pool.release(state);
      pool.reportFailure(b.address, (err as Error).message === 'timeout' ? 'timeout' : 'connect');
      this.#fail(socket, (err as Error).message === 'timeout' ? 'backend-timeout' : 'backend-failed');
      return false;
    }
    up.setNoDelay(true);
    up.once('close', () => pool.release(state));
    const outcome = await this.#splice(socket, up, requestHeadText(req.method ?? 'GET', req.url ?? '/', rh.headers), head, t.requestMs, t.idleMs);
    if (outcome === 'ok') {
      this.#ctx.router.active(assigned.entry);
      return true;
    }
    if (outcome !== 'client-gone') {
      b.failures++;
      this.#fail(socket, outcome === 'timeout' ? 'backend-timeout' : 'backend-failed');
    }
    return false;
  }

  #fail(socket: Duplex, kind: HttpErrorKind): void {
    this.#host.metrics.error(kind);
    endWithError(socket, kind);
  }

  /**
   * Sends the head to `up` and waits for its first answer byte (within `waitMs`); then joins the two
   * streams. Nothing is written to the client before that byte, so a silent peer can be skipped.
   */
  #splice(client: Duplex, up: Duplex, text: string, head: Buffer, waitMs: number, idleMs: number): Promise<Outcome> {
    up.on('error', noop);
    up.write(text, 'latin1');
    if (head.length > 0) up.write(head);
    return new Promise<Outcome>((resolve) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        up.off('data', onData);
        up.off('close', onUpClose);
        client.off('close', onClientClose);
      };
      const timer = setTimeout(() => {
        cleanup();
        up.destroy();
        resolve('timeout');
      }, waitMs);
      const onData = (chunk: Buffer): void => {
        cleanup();
        up.pause();
        client.write(chunk);
        this.#join(client, up, idleMs);
        resolve('ok');
      };
      const onUpClose = (): void => {
        cleanup();
        resolve('no-response');
      };
      const onClientClose = (): void => {
        cleanup();
        up.destroy();
        resolve('client-gone');
      };
      up.on('data', onData);
      up.once('close', onUpClose);
      client.once('close', onClientClose);
    });
  }

  #join(a: Duplex, b: Duplex, idleMs: number): void {
    const open = this.#open;
    open.add(a);
    open.add(b);
    const close = (): void => {
      open.delete(a);
      open.delete(b);
      a.destroy();
      b.destroy();
    };
    a.once('close', close);
    b.once('close', close);
    // An idle tunnel is closed after idleMs of silence both ways (HAProxy's "timeout tunnel").
    for (const s of [a, b]) {
      const sock = s as Partial<Socket>;
      if (typeof sock.setTimeout === 'function') sock.setTimeout(idleMs, close);
    }
    a.pipe(b);
    b.pipe(a);
  }
}

function withTimeout<T extends Duplex>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      reject(new Error('timeout'));
    }, ms);
    p.then(
      (s) => {
        if (done) return void s.destroy();
        done = true;
        clearTimeout(timer);
        resolve(s);
      },
      (err: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        reject(err as Error);
      },
    );
  });
}

function connectWithin(host: string, port: number, ms: number): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const s = netConnect({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('timeout'));
    }, ms);
    s.once('connect', () => {
      clearTimeout(timer);
      s.off('error', onError);
      resolve(s);
    });
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    s.once('error', onError);
  });
}
