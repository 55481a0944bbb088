/**
 * Cluster-made TLS session-ticket keys (`sessionTickets: cluster`, docs/tls.md): one node makes
 * them, rotates them, and every node gets them over the control links, so that a session ticket
 * issued by any node opens on every other.
 *
 * Time is cut into epochs of `rotationMs` (default 12 h) on the wall clock: epoch e covers
 * [e·rotationMs, (e+1)·rotationMs). Each epoch has one 32-byte secret. A node encrypts new tickets
 * under the secret of the current epoch and decrypts tickets of the previous, current and next
 * epochs: the previous so that a ticket issued just before a rotation still resumes after it; the
 * next so that nodes whose clocks differ by a little all accept each other's tickets around the
 * boundary. The services derive their actual ticket keys from these secrets (src/tls/ticket-keys.ts).
 *
 * Who makes them: the key holder, the rendezvous primary (rendezvous.ts) of the fixed key
 * "tls-ticket-keys" among the nodes alive, so that the role fails over with no election. The
 * holder makes the secrets of the current and the next epoch whenever they are missing, i.e. the
 * next one a whole epoch before it is used: a holder failure only has to be over within an epoch.
 * A node makes nothing before it is ready (it has heard its peers, who send what they have on
 * link-up), so a restarted holder adopts the cluster's secrets instead of replacing them.
 *
 * Conflicts (two nodes that both believed they were the holder, in a partition): for an epoch,
 * the secret written by the node that ranks higher for "tls-ticket-keys" wins, on every node
 * alike, so all converge whatever the order of messages. A node without a secret for the current
 * epoch (cold start, no peer yet) makes a local one that never travels and loses to any
 * cluster-made one: tickets still work on that node meanwhile.
 *
 * Wire: frame TLS_TICKET_KEYS (docs/protocol.md), its payload sealed (sealed.ts) under
 * HKDF(secret, "tandem/ticket-keys/v1"), the AAD binding the cluster name and the sender id.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { ErrorCodes, TandemError } from '../errors.js';
import { counter, gauge } from '../metrics.js';
import { ByteReader, ByteWriter, FrameType } from './frame.js';
import { Rendezvous } from './rendezvous.js';
import { Sealer } from './sealed.js';

export const TICKET_SECRET_BYTES = 32;
export const DEFAULT_ROTATION_MS = 12 * 3_600_000;
/** The rendezvous key whose primary is the key holder. */
export const KEY_HOLDER_KEY = 'tls-ticket-keys';
const SEAL_INFO = 'tandem/ticket-keys/v1';
const MAX_ENTRIES_PER_FRAME = 8;

export interface EpochSecret {
  readonly epoch: number;
  readonly secret: Buffer;
  /** The node that made it; '' for a local stand-in that never leaves this node. */
  readonly writer: string;
}

/** What the TLS side reads: the secrets of the epochs around now, and a signal when they change. */
export interface EpochSecretSource {
  readonly rotationMs: number;
  /** The epochs held, ascending, within [current − 1, current + 1]. */
  window(): readonly EpochSecret[];
  on(event: 'change', listener: () => void): unknown;
  off(event: 'change', listener: () => void): unknown;
}

/** The part of Cluster (cluster.ts) the share uses. */
export interface TicketKeyPlane {
  readonly selfId: string;
  readonly nodeIds: readonly string[];
  readonly ready: boolean;
  alive(): ReadonlySet<string>;
  onControlFrame(type: number, handler: (peerId: string, payload: Buffer) => void): void;
  onControlLinkUp(handler: (peerId: string) => void): void;
  sendControl(peerId: string, frame: Buffer): boolean;
}

export interface TicketKeyShareOptions {
  readonly plane: TicketKeyPlane;
  readonly clusterName: string;
  readonly secret: string;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly rotationMs?: number;
  /** Wall clock (tests). */
  readonly now?: () => number;
}

/** The share's metrics: one set per node, as the composition root makes one share per node. */
function shareMetrics(registry: Registry) {
  return {
    generated: counter(registry, { name: 'tandem_tls_ticket_keys_generated_total', help: 'Ticket-key epochs this node made as the key holder.' }),
    frames: counter(registry, {
      name: 'tandem_tls_ticket_keys_frames_total',
      help: 'Ticket-key frames received from peers, by result: applied (changed something), unchanged, refused (did not open or parse).',
      labelNames: ['result'],
    }),
    local: gauge(registry, {
      name: 'tandem_tls_ticket_keys_local',
      help: '1 while this node encrypts tickets under a local stand-in key (no cluster key for the current epoch yet): tickets then resume on this node only.',
    }),
  };
}

export class TicketKeyShare extends EventEmitter<{ change: [] }> implements EpochSecretSource {
  readonly rotationMs: number;
  readonly #o: TicketKeyShareOptions;
  readonly #now: () => number;
  readonly #sealer: Sealer;
  readonly #rendezvous: Rendezvous;
  readonly #entries = new Map<number, EpochSecret>();
  readonly #m: ReturnType<typeof shareMetrics>;
  #timer: NodeJS.Timeout | null = null;
  #enabled = false;

  constructor(o: TicketKeyShareOptions) {
    super();
    this.#o = o;
    this.rotationMs = o.rotationMs ?? DEFAULT_ROTATION_MS;
    if (!(this.rotationMs >= 1000)) throw new TandemError(ErrorCodes.CONFIG_INVALID, 'ticket-key rotation must be at least 1000 ms');
    this.#now = o.now ?? Date.now;
    this.#sealer = new Sealer(o.secret, SEAL_INFO);
    this.#rendezvous = new Rendezvous(o.secret);
    this.#m = shareMetrics(o.registry);
    // Receiving is always on (a peer may enable tickets before this node does); sending and
    // making keys start with enable().
    o.plane.onControlFrame(FrameType.TLS_TICKET_KEYS, (peer, payload) => this.#onFrame(peer, payload));
    o.plane.onControlLinkUp((peer) => {
      if (this.#enabled) this.#sendTo(peer);
    });
  }

  /** Start making (when holder), rotating and sending keys. Idempotent. */
  enable(): void {
    if (this.#enabled) return;
    this.#enabled = true;
    const tick = Math.min(5000, Math.max(50, Math.floor(this.rotationMs / 8)));
    this.#timer = setInterval(() => this.tick(), tick);
    this.#timer.unref();
    this.tick();
  }

  stop(): void {
    this.#enabled = false;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  epochAt(ms: number): number {
    return Math.floor(ms / this.rotationMs);
  }

  window(): readonly EpochSecret[] {
    return [...this.#entries.values()].sort((a, b) => a.epoch - b.epoch);
  }

  /** The node that should make keys now. */
  holder(): string {
    const nodes = [...this.#o.plane.alive()].map((id) => ({ id, weight: 1 }));
    return nodes.length === 0 ? this.#o.plane.selfId : this.#rendezvous.owners(KEY_HOLDER_KEY, nodes).primary;
  }

  /** Prune, make what is missing (holder) or a local stand-in, send what changed. Runs on a timer. */
  tick(): void {
    const e = this.epochAt(this.#now());
    let changed = this.#prune(e);
    const self = this.#o.plane.selfId;
    if (this.#enabled && this.#o.plane.ready && this.holder() === self) {
      let made = false;
      for (const epoch of [e, e + 1]) {
        const have = this.#entries.get(epoch);
        if (have === undefined || have.writer === '') {
          this.#entries.set(epoch, { epoch, secret: randomBytes(TICKET_SECRET_BYTES), writer: self });
          this.#m.generated.inc();
          made = true;
        }
      }
      if (made) {
        this.#o.logger.info({ epoch: e }, 'made TLS ticket keys as the key holder');
        changed = true;
        this.#broadcast();
      }
    }
    if (this.#enabled && !this.#entries.has(e)) {
      this.#entries.set(e, { epoch: e, secret: randomBytes(TICKET_SECRET_BYTES), writer: '' });
      changed = true;
    }
    this.#m.local.set(this.#entries.get(e)?.writer === '' ? 1 : 0);
    if (changed) this.emit('change');
  }

  #prune(e: number): boolean {
    let changed = false;
    for (const epoch of this.#entries.keys()) {
      if (epoch < e - 1 || epoch > e + 2) {
        this.#entries.delete(epoch);
        changed = true;
      }
    }
    return changed;
  }

  /** Whether `a` should replace `b` for the same epoch: cluster-made beats local, then rank. */
  #wins(a: EpochSecret, b: EpochSecret): boolean {
    if (a.writer === b.writer) return !a.secret.equals(b.secret) && a.secret.compare(b.secret) > 0;
    if (b.writer === '') return true;
    if (a.writer === '') return false;
    return this.#rendezvous.owners(KEY_HOLDER_KEY, [{ id: a.writer, weight: 1 }, { id: b.writer, weight: 1 }]).primary === a.writer;
  }

  #aad(sender: string): Buffer {
    return Buffer.from(`${SEAL_INFO}\0${this.#o.clusterName}\0${sender}`, 'utf8');
  }

  #frame(): Buffer | null {
    const shared = this.window().filter((x) => x.writer !== '');
    if (shared.length === 0) return null;
    const w = new ByteWriter(16 + shared.length * 64);
    w.u8(shared.length);
    for (const x of shared) {
      w.u64(x.epoch);
      w.bytes(x.secret);
      w.str(x.writer);
    }
    const sealed = this.#sealer.seal(w.view(), this.#aad(this.#o.plane.selfId));
    const f = ByteWriter.frame(FrameType.TLS_TICKET_KEYS, sealed.length + 8);
    f.bytes(sealed);
    return f.finish();
  }

  #sendTo(peer: string): void {
    const frame = this.#frame();
    if (frame !== null) this.#o.plane.sendControl(peer, frame);
  }

  #broadcast(): void {
    const frame = this.#frame();
    if (frame === null) return;
    for (const id of this.#o.plane.nodeIds) if (id !== this.#o.plane.selfId) this.#o.plane.sendControl(id, frame);
  }

  #onFrame(peer: string, payload: Buffer): void {
    let incoming: EpochSecret[];
    try {
      incoming = decodeEntries(this.#sealer.open(payload, this.#aad(peer)));
    } catch (err) {
      this.#m.frames.inc({ result: 'refused' });
      throw err; // the link drops the peer and counts the frame as malformed
    }
    const e = this.epochAt(this.#now());
    let changed = false;
    for (const x of incoming) {
      if (x.epoch < e - 1 || x.epoch > e + 2) continue; // stale, or a clock far ahead
      const have = this.#entries.get(x.epoch);
      if (have === undefined || this.#wins(x, have)) {
        this.#entries.set(x.epoch, x);
        changed = true;
      }
    }
    this.#m.frames.inc({ result: changed ? 'applied' : 'unchanged' });
    if (!changed) return;
    this.#m.local.set(this.#entries.get(e)?.writer === '' ? 1 : 0);
    this.emit('change');
  }
}

function decodeEntries(plain: Buffer): EpochSecret[] {
  const r = new ByteReader(plain);
  const n = r.u8('count');
  if (n === 0 || n > MAX_ENTRIES_PER_FRAME) throw new TandemError(ErrorCodes.FRAME_MALFORMED, `ticket-key frame with ${n} entries`);
  const out: EpochSecret[] = [];
  for (let i = 0; i < n; i++) {
    const epoch = r.u64('epoch');
    const secret = Buffer.from(r.bytes(TICKET_SECRET_BYTES, 'secret'));
    const writer = r.str(255, 'writer');
    if (writer === '') throw new TandemError(ErrorCodes.FRAME_MALFORMED, 'ticket-key entry without a valid writer');
    out.push({ epoch, secret, writer });
  }
  r.end('TLS_TICKET_KEYS');
  return out;
}
