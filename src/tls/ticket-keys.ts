/**
 * Session-ticket keys of one TLS service, per epoch, derived from the epoch secrets of an
 * EpochSecretSource: the cluster's (sessionTickets: cluster, src/cluster/ticket-key-share.ts) or
 * this node's own (sessionTickets: node, LocalEpochSecrets below).
 *
 *   ticketKeys(service, epoch) = HKDF-SHA256(ikm = epoch secret, salt = "tandem/tls-ticket-keys/v1",
 *                                            info = the service's session id context, L = 48)
 *
 * 48 bytes is Node's `ticketKeys` layout (16-byte key name, 16-byte HMAC key, 16-byte AES key);
 * OpenSSL writes the key name in clear at the start of every ticket it issues, which is how a
 * ticket offered in a ClientHello is matched to the epoch that can open it (client-hello.ts). One
 * derivation per service means a ticket of one service never opens on another, even though the
 * cluster shares one secret per epoch.
 */
import { EventEmitter } from 'node:events';
import { hkdfSync, randomBytes } from 'node:crypto';
import { DEFAULT_ROTATION_MS, TICKET_SECRET_BYTES, type EpochSecret, type EpochSecretSource } from '../cluster/ticket-key-share.js';

export const TICKET_KEYS_BYTES = 48;
const SALT = 'tandem/tls-ticket-keys/v1';

export interface EpochKeys {
  readonly epoch: number;
  /** The 48 bytes for node:tls `ticketKeys`. */
  readonly keys: Buffer;
  /** keys[0..16]: the name OpenSSL puts at the front of each ticket, as hex. */
  readonly name: string;
}

export function deriveTicketKeys(secret: Buffer, sessionIdContext: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, SALT, sessionIdContext, TICKET_KEYS_BYTES));
}

/** The keys of the epochs a source holds, for one service; recomputed when the source changes. */
export class ServiceTicketKeys {
  readonly #context: string;
  #byEpoch = new Map<number, EpochKeys>();
  #byName = new Map<string, EpochKeys>();

  constructor(sessionIdContext: string) {
    this.#context = sessionIdContext;
  }

  /** Adopt the window of a source. Returns true when the set of keys changed. */
  update(window: readonly EpochSecret[]): boolean {
    const next = new Map<number, EpochKeys>();
    let changed = window.length !== this.#byEpoch.size;
    for (const s of window) {
      const keys = deriveTicketKeys(s.secret, this.#context);
      const prev = this.#byEpoch.get(s.epoch);
      if (prev !== undefined && prev.keys.equals(keys)) next.set(s.epoch, prev);
      else {
        next.set(s.epoch, { epoch: s.epoch, keys, name: keys.subarray(0, 16).toString('hex') });
        changed = true;
      }
    }
    this.#byEpoch = next;
    this.#byName = new Map([...next.values()].map((k) => [k.name, k]));
    return changed;
  }

  all(): readonly EpochKeys[] {
    return [...this.#byEpoch.values()];
  }

  /** The epoch whose key name a ticket starts with, or undefined (an unknown or expired ticket). */
  byName(name: Buffer): EpochKeys | undefined {
    return this.#byName.size === 0 ? undefined : this.#byName.get(name.toString('hex'));
  }

  /** The keys that encrypt new tickets at epoch `e`: e's, else the newest older one, else the oldest. */
  forEncryption(e: number): EpochKeys | undefined {
    const exact = this.#byEpoch.get(e);
    if (exact !== undefined) return exact;
    let older: EpochKeys | undefined;
    let newer: EpochKeys | undefined;
    for (const k of this.#byEpoch.values()) {
      if (k.epoch <= e) {
        if (older === undefined || k.epoch > older.epoch) older = k;
      } else if (newer === undefined || k.epoch < newer.epoch) newer = k;
    }
    return older ?? newer;
  }
}

/**
 * `sessionTickets: node`: this node's own epoch secrets, made locally and rotated on the same
 * schedule as the cluster's, never shared. A ticket resumes only on the node that issued it.
 */
export class LocalEpochSecrets extends EventEmitter<{ change: [] }> implements EpochSecretSource {
  readonly rotationMs: number;
  readonly #now: () => number;
  readonly #entries = new Map<number, EpochSecret>();
  #timer: NodeJS.Timeout | null = null;

  constructor(opts: { rotationMs?: number; now?: () => number } = {}) {
    super();
    this.rotationMs = opts.rotationMs ?? DEFAULT_ROTATION_MS;
    this.#now = opts.now ?? Date.now;
    this.tick();
  }

  start(): void {
    if (this.#timer !== null) return;
    this.#timer = setInterval(() => this.tick(), Math.min(5000, Math.max(50, Math.floor(this.rotationMs / 8))));
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  window(): readonly EpochSecret[] {
    return [...this.#entries.values()].sort((a, b) => a.epoch - b.epoch);
  }

  /** Keep [e − 1, e + 1], making e and e + 1 when missing. */
  tick(): void {
    const e = Math.floor(this.#now() / this.rotationMs);
    let changed = false;
    for (const epoch of this.#entries.keys()) {
      if (epoch < e - 1 || epoch > e + 1) {
        this.#entries.delete(epoch);
        changed = true;
      }
    }
    for (const epoch of [e, e + 1]) {
      if (!this.#entries.has(epoch)) {
        this.#entries.set(epoch, { epoch, secret: randomBytes(TICKET_SECRET_BYTES), writer: '' });
        changed = true;
      }
    }
    if (changed) this.emit('change');
  }
}
