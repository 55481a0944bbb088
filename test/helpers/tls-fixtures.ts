/**
 * The committed test certificates (test/tls/fixtures/), copied into a temporary directory per
 * test file, so that a test may replace a file there (a reload) without touching the fixtures.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const TLS_FIXTURES = new URL('../tls/fixtures/', import.meta.url).pathname;

export interface CopiedCertificates {
  readonly dir: string;
  /** `{cert, key}` per name, in the order given: `names` ['a'] → dir/a.crt and dir/a.key. */
  readonly pairs: ReadonlyArray<{ readonly cert: string; readonly key: string }>;
  remove(): void;
}

export function copyCertificates(prefix: string, names: readonly string[]): CopiedCertificates {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  for (const n of names) for (const ext of ['crt', 'key']) copyFileSync(join(TLS_FIXTURES, `${n}.${ext}`), join(dir, `${n}.${ext}`));
  return {
    dir,
    pairs: names.map((n) => ({ cert: join(dir, `${n}.crt`), key: join(dir, `${n}.key`) })),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
