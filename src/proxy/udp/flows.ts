/**
 * Per-flow state of the UDP proxy, both kinds bounded in count and expired when idle:
 *
 *  - FlowSockets (on the owner): one dgram socket per flow, `connect()`ed to the flow's backend.
 *    A connected UDP socket only receives datagrams from its peer address (the kernel filters,
 *    POSIX connect(2) for SOCK_DGRAM), and each flow has its own local port, so a backend reply
 *    names its flow without any parsing (NGINX's stream proxy also keeps one upstream socket per
 *    client session). A flow may have aliases: other ids (a QUIC server's connection ids) that
 *    reach the same socket.
 *  - RecentClients (on the ingress node): the client's latest address per flow key, so that a
 *    reply goes to where the client is now (a QUIC client keyed by connection id may have moved,
 *    RFC 9000 section 9). Only `quic-cid` needs it: under `connection` and `client-ip` the
 *    socket's identity includes the client's ip:port, so the address in the reply is exact.
 *
 * Both are Maps used as LRU lists: a touch is delete + set, so insertion order is recency order,
 * the eviction victim is the first key, and the idle sweep stops at the first live entry.
 * Nothing queues without bound: a flow buffers at most `maxPending` datagrams while its socket
 * connects, then drops and counts.
 */
import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import type { ClientAddress } from './encap.js';
import type { DropReason, EvictReason } from './metrics.js';

export interface BackendTarget {
  readonly address: string;
  readonly host: string;
  readonly port: number;
}

export interface UdpFlow {
  /** The socket's identity: the flow key, or ip:port under `client-ip` (see service.ts). */
  readonly id: string;
  /** The flow key of the replicated entry. */
  readonly key: string;
  /** The key of the flow's latest client datagram: `key` or one of `aliases`. */
  lastKey: string;
  /** Other ids that reach this socket (a QUIC server's connection ids, service.ts). */
  readonly aliases: string[];
  readonly backend: string;
  /** Where the client was when it sent the flow's latest datagram. */
  client: ClientAddress;
  /** The node that received the client's latest datagram: replies go back through it. */
  ingress: string;
  lastActive: number;
  readonly socket: Socket;
  /** Datagrams waiting for connect(); null once connected. */
  pending: Buffer[] | null;
  closed: boolean;
  /** Opaque handle of the caller (the pool's backend state, for active counts). */
  readonly tag: unknown;
}

export interface FlowSocketsOptions {
  maxFlows: number;
  idleMs: number;
  /** Datagrams a flow may buffer while its socket connects (default 16). */
  maxPending?: number;
  onReply(flow: UdpFlow, msg: Buffer): void;
  onClose(flow: UdpFlow, reason: EvictReason | 'replaced' | 'error' | 'stop'): void;
  onDrop(reason: DropReason): void;
  now?: () => number;
}

/** Sweep period: a quarter of the idle timeout, within 100 ms .. 1 s. */
function sweepMs(idleMs: number): number {
  return Math.max(100, Math.min(1000, Math.floor(idleMs / 4)));
}

/** Aliases one flow may have: a QUIC server issues a handful of connection ids per connection. */
const MAX_ALIASES_PER_FLOW = 8;

export class FlowSockets {
  readonly #flows = new Map<string, UdpFlow>();
  /** Alias id → flow; bounded by maxFlows too, and cleaned when the flow closes. */
  readonly #aliases = new Map<string, UdpFlow>();
  readonly #o: FlowSocketsOptions;
  readonly #now: () => number;
  #max: number;
  #idleMs: number;
  #timer: NodeJS.Timeout | null = null;
  /** Latest activity of any flow, for drain. */
  #lastActivity = 0;

  constructor(opts: FlowSocketsOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#max = opts.maxFlows;
    this.#idleMs = opts.idleMs;
  }

  get size(): number {
    return this.#flows.size;
  }

  get lastActivity(): number {
    return this.#lastActivity;
  }

  /** The flow reached by `id`, its own or an alias. */
  get(id: string): UdpFlow | undefined {
    return this.#flows.get(id) ?? this.#aliases.get(id);
  }

  /** Makes `id` reach `flow`'s socket too (false when `id` already names a flow of its own). */
  alias(id: string, flow: UdpFlow): boolean {
    if (flow.closed || this.#flows.has(id)) return false;
    if (this.#aliases.get(id) === flow) return true;
    while (this.#aliases.size >= this.#max && this.#aliases.size > 0) {
      const first = this.#aliases.keys().next();
      if (first.done) break;
      this.#aliases.delete(first.value);
    }
    if (flow.aliases.length >= MAX_ALIASES_PER_FLOW) this.#aliases.delete(flow.aliases.shift()!);
    flow.aliases.push(id);
    this.#aliases.set(id, flow);
    return true;
  }

  /** Starts the idle sweep. */
  start(): void {
    this.#arm();
  }

  /** A reload: new bounds apply at once (a lower maxFlows evicts the least recently used). */
  configure(maxFlows: number, idleMs: number): void {
    this.#max = maxFlows;
    const rearm = idleMs !== this.#idleMs;
    this.#idleMs = idleMs;
    while (this.#flows.size > this.#max) this.#evictOldest();
    if (rearm && this.#timer) this.#arm();
  }

  /**
   * Sends a client datagram of flow `key` to `backend` through the flow's socket, creating it (and
   * evicting the least recently used flow when full) or replacing it when the backend changed.
   */
  send(id: string, key: string, backend: BackendTarget, client: ClientAddress, ingress: string, payload: Buffer, tag?: () => unknown): void {
    const now = this.#now();
    let flow = this.get(id);
    if (flow && flow.backend !== backend.address) {
      this.#close(flow, 'replaced');
      flow = undefined;
    }
    if (flow) {
      this.#flows.delete(flow.id);
      this.#flows.set(flow.id, flow);
    } else {
      while (this.#flows.size >= this.#max && this.#flows.size > 0) this.#evictOldest();
      const made = this.#open(id, key, backend, client, ingress, tag?.());
      if (!made) return;
      flow = made;
    }
    flow.client = client;
    flow.ingress = ingress;
    flow.lastKey = key;
    flow.lastActive = now;
    this.#lastActivity = now;
    if (flow.pending) {
      if (flow.pending.length >= (this.#o.maxPending ?? 16)) this.#o.onDrop('pending-full');
      else flow.pending.push(payload);
      return;
    }
    this.#write(flow, payload);
  }

  /** Closes flows idle for idleMs or more; returns how many. */
  sweep(): number {
    const cutoff = this.#now() - this.#idleMs;
    let n = 0;
    for (const flow of this.#flows.values()) {
      if (flow.lastActive > cutoff) break; // LRU order: everything after is newer
      this.#close(flow, 'idle');
      n++;
    }
    return n;
  }

  /** Closes every flow (stop). */
  closeAll(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    for (const flow of [...this.#flows.values()]) this.#close(flow, 'stop');
    this.#aliases.clear();
  }

  #arm(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = setInterval(() => this.sweep(), sweepMs(this.#idleMs)).unref();
  }

  /**
   * A live iterator over the LRU order. A fresh `values().next()` per eviction walks every slot
   * freed since V8 last rehashed the Map (quadratic under churn, as the flow table found); a
   * persistent cursor has passed them already. New and bumped flows go to the end, so the cursor
   * always yields the oldest flow; at the end it starts over.
   */
  #cursor: IterableIterator<UdpFlow> | null = null;

  #evictOldest(): void {
    for (let pass = 0; pass < 2; pass++) {
      this.#cursor ??= this.#flows.values();
      const next = this.#cursor.next();
      if (!next.done) {
        this.#close(next.value, 'lru');
        return;
      }
      this.#cursor = null;
    }
  }

  #open(id: string, key: string, backend: BackendTarget, client: ClientAddress, ingress: string, tag: unknown, retry = true): UdpFlow | null {
    let socket: Socket;
    try {
      socket = createSocket({ type: isIP(backend.host) === 6 ? 'udp6' : 'udp4' });
    } catch {
      this.#o.onDrop('socket-error');
      return null;
    }
    const flow: UdpFlow = { id, key, lastKey: key, aliases: [], backend: backend.address, client, ingress, lastActive: this.#now(), socket, pending: [], closed: false, tag };
    socket.on('message', (msg) => {
      if (flow.closed) return;
      const now = this.#now();
      flow.lastActive = now;
      this.#lastActivity = now;
      // A reply is activity too (as in conntrack): keep the flow's place in the LRU order.
      if (this.#flows.get(id) === flow) {
        this.#flows.delete(id);
        this.#flows.set(id, flow);
      }
      this.#o.onReply(flow, msg);
    });
    // ICMP port unreachable surfaces on a connected socket as ECONNREFUSED: the backend is down
    // for now, not the socket; keep it (the next datagram may get through) and count.
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (flow.closed) return;
      if (!flow.pending) return void this.#o.onDrop('socket-error');
      const queued = flow.pending;
      this.#close(flow, 'error');
      // Out of file descriptors: free one (the least recently used flow) and open this flow's
      // socket again, once, with what it had queued, so that new flows are not locked out until
      // idle expiry. maxFlows should sit below the limit; this is the safety net.
      if (retry && (err.code === 'EMFILE' || err.code === 'ENFILE')) {
        this.#evictOldest();
        const again = this.#open(id, key, backend, client, ingress, tag, false);
        if (again?.pending) {
          again.pending.push(...queued);
          return;
        }
      }
      this.#o.onDrop('socket-error');
    });
    this.#flows.set(id, flow);
    socket.connect(backend.port, backend.host, () => {
      const queued = flow.pending;
      flow.pending = null;
      if (flow.closed || !queued) return;
      for (const p of queued) this.#write(flow, p);
    });
    return flow;
  }

  #write(flow: UdpFlow, payload: Buffer): void {
    try {
      flow.socket.send(payload, (err) => {
        if (err) this.#o.onDrop('send-error');
      });
    } catch {
      this.#o.onDrop('send-error');
    }
  }

  #close(flow: UdpFlow, reason: EvictReason | 'replaced' | 'error' | 'stop'): void {
    if (flow.closed) return;
    flow.closed = true;
    if (this.#flows.get(flow.id) === flow) this.#flows.delete(flow.id);
    for (const a of flow.aliases) if (this.#aliases.get(a) === flow) this.#aliases.delete(a);
    if (flow.pending && flow.pending.length > 0) for (let i = 0; i < flow.pending.length; i++) this.#o.onDrop('stopped');
    flow.pending = null;
    try {
      flow.socket.close();
    } catch {
      /* already closed */
    }
    this.#o.onClose(flow, reason);
  }
}

/** A bounded, idle-expiring map of flow key → the client's latest address (ingress side). */
export class RecentClients {
  readonly #m = new Map<string, { client: ClientAddress; at: number }>();
  #max: number;
  #idleMs: number;
  readonly #now: () => number;

  constructor(maxEntries: number, idleMs: number, now: () => number = Date.now) {
    this.#max = maxEntries;
    this.#idleMs = idleMs;
    this.#now = now;
  }

  get size(): number {
    return this.#m.size;
  }

  configure(maxEntries: number, idleMs: number): void {
    this.#max = maxEntries;
    this.#idleMs = idleMs;
    while (this.#m.size > this.#max) this.#dropOldest();
  }

  set(key: string, client: ClientAddress): void {
    const cur = this.#m.get(key);
    if (cur) {
      this.#m.delete(key);
      cur.at = this.#now();
      cur.client = client;
      this.#m.set(key, cur);
      return;
    }
    while (this.#m.size >= this.#max && this.#m.size > 0) this.#dropOldest();
    this.#m.set(key, { client, at: this.#now() });
  }

  get(key: string): ClientAddress | undefined {
    const e = this.#m.get(key);
    if (!e) return undefined;
    if (e.at <= this.#now() - this.#idleMs) {
      this.#m.delete(key);
      return undefined;
    }
    return e.client;
  }

  sweep(): number {
    const cutoff = this.#now() - this.#idleMs;
    let n = 0;
    for (const [key, e] of this.#m) {
      if (e.at > cutoff) break;
      this.#m.delete(key);
      n++;
    }
    return n;
  }

  clear(): void {
    this.#m.clear();
  }

  #dropOldest(): void {
    const first = this.#m.keys().next();
    if (!first.done) this.#m.delete(first.value);
  }
}
