/**
 * ACME for the whole tier (docs/tls.md, "ACME"): one order per certificate, HTTP-01 answered by
 * every node, the issued certificate and key on every node and in every node's state directory.
 *
 * - Order owner: the rendezvous primary (src/cluster/rendezvous.ts) of `acme:<certificate id>`
 *   among the nodes alive, as for flows and the ticket-key holder. When it dies mid-order the
 *   next in rank becomes primary and orders anew; whatever the first one had half done expires at
 *   the ACME server. No election, and nothing orders before it is ready (has heard its peers,
 *   who send what they hold on link-up), so a restarted node adopts the tier's certificate.
 * - Challenges and certificates travel as sealed ACME_STATE frames (wire.ts).
 * - Conflicts (two owners in a partition): the certificate issued later (notBefore, then the
 *   SHA-256 fingerprint) wins on every node, so all converge whatever the order of messages. A
 *   node that adopts a certificate forwards it once to its peers (only when it changed
 *   something), so one that reached only some nodes before its orderer died reaches all.
 * - Renewal at two thirds of the lifetime minus up to 1/30 of it at random (spreading many
 *   certificates); on failure exponential back-off with jitter; at most one order at a time per
 *   node and never two starts within `minOrderGapMs`: the rate of ACME requests is bounded.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import { FrameType } from '../cluster/frame.js';
import { Rendezvous } from '../cluster/rendezvous.js';
import type { CertificateStore } from '../tls/store.js';
import { ChallengeTable } from './challenges.js';
import { acmeMetrics, type AcmeMetrics } from './metrics.js';
import { configureTransport, createAccountKey, order } from './order.js';
import { checkCertificate, renewTime, type Held } from './held.js';
import { DEFAULT_ACME_TUNING, type AcmePlane, type AcmeTuning } from './plane.js';
export type { AcmePlane, AcmeTuning } from './plane.js';
import { selfSigned } from './self-signed.js';
import { specsOf, type AcmeSpec } from './spec.js';
import { AcmeStateDir, type StoredPem } from './state-dir.js';
import { AcmeSealer, type AcmeMessage } from './wire.js';

export interface AcmeManagerOptions {
  readonly plane: AcmePlane;
  readonly clusterName: string;
  readonly secret: string;
  /** `cluster.stateDir`, or null: nothing survives a restart. */
  readonly stateDir: string | null;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly tuning?: Partial<AcmeTuning>;
  readonly now?: () => number;
}

type CertState = 'self-signed' | 'ordering' | 'valid' | 'renewing' | 'failed';

interface Slot {
  spec: AcmeSpec;
  fallback: StoredPem | null;
  renewAt: number;
  attempts: number;
  nextAttemptAt: number;
  force: boolean;
  ordering: boolean;
  lastError: string | null;
  readonly stores: Set<CertificateStore>;
}

export interface CertificateReadout {
  readonly id: string;
  readonly services: readonly string[];
  readonly names: readonly string[];
  readonly state: CertState;
  readonly owner: string;
  readonly issuer: string | null;
  readonly notBefore: string | null;
  readonly notAfter: string | null;
  readonly renewAt: string | null;
  readonly fingerprint: string | null;
  readonly attempts: number;
  readonly lastError: string | null;
}

const MAX_HELD = 256;

export class AcmeManager {
  readonly challenges: ChallengeTable;
  readonly #o: AcmeManagerOptions;
  readonly #t: AcmeTuning;
  readonly #now: () => number;
  readonly #sealer: AcmeSealer;
  readonly #rendezvous: Rendezvous;
  readonly #dir: AcmeStateDir | null;
  readonly #m: AcmeMetrics;
  readonly #held = new Map<string, Held>();
  readonly #slots = new Map<string, Slot>();
  #timer: NodeJS.Timeout | null = null;
  #busy = false;
  #lastStart = 0;
  #accountKey: string | null = null;

  constructor(o: AcmeManagerOptions) {
    this.#o = o;
    this.#t = { ...DEFAULT_ACME_TUNING, ...o.tuning };
    this.#now = o.now ?? Date.now;
    this.challenges = new ChallengeTable(this.#now);
    this.#sealer = new AcmeSealer(o.secret, o.clusterName);
    this.#rendezvous = new Rendezvous(o.secret);
    this.#dir = o.stateDir === null ? null : new AcmeStateDir(o.stateDir, o.plane.selfId);
    this.#m = acmeMetrics(o.registry);
    o.plane.onControlFrame(FrameType.ACME_STATE, (peer, payload) => this.#onFrame(peer, payload));
    o.plane.onControlLinkUp((peer) => this.#sendAllTo(peer));
    // What this node kept: served before any peer is reachable.
    if (this.#dir !== null) {
      for (const [id, pem] of this.#dir.loadCertificates((file, why) => o.logger.warn({ file, why }, 'ACME state file skipped'))) {
        const h = checkCertificate(pem, this.#now());
        if (typeof h === 'string') o.logger.warn({ certificate: id, why: h }, 'kept ACME certificate not used');
        else this.#held.set(id, h);
      }
      if (this.#held.size > 0) o.logger.info({ certificates: [...this.#held.keys()] }, 'ACME certificates loaded from the state directory');
    }
  }

  /** The body for an HTTP-01 request path, or null (route the request as usual). Any node answers. */
  challengeResponse(path: string): string | null {
    const r = this.challenges.response(path);
    if (path.startsWith('/.well-known/acme-challenge/')) this.#m.challenges.inc({ result: r === null ? 'unknown' : 'answered' });
    return r;
  }

  /** Bring the certificates in line with the config (first start and every reload). */
  async apply(config: Config): Promise<void> {
    const specs = specsOf(config);
    if (specs.length > 0) configureTransport({ requestTimeoutMs: this.#t.requestTimeoutMs, caFiles: [...new Set(specs.flatMap((s) => (s.caFile ? [s.caFile] : [])))] });
    const wanted = new Set(specs.map((s) => s.id));
    for (const id of this.#slots.keys()) if (!wanted.has(id)) this.#slots.delete(id);
    for (const spec of specs) {
      const slot = this.#slots.get(spec.id);
      if (slot) {
        slot.spec = spec;
        continue;
      }
      const s: Slot = { spec, fallback: null, renewAt: 0, attempts: 0, nextAttemptAt: 0, force: false, ordering: false, lastError: null, stores: new Set() };
      const held = this.#held.get(spec.id);
      if (held) s.renewAt = renewTime(held);
      else s.fallback = await selfSigned(spec.domains, this.#now());
      this.#slots.set(spec.id, s);
      this.#gauges(spec.id);
    }
    if (specs.length > 0 && this.#timer === null) {
      this.#timer = setInterval(() => this.tick(), this.#t.tickMs);
      this.#timer.unref();
    }
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** The challenge ports of the configured certificates. */
  challengePorts(): number[] {
    return [...new Set([...this.#slots.values()].map((s) => s.spec.challengePort))];
  }

  /** The certificate a service's store should hold now (ACME's, or the fallback); null: no ACME here. */
  pemFor(service: string): StoredPem | null {
    for (const [id, s] of this.#slots) if (s.spec.services.includes(service)) return this.#held.get(id) ?? s.fallback;
    return null;
  }

  /** Keep `store` holding the service's certificate (as memory certificate `acme`), now and on every change. */
  attach(service: string, store: CertificateStore): void {
    for (const [id, s] of this.#slots) {
      if (!s.spec.services.includes(service)) continue;
      s.stores.add(store);
      this.#feed(id, store);
    }
  }

  detach(store: CertificateStore): void {
    for (const s of this.#slots.values()) s.stores.delete(store);
  }

  /** Services still on their self-signed fallback (readiness detail). */
  fallbacks(): string[] {
    return [...this.#slots.entries()].filter(([id]) => !this.#held.has(id)).flatMap(([, s]) => s.spec.services);
  }

  owner(id: string): string {
    const nodes = [...this.#o.plane.alive()].map((n) => ({ id: n, weight: 1 }));
    return nodes.length === 0 ? this.#o.plane.selfId : this.#rendezvous.owners(`acme:${id}`, nodes).primary;
  }

  /** Force a renewal (all certificates, or the named ones); the owner acts. Returns the ids asked. */
  renew(ids?: readonly string[]): string[] {
    const asked = [...this.#slots.keys()].filter((id) => ids === undefined || ids.length === 0 || ids.includes(id));
    for (const id of asked) {
      this.#slots.get(id)!.force = true;
      this.#slots.get(id)!.nextAttemptAt = 0;
      this.#broadcast({ kind: 'renew', id });
    }
    queueMicrotask(() => this.tick());
    return asked;
  }

  certificates(): CertificateReadout[] {
    return [...this.#slots.entries()].map(([id, s]) => {
      const h = this.#held.get(id);
      const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
      const state: CertState = s.ordering ? (h ? 'renewing' : 'ordering') : h ? 'valid' : s.attempts > 0 ? 'failed' : 'self-signed';
      return {
        id, services: s.spec.services, names: s.spec.domains, state, owner: this.owner(id),
        issuer: h?.issuer ?? null, notBefore: iso(h?.notBefore), notAfter: iso(h?.notAfter), renewAt: h ? iso(s.renewAt) : null,
        fingerprint: h?.fingerprint ?? null, attempts: s.attempts, lastError: s.lastError,
      };
    });
  }

  /** Expire challenges; start the one order that is due here, if any. Runs on a timer. */
  tick(): void {
    this.challenges.expire();
    if (this.#busy || !this.#o.plane.ready) return;
    const now = this.#now();
    if (now - this.#lastStart < this.#t.minOrderGapMs) return;
    for (const [id, s] of this.#slots) {
      const due = s.force || !this.#held.has(id) || now >= s.renewAt;
      if (!due || now < s.nextAttemptAt || this.owner(id) !== this.#o.plane.selfId) continue;
      this.#busy = true;
      this.#lastStart = now;
      void this.#order(id, s).finally(() => {
        this.#busy = false;
      });
      return;
    }
  }

  async #order(id: string, s: Slot): Promise<void> {
    const log = this.#o.logger.child({ certificate: id });
    s.ordering = true;
    const tokens = new Set<string>();
    try {
      const accountKey = await this.#account();
      log.info({ names: s.spec.domains, directory: s.spec.directory }, 'ACME order started');
      const issued = await order({ directory: s.spec.directory, email: s.spec.email, domains: s.spec.domains, accountKey }, {
        create: async (token, keyAuthorization) => {
          tokens.add(token);
          const expiresAt = this.#now() + this.#t.challengeTtlMs;
          this.challenges.put(token, keyAuthorization, expiresAt);
          this.#broadcast({ kind: 'challenge', token, keyAuthorization, expiresAt });
          // The frames are queued on links with sub-millisecond latency; a short pause lets them
          // land before the ACME server is told to validate (it may reach any node first).
          await new Promise((r) => setTimeout(r, this.#t.spreadMs));
        },
        remove: async (token) => {
          tokens.delete(token);
          this.challenges.remove(token);
          this.#broadcast({ kind: 'challenge-done', token });
        },
      });
      const h = checkCertificate(issued, this.#now());
      if (typeof h === 'string') throw new Error(`the ACME server issued an unusable certificate: ${h}`);
      this.#m.orders.inc({ certificate: id, result: 'issued' });
      s.attempts = 0;
      s.force = false;
      s.lastError = null;
      s.nextAttemptAt = 0;
      log.info({ issuer: h.issuer, notAfter: new Date(h.notAfter).toISOString(), fingerprint: h.fingerprint }, 'ACME certificate issued');
      this.#adopt(id, h, null);
    } catch (err) {
      const e = err as Error & { code?: string };
      const kind = e.code !== undefined && /^(E[A-Z]+|ERR_)/.test(e.code) ? 'network' : /unusable|account key/.test(e.message) ? 'local' : 'acme';
      s.attempts++;
      s.lastError = e.message;
      const delay = Math.min(this.#t.retryMaxMs, this.#t.retryBaseMs * 2 ** Math.min(s.attempts - 1, 20)) * (0.5 + Math.random() / 2);
      s.nextAttemptAt = this.#now() + delay;
      this.#m.orders.inc({ certificate: id, result: 'failed' });
      this.#m.errors.inc({ certificate: id, kind });
      // acme-client puts the server's problem document (type, detail) in the message.
      log.error({ kind, problem: e.message, code: e.code, attempts: s.attempts, retryInMs: Math.round(delay) }, 'ACME order failed; the current certificate stays');
      for (const t of tokens) {
        this.challenges.remove(t);
        this.#broadcast({ kind: 'challenge-done', token: t });
      }
    } finally {
      s.ordering = false;
    }
  }

  async #account(): Promise<string> {
    if (this.#accountKey !== null) return this.#accountKey;
    let k = this.#dir?.loadAccountKey() ?? null;
    if (k === null) {
      k = await createAccountKey();
      this.#dir?.saveAccountKey(k);
    }
    this.#accountKey = k;
    return k;
  }

  /** Take a certificate if it beats what is held; persist, feed the stores, pass it on. */
  #adopt(id: string, h: Held, from: string | null): boolean {
    const had = this.#held.get(id);
    if (had && !(h.notBefore > had.notBefore || (h.notBefore === had.notBefore && h.fingerprint > had.fingerprint))) return false;
    if (!had && this.#held.size >= MAX_HELD) return false;
    this.#held.set(id, h);
    try {
      this.#dir?.saveCertificate(id, { cert: h.cert, key: h.key });
    } catch (err) {
      this.#o.logger.error({ certificate: id, err: (err as Error).message }, 'could not keep the ACME certificate in the state directory');
    }
    const s = this.#slots.get(id);
    if (s) {
      s.renewAt = renewTime(h);
      s.fallback = null;
      if (from !== null) s.force = false;
      for (const store of s.stores) this.#feed(id, store);
    }
    this.#gauges(id);
    const m: AcmeMessage = { kind: 'certificate', id, cert: h.cert, key: h.key };
    for (const peer of this.#o.plane.nodeIds) if (peer !== this.#o.plane.selfId && peer !== from) this.#o.plane.sendControl(peer, this.#sealer.frame(m, this.#o.plane.selfId));
    return true;
  }

  #feed(id: string, store: CertificateStore): void {
    const pem = this.#held.get(id) ?? this.#slots.get(id)?.fallback;
    if (!pem) return;
    const r = store.putMemory({ id: 'acme', cert: Buffer.from(pem.cert), key: Buffer.from(pem.key) });
    if (!r.ok) this.#o.logger.error({ certificate: id, problems: r.problems.map((p) => p.message) }, 'the certificate store refused the ACME certificate');
  }

  #gauges(id: string): void {
    const h = this.#held.get(id);
    if (h) this.#m.expiry.set({ certificate: id }, Math.floor(h.notAfter / 1000));
    this.#m.fallback.set({ certificate: id }, h ? 0 : 1);
  }

  #broadcast(m: AcmeMessage): void {
    const frame = this.#sealer.frame(m, this.#o.plane.selfId);
    for (const peer of this.#o.plane.nodeIds) if (peer !== this.#o.plane.selfId) this.#o.plane.sendControl(peer, frame);
  }

  #sendAllTo(peer: string): void {
    const self = this.#o.plane.selfId;
    for (const [id, h] of this.#held) this.#o.plane.sendControl(peer, this.#sealer.frame({ kind: 'certificate', id, cert: h.cert, key: h.key }, self));
    for (const c of this.challenges.live()) this.#o.plane.sendControl(peer, this.#sealer.frame({ kind: 'challenge', ...c }, self));
  }

  #onFrame(peer: string, payload: Buffer): void {
    let m: AcmeMessage;
    try {
      m = this.#sealer.open(payload, peer);
    } catch (err) {
      this.#m.frames.inc({ result: 'refused' });
      throw err; // the link drops the peer and counts the frame as malformed
    }
    let applied = true;
    switch (m.kind) {
      case 'challenge':
        this.challenges.put(m.token, m.keyAuthorization, Math.min(m.expiresAt, this.#now() + this.#t.challengeTtlMs));
        break;
      case 'challenge-done':
        this.challenges.remove(m.token);
        break;
      case 'renew': {
        const s = this.#slots.get(m.id);
        if (s) {
          s.force = true;
          s.nextAttemptAt = 0;
        } else applied = false;
        break;
      }
      case 'certificate': {
        const h = checkCertificate({ cert: m.cert, key: m.key }, this.#now());
        if (typeof h === 'string') {
          this.#m.frames.inc({ result: 'refused' });
          this.#o.logger.warn({ peer, certificate: m.id, why: h }, 'ACME certificate from a peer refused');
          return;
        }
        applied = this.#adopt(m.id, h, peer);
        if (applied) this.#o.logger.info({ peer, certificate: m.id, fingerprint: h.fingerprint }, 'ACME certificate adopted from a peer');
        break;
      }
    }
    this.#m.frames.inc({ result: applied ? 'applied' : 'unchanged' });
  }
}

