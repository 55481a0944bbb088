/**
 * Which addresses a service listens on at this node, and listening on more than one.
 *
 * A service always listens on the node's `host`. With `vip` set it also listens on that shared
 * service address, which every node of the tier carries on its loopback and a router spreads
 * over the nodes by ECMP (docs/deploy-ecmp.md). Every protocol asks `listenAddresses()`, so the
 * rule lives here once.
 *
 * The proxies were written around one listening socket each. Rather than teach each of them to
 * hold several, the extra addresses are siblings of that one socket:
 *  - stream servers (net, http, https, tls): a sibling net.Server with the same socket options
 *    accepts on the extra address and hands every connection to the main server's 'connection'
 *    event, exactly as node:net does for its own accepts; the main server's `close()` closes the
 *    siblings too, and its callback waits for them.
 *  - datagram sockets: a sibling socket receives on the extra address and re-emits each message on
 *    the main socket; replies must leave from the address the client sent to (clients and stateful
 *    firewalls drop anything else, RFC 4787 section 4), so the main socket's `send()` picks the
 *    socket that last heard from the destination, and its `close()` closes the siblings.
 * With a single address both helpers are exactly `listen` / `bind`.
 */
import { Server, type ServerOpts } from 'node:net';
import { isIP } from 'node:net';
import { createSocket, type Socket as DatagramSocket } from 'node:dgram';

/** The addresses a service binds on this node: the node's host first, then the service's vip. */
export function listenAddresses(host: string, service: { readonly vip?: string }): readonly string[] {
  const vip = service.vip;
  return vip === undefined || vip === host ? [host] : [host, vip];
}

/** The accept-time options node:net keeps on every Server (set from its constructor's options). */
interface AcceptOptions {
  allowHalfOpen?: boolean;
  pauseOnConnect?: boolean;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
}

/**
 * `server.listen({host, port})` on every address; `onListening` once all listen. A failure on any
 * address closes the others and is emitted as the main server's 'error' (as `listen` does).
 */
export function listenStream(server: Server, addresses: readonly string[], port: number, onListening: () => void): void {
  const [first, ...rest] = addresses;
  if (first === undefined) throw new RangeError('listenStream needs at least one address');
  if (rest.length === 0) {
    server.listen({ host: first, port }, onListening);
    return;
  }
  const o = server as Server & AcceptOptions;
  const opts: ServerOpts = {
    allowHalfOpen: o.allowHalfOpen,
    pauseOnConnect: o.pauseOnConnect,
    noDelay: o.noDelay,
    keepAlive: o.keepAlive,
    // node:net stores it in seconds; the option is in milliseconds.
    keepAliveInitialDelay: (o.keepAliveInitialDelay ?? 0) * 1000,
  };
  const siblings = rest.map(() => {
    const s = new Server(opts, (socket) => server.emit('connection', socket));
    s.maxConnections = server.maxConnections;
    return s;
  });
  const closeMain = server.close.bind(server);
  let closing = false;
  const closeAll = (cb?: (err?: Error) => void): Server => {
    closing = true;
    const done = siblings.map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve())));
    return closeMain((err?: Error) => {
      void Promise.all(done).then(() => cb?.(err));
    });
  };
  server.close = closeAll;
  let pending = addresses.length;
  let failed = false;
  const stopAll = (): void => {
    failed = true;
    for (const s of siblings) if (s.listening) s.close();
    if (server.listening) closeMain();
  };
  // The main server's own failure reaches the caller through its 'error' as usual.
  const onMainError = (): void => {
    if (!failed) stopAll();
  };
  const fail = (err: Error): void => {
    if (failed) return;
    stopAll();
    server.off('error', onMainError);
    server.emit('error', err);
  };
  const listening = (): void => {
    if (failed) return stopAll();
    if (--pending > 0) return;
    server.off('error', onMainError);
    if (!closing) onListening();
  };
  server.once('error', onMainError);
  server.once('listening', listening);
  server.listen({ host: first, port });
  siblings.forEach((s, i) => {
    s.once('error', fail);
    s.listen({ host: rest[i], port }, () => {
      s.off('error', fail);
      // Later errors of an accepting socket are the main server's to report.
      s.on('error', (err) => server.emit('error', err));
      listening();
    });
  });
}

/**
 * How many client endpoints a datagram socket remembers the receiving address of, and for how
 * long after their last datagram: a flood of source addresses costs at most ~30 MB, and an
 * endpoint forgotten (or silent that long) is answered from the host address.
 */
const REPLY_ROUTES = { maxEndpoints: 262_144, idleMs: 600_000 };
/** A remembered endpoint is moved to the young end of the LRU at most this often. */
const TOUCH_MS = 1000;

/**
 * `socket.bind(port, address)` on every address; `onBound` once all are bound. A failure on any
 * address closes the others and is emitted as the main socket's 'error' (as `bind` does).
 * Replies (`send(msg, port, address, cb)`) leave from the socket that last received from that
 * endpoint, remembered within `limits` (least recently heard forgotten first).
 */
export function bindDatagram(
  socket: DatagramSocket,
  addresses: readonly string[],
  port: number,
  onBound: () => void,
  limits: { readonly maxEndpoints: number; readonly idleMs: number } = REPLY_ROUTES,
): void {
  const [first, ...rest] = addresses;
  if (first === undefined) throw new RangeError('bindDatagram needs at least one address');
  if (rest.length === 0) {
    socket.bind(port, first, onBound);
    return;
  }
  const routes = new Map<string | number, { via: DatagramSocket; at: number }>();
  let fromSibling = false;
  const siblings = rest.map((a) => {
    const s = createSocket({ type: isIP(a) === 6 ? 'udp6' : 'udp4' });
    s.on('message', (msg, rinfo) => {
      const key = endpointKey(rinfo.address, rinfo.port);
      const now = Date.now();
      const r = routes.get(key);
      if (r === undefined || r.via !== s || now - r.at >= TOUCH_MS) {
        // Re-inserted so that insertion order stays least recently heard first.
        if (r === undefined) routes.set(key, { via: s, at: now });
        else {
          r.via = s;
          r.at = now;
          routes.delete(key);
          routes.set(key, r);
        }
        for (const [k, v] of routes) {
          if (routes.size <= limits.maxEndpoints && v.at > now - limits.idleMs) break;
          routes.delete(k);
        }
      }
      fromSibling = true;
      try {
        socket.emit('message', msg, rinfo);
      } finally {
        fromSibling = false;
      }
    });
    return s;
  });
  // A datagram to the main socket's own address takes the endpoint's route back to it.
  socket.prependListener('message', (_msg, rinfo) => {
    if (!fromSibling && routes.size > 0) routes.delete(endpointKey(rinfo.address, rinfo.port));
  });
  const sendMain = socket.send.bind(socket) as (...args: unknown[]) => void;
  // Fixed parameters (no rest array per datagram). The (msg, port, address, callback) form is the
  // one the proxies use; any other goes out of the main socket as is.
  socket.send = ((msg: unknown, port?: unknown, address?: unknown, callback?: unknown, a5?: unknown, a6?: unknown): void => {
    if (typeof port === 'number' && typeof address === 'string') {
      const r = routes.get(endpointKey(address, port));
      if (r && r.at > Date.now() - limits.idleMs) return r.via.send(msg as Buffer, port, address, callback as (err: Error | null) => void);
    }
    return sendMain(msg, port, address, callback, a5, a6);
  }) as DatagramSocket['send'];
  const closeMain = socket.close.bind(socket);
  socket.close = (cb?: () => void): DatagramSocket => {
    routes.clear();
    for (const s of siblings) closeQuietly(s);
    return closeMain(cb);
  };
  let pending = addresses.length;
  let failed = false;
  const fail = (err: Error): void => {
    if (failed) return;
    failed = true;
    for (const s of siblings) closeQuietly(s);
    socket.emit('error', err);
  };
  const bound = (): void => {
    if (--pending === 0 && !failed) onBound();
  };
  socket.bind(port, first, bound);
  siblings.forEach((s, i) => {
    s.once('error', fail);
    s.bind(port, rest[i], () => {
      s.off('error', fail);
      s.on('error', (err) => socket.emit('error', err));
      bound();
    });
  });
}

function closeQuietly(s: DatagramSocket): void {
  try {
    s.close();
  } catch {
    /* not bound yet or already closed */
  }
}

/** A number for IPv4 endpoints (no string per datagram), the text otherwise. */
function endpointKey(address: string, port: number): string | number {
  let n = 0;
  let part = 0;
  let dots = 0;
  for (let i = 0; i < address.length; i++) {
    const c = address.charCodeAt(i);
    if (c === 46) {
      n = n * 256 + part;
      part = 0;
      dots++;
    } else if (c >= 48 && c <= 57) part = part * 10 + (c - 48);
    else return `${address}|${port}`;
  }
  if (dots !== 3) return `${address}|${port}`;
  return (n * 256 + part) * 65536 + port;
}
