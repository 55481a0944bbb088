/**
 * What a node keeps of ACME across restarts: `<stateDir>/<node id>/acme/`, one
 * `<certificate id>.json` per certificate ({ cert, key } PEM) and the ACME account key. Files are
 * mode 0600 in a 0700 directory (they hold private keys), written to a temporary name and renamed,
 * so a crash mid-write never leaves half a certificate to load.
 */
import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface StoredPem {
  readonly cert: string;
  readonly key: string;
}

export class AcmeStateDir {
  readonly dir: string;

  constructor(stateDir: string, nodeId: string) {
    this.dir = join(stateDir, nodeId, 'acme');
  }

  #ensure(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    chmodSync(this.dir, 0o700);
  }

  #write(name: string, data: string): void {
    this.#ensure();
    const tmp = join(this.dir, `.${name}.${process.pid}.tmp`);
    writeFileSync(tmp, data, { mode: 0o600 });
    renameSync(tmp, join(this.dir, name));
  }

  saveCertificate(id: string, pem: StoredPem): void {
    this.#write(`${id}.json`, JSON.stringify({ cert: pem.cert, key: pem.key }));
  }

  /** Every certificate kept, by id; unreadable or malformed files are reported and skipped. */
  loadCertificates(onBad: (file: string, why: string) => void): Map<string, StoredPem> {
    const out = new Map<string, StoredPem>();
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return out;
    }
    for (const f of names) {
      if (!f.endsWith('.json') || f.startsWith('.')) continue;
      try {
        const v = JSON.parse(readFileSync(join(this.dir, f), 'utf8')) as { cert?: unknown; key?: unknown };
        if (typeof v.cert !== 'string' || typeof v.key !== 'string') throw new Error('not { cert, key }');
        out.set(f.slice(0, -'.json'.length), { cert: v.cert, key: v.key });
      } catch (err) {
        onBad(join(this.dir, f), (err as Error).message);
      }
    }
    return out;
  }

  loadAccountKey(): string | null {
    try {
      return readFileSync(join(this.dir, 'account.key'), 'utf8');
    } catch {
      return null;
    }
  }

  saveAccountKey(pem: string): void {
    this.#write('account.key', pem);
  }
}
