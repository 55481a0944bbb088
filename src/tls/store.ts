/**
 * The certificates of one TLS service: loaded from PEM files, checked (pem.ts), picked by server
 * name (names.ts), each turned into a `tls.SecureContext` once (not per handshake).
 *
 * Reload is whole or nothing: `reload()` re-reads every file; if any pair is unreadable, does not
 * parse, does not match or is not valid now, the store keeps serving what it had and returns the
 * reasons. Otherwise the new set replaces the old in one assignment. Connections already
 * established keep the context they were made with (OpenSSL holds a reference), so a reload never
 * drops a connection. A pair whose files did not change keeps its context (no re-parse).
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import { ErrorCodes, TandemError } from '../errors.js';
import type { CertificatePairConfig } from '../config/schema.js';
import { NameIndex, type NameMatch } from './names.js';
import { inspectPair, type CertificateInfo } from './pem.js';

export interface StoredCertificate {
  /** Position in the configured list; 0 is the default. */
  readonly index: number;
  readonly files: CertificatePairConfig;
  readonly info: CertificateInfo;
  /** Certificate (with its chain) and key, for node:tls's SNI selection (Node copies them from here). */
  readonly context: SecureContext;
  /** The PEM bytes, for a context that must hold this certificate itself (the default's). */
  readonly pem: { readonly cert: Buffer; readonly key: Buffer };
}

export interface StoreProblem {
  readonly index: number;
  readonly file: 'cert' | 'key';
  readonly path: string;
  readonly message: string;
}

export type ReloadResult =
  | { readonly ok: true; readonly changed: boolean }
  | { readonly ok: false; readonly problems: readonly StoreProblem[] };

/** `certificates[1].key: does not match the certificate (/etc/tandem/b.key)` */
export function formatStoreProblem(p: StoreProblem): string {
  return `certificates[${p.index}].${p.file}: ${p.message} (${p.path})`;
}

export class CertificateError extends TandemError {
  readonly problems: readonly StoreProblem[];
  constructor(problems: readonly StoreProblem[]) {
    super(ErrorCodes.TLS_CERTIFICATE, problems.map(formatStoreProblem).join('; '));
    this.name = 'CertificateError';
    this.problems = problems;
  }
}

interface StoreState {
  readonly certificates: readonly StoredCertificate[];
  readonly index: NameIndex;
}

export interface StoreEvents {
  /** A reload replaced the certificate set. */
  change: [];
}

export interface CertificateStoreOptions {
  /** Wall clock for validity checks (tests). */
  readonly now?: () => number;
  /** Certificates held in memory (ACME, src/acme/), after the file pairs. */
  readonly memory?: readonly MemoryCertificate[];
}

/** A certificate that is no file: its `files` read `memory:<id>`. */
export interface MemoryCertificate {
  readonly id: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

const MEMORY = 'memory:';

export class CertificateStore extends EventEmitter<StoreEvents> {
  #pairs: readonly CertificatePairConfig[];
  #state: StoreState;
  readonly #now: () => number;
  readonly #memory = new Map<string, MemoryCertificate>();

  /** Loads every pair; throws CertificateError listing every problem. */
  constructor(pairs: readonly CertificatePairConfig[], opts: CertificateStoreOptions = {}) {
    super();
    this.#now = opts.now ?? Date.now;
    for (const m of opts.memory ?? []) this.#memory.set(m.id, m);
    if (pairs.length === 0 && this.#memory.size === 0) throw new TandemError(ErrorCodes.TLS_CERTIFICATE, 'a TLS service needs at least one certificate');
    const r = this.#build(pairs, null);
    if ('problems' in r) throw new CertificateError(r.problems);
    this.#pairs = pairs;
    this.#state = r;
  }

  get certificates(): readonly StoredCertificate[] {
    return this.#state.certificates;
  }

  /** The first certificate: for clients without SNI and names nothing covers. */
  get default(): StoredCertificate {
    return this.#state.certificates[0];
  }

  /** The certificate for a server name (null: no SNI), and how it was found. */
  select(serverName: string | null): { readonly certificate: StoredCertificate; readonly how: NameMatch['how'] } {
    const s = this.#state;
    const m = s.index.lookup(serverName);
    return { certificate: s.certificates[m.index], how: m.how };
  }

  /**
   * Re-reads the files (of `pairs`, or of the current list) and swaps the whole set, or refuses
   * the whole set and says why. Emits 'change' when something was replaced.
   */
  reload(pairs: readonly CertificatePairConfig[] = this.#pairs): ReloadResult {
    if (pairs.length === 0 && this.#memory.size === 0) return { ok: false, problems: [{ index: 0, file: 'cert', path: '', message: 'a TLS service needs at least one certificate' }] };
    const r = this.#build(pairs, this.#state);
    if ('problems' in r) return { ok: false, problems: r.problems };
    const prev = this.#state.certificates;
    const changed = prev.length !== r.certificates.length || r.certificates.some((c, i) => c !== prev[i]);
    this.#pairs = pairs;
    if (changed) {
      this.#state = r;
      this.emit('change');
    }
    return { ok: true, changed };
  }

  /**
   * Puts (or replaces) an in-memory certificate, checked like a file pair, and swaps the set at
   * once; on a problem the store keeps what it had. Open connections keep their certificate.
   */
  putMemory(m: MemoryCertificate): ReloadResult {
    const before = this.#memory.get(m.id);
    this.#memory.set(m.id, m);
    const r = this.reload();
    if (!r.ok) {
      if (before === undefined) this.#memory.delete(m.id);
      else this.#memory.set(m.id, before);
    }
    return r;
  }

  #build(pairs: readonly CertificatePairConfig[], prev: StoreState | null): StoreState | { problems: StoreProblem[] } {
    const problems: StoreProblem[] = [];
    const out: StoredCertificate[] = [];
    const now = this.#now();
    const memory = [...this.#memory.values()].map((m) => ({ cert: `${MEMORY}${m.id}`, key: `${MEMORY}${m.id}` }));
    [...pairs, ...memory].forEach((files, index) => {
      const m = files.cert.startsWith(MEMORY) ? this.#memory.get(files.cert.slice(MEMORY.length)) : undefined;
      const cert = m !== undefined ? m.cert : read(files.cert, index, 'cert', problems);
      const key = m !== undefined ? m.key : read(files.key, index, 'key', problems);
      if (cert === null || key === null) return;
      const same = prev?.certificates.find((c) => c.index === index && c.files.cert === files.cert && c.files.key === files.key);
      if (same !== undefined && same.pem.cert.equals(cert) && same.pem.key.equals(key) && now <= same.info.notAfter) {
        out.push(same);
        return;
      }
      const inspected = inspectPair(cert, key, now);
      for (const p of inspected.problems) problems.push({ index, file: p.file, path: files[p.file], message: p.message });
      if (inspected.problems.length > 0 || inspected.info === null) return;
      let context: SecureContext;
      try {
        context = createSecureContext({ cert, key });
      } catch (err) {
        // inspectPair accepts what OpenSSL refuses only in corner cases (an unsupported curve).
        problems.push({ index, file: 'key', path: files.key, message: `cannot be used by OpenSSL (${(err as Error).message})` });
        return;
      }
      out.push(Object.freeze({ index, files, info: inspected.info, context, pem: Object.freeze({ cert, key }) }));
    });
    if (problems.length > 0) return { problems };
    return { certificates: Object.freeze(out), index: new NameIndex(out.map((c) => c.info.names)) };
  }
}

function read(path: string, index: number, file: 'cert' | 'key', problems: StoreProblem[]): Buffer | null {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as { code?: string }).code;
    problems.push({ index, file, path, message: code === 'ENOENT' ? 'file not found' : `cannot read the file (${code ?? (err as Error).message})` });
    return null;
  }
}
