// One ECDSA P-256 certificate for every contender's HTTPS listener, made once per run with the
// openssl binary (all three contenders then do the same handshake work: ECDHE + ECDSA signature).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

export interface BenchCert {
  readonly cert: string;
  readonly key: string;
  /** Certificate then key in one file (HAProxy's `crt`). */
  readonly pem: string;
}

/** The run's certificate under dir/tls (made on the first call, reused after). */
export function benchCertificate(dir: string): BenchCert {
  const sub = join(dir, 'tls');
  const c: BenchCert = { cert: join(sub, 'cert.pem'), key: join(sub, 'key.pem'), pem: join(sub, 'both.pem') };
  if (existsSync(c.pem)) return c;
  mkdirSync(sub, { recursive: true });
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30',
    '-subj', '/CN=bench.test', '-addext', 'subjectAltName=DNS:bench.test,IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3',
    '-keyout', c.key, '-out', c.cert,
  ], { stdio: 'ignore' });
  writeFileSync(c.pem, readFileSync(c.cert, 'utf8') + readFileSync(c.key, 'utf8'), { mode: 0o600 });
  return c;
}
