// The certificate every HTTPS contender serves in the HTTP/2 scenario: one ECDSA P-256 pair made
// with openssl in the run's directory (once per run), so that HAProxy, NGINX and tandem do the same
// handshake work. Self-signed: h2load does not verify it.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

export interface BenchCert {
  readonly cert: string;
  readonly key: string;
  /** Certificate and key in one file (HAProxy's `crt`). */
  readonly pem: string;
}

export function benchCert(dir: string): BenchCert {
  const sub = join(dir, 'tls');
  const c: BenchCert = { cert: join(sub, 'bench.crt'), key: join(sub, 'bench.key'), pem: join(sub, 'bench.pem') };
  if (existsSync(c.pem)) return c;
  mkdirSync(sub, { recursive: true });
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', c.key, '-out', c.cert,
    '-days', '2', '-subj', '/CN=bench.test', '-addext', 'subjectAltName=DNS:bench.test'], { encoding: 'utf8', timeout: 15_000 });
  if (r.status !== 0) throw new Error(`openssl could not make the bench certificate: ${(r.stderr || r.error?.message || '').trim().slice(0, 200)}`);
  writeFileSync(c.pem, readFileSync(c.cert, 'utf8') + readFileSync(c.key, 'utf8'));
  return c;
}
