/**
 * Serving a flow on this node (docs/design.md, the routing rule, step 3): choose the flow's backend through the
 * router (the recorded one while usable, so that affinity survives node failure) and connect to it.
 *
 * Connect failures, by design:
 * - the flow already had a recorded backend and it refuses → the connection fails (the client is
 *   closed). Affinity comes first; the backend leaves the flow only when health checks or outlier
 *   ejection make the pool call it unusable, after which assign() moves the flow.
 * - the backend was chosen just now → try another choice (up to 3 backends), recording the one
 *   that connects, because nothing depends on the first choice yet.
 * Every connect is reported to the pool's passive health (reportSuccess / reportFailure), so
 * enough refusals in a row eject the backend and assign() moves its flows.
 */
import { connect, type Socket } from 'node:net';
import { TandemError, ErrorCodes } from '../../errors.js';
import type { FlowEntry } from '../../cluster/flow-entry.js';
import type { BackendState } from '../../upstream/pool.js';
import type { ServiceConfig } from '../../config/schema.js';
import type { ProxyContext } from '../context.js';

export type LocalFailure = 'no-backend' | 'backend-failed' | 'backend-timeout';

export type LocalResult =
  | { readonly ok: true; readonly socket: Socket; readonly entry: FlowEntry; readonly address: string; readonly state: BackendState | undefined }
  | { readonly ok: false; readonly reason: LocalFailure };

const MAX_FRESH_TRIES = 3;

/** Opens a TCP connection with a connect timeout; half-open allowed, Nagle off (we forward whole reads). */
export function dialBackend(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new TandemError(ErrorCodes.BACKEND_TIMEOUT, `connect to ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (err: Error) => {
      clearTimeout(timer);
      reject(new TandemError(ErrorCodes.BACKEND_FAILED, `connect to ${host}:${port} failed: ${err.message}`, { cause: err }));
    };
    s.once('error', onError);
    s.once('connect', () => {
      clearTimeout(timer);
      s.off('error', onError);
      resolve(s);
    });
  });
}

/** Chooses the flow's backend and connects to it. */
export async function connectLocal(ctx: ProxyContext, cfg: ServiceConfig, entry: FlowEntry): Promise<LocalResult> {
  const pool = ctx.pool(cfg.name);
  if (!pool) return { ok: false, reason: 'no-backend' };
  const recorded = ctx.router.lookup(entry.service, entry.key).backend;
  const tried: string[] = [];
  let current = entry;
  let last: LocalFailure = 'no-backend';
  for (let i = 0; i < MAX_FRESH_TRIES; i++) {
    const r = ctx.router.assign(current, (a) => !tried.includes(a) && pool.usable(a), (k) => pool.choose(k));
    current = r.entry;
    if (r.backend === null || tried.includes(r.backend)) return { ok: false, reason: last };
    const address = r.backend;
    tried.push(address);
    const b = pool.get(address);
    const [host, port] = b ? [b.host, b.port] : splitHostPort(address);
    try {
      const socket = await dialBackend(host, port, cfg.timeouts.connectMs);
      pool.reportSuccess(address);
      return { ok: true, socket, entry: current, address, state: pool.acquire(address) };
    } catch (err) {
      const timedOut = err instanceof TandemError && err.code === ErrorCodes.BACKEND_TIMEOUT;
      pool.reportFailure(address, timedOut ? 'timeout' : 'connect');
      last = timedOut ? 'backend-timeout' : 'backend-failed';
      ctx.logger.debug({ service: cfg.name, backend: address, err: (err as Error).message }, 'tcp backend connect failed');
      // Affinity first: a flow that had this backend before this connection does not move here.
      if (address === recorded) return { ok: false, reason: last };
    }
  }
  return { ok: false, reason: last };
}

function splitHostPort(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return [host, Number(address.slice(i + 1))];
}
