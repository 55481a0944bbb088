/**
 * A certificate and its private key as PEM bytes: parse both, check that they belong together and
 * that the certificate is valid now. Used by `tandem validate` (through the config loader) and by
 * the certificate store on every (re)load, so both say the same thing about the same files.
 * No I/O: callers read the files.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { certificateNames } from './names.js';

/** Smallest RSA modulus accepted: Mozilla's "intermediate" configuration and NIST SP 800-131A. */
export const MIN_RSA_BITS = 2048;

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const SIGNING_KEY_TYPES = new Set(['rsa', 'rsa-pss', 'ec', 'ed25519', 'ed448']);

export interface PairProblem {
  /** Which file the problem is about. */
  readonly file: 'cert' | 'key';
  readonly message: string;
}

/** What a valid pair gives the store. */
export interface CertificateInfo {
  readonly names: readonly string[];
  readonly subject: string;
  readonly keyType: string;
  readonly notBefore: number;
  readonly notAfter: number;
  /** SHA-256 fingerprint of the leaf, as node:crypto prints it (AA:BB:…). */
  readonly fingerprint256: string;
}

export interface PairInspection {
  readonly problems: readonly PairProblem[];
  /** Present when the certificate parsed (even if other problems were found). */
  readonly info: CertificateInfo | null;
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

/** Parses every PEM certificate of a file; the first is the leaf, the rest its chain. */
function parseChain(pem: Buffer, problems: PairProblem[]): X509Certificate[] {
  const blocks = pem.toString('latin1').match(PEM_CERT) ?? [];
  if (blocks.length === 0) {
    problems.push({ file: 'cert', message: 'is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" block)' });
    return [];
  }
  const out: X509Certificate[] = [];
  for (const [i, block] of blocks.entries()) {
    try {
      out.push(new X509Certificate(block));
    } catch {
      problems.push({ file: 'cert', message: `certificate ${i + 1} of the file is not valid X.509` });
      return [];
    }
  }
  return out;
}

function parseKey(pem: Buffer, problems: PairProblem[]): KeyObject | null {
  const text = pem.toString('latin1');
  // PKCS#8 encrypted, or the traditional OpenSSL form with a Proc-Type header (RFC 1421).
  if (text.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /Proc-Type:\s*4,\s*ENCRYPTED/.test(text)) {
    problems.push({ file: 'key', message: 'is encrypted; passphrase-protected keys are not supported' });
    return null;
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    // OpenSSL's reason text differs between versions; the file is what the operator must look at.
    problems.push({ file: 'key', message: 'is not a PEM private key' });
    return null;
  }
  const type = key.asymmetricKeyType ?? 'unknown';
  if (!SIGNING_KEY_TYPES.has(type)) {
    problems.push({ file: 'key', message: `is a ${type} key; TLS certificates need an ECDSA, RSA or EdDSA key` });
    return null;
  }
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if ((type === 'rsa' || type === 'rsa-pss') && bits !== undefined && bits < MIN_RSA_BITS) {
    problems.push({ file: 'key', message: `is an RSA key of ${bits} bits; at least ${MIN_RSA_BITS} are needed` });
  }
  return key;
}

/**
 * Everything wrong with a pair, at time `now` (ms): unparsable files, a key that does not match the
 * certificate, a certificate expired or not yet valid, a chain whose certificates do not issue one
 * another in order.
 */
export function inspectPair(certPem: Buffer, keyPem: Buffer, now: number): PairInspection {
  const problems: PairProblem[] = [];
  const chain = parseChain(certPem, problems);
  const key = parseKey(keyPem, problems);
  const leaf = chain[0];
  if (leaf === undefined) return { problems, info: null };
  if (key !== null && !leaf.checkPrivateKey(key)) problems.push({ file: 'key', message: 'does not match the certificate' });
  const notBefore = Date.parse(leaf.validFrom);
  const notAfter = Date.parse(leaf.validTo);
  if (Number.isFinite(notAfter) && now > notAfter) problems.push({ file: 'cert', message: `expired on ${iso(notAfter)}` });
  if (Number.isFinite(notBefore) && now < notBefore) problems.push({ file: 'cert', message: `is not valid before ${iso(notBefore)}` });
  for (let i = 1; i < chain.length; i++) {
    if (!chain[i - 1].checkIssued(chain[i])) {
      problems.push({ file: 'cert', message: `certificate ${i + 1} of the file did not issue certificate ${i} (the chain must go from the leaf towards the root)` });
      break;
    }
  }
  const info: CertificateInfo = {
    names: certificateNames(leaf.subjectAltName, leaf.subject),
    subject: leaf.subject,
    keyType: leaf.publicKey.asymmetricKeyType ?? 'unknown',
    notBefore,
    notAfter,
    fingerprint256: leaf.fingerprint256,
  };
  return { problems, info };
}
