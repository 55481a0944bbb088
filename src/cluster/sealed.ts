/**
 * Sealing secrets that travel between nodes (TLS session-ticket keys): AES-256-GCM (NIST SP
 * 800-38D) under a key derived from the cluster secret with HKDF-SHA256 (RFC 5869), one key per
 * purpose (the `info` label), a fresh random 96-bit nonce per message. The control link is
 * already authenticated, and may be TLS, but key material must never rely on that: without link
 * TLS the bytes would otherwise cross the network in clear.
 *
 *   sealed = nonce (12) ‖ ciphertext ‖ tag (16),   AAD = the caller's context (cluster, sender)
 *
 * Random nonces are safe here: a purpose seals a handful of messages per rotation, far below the
 * 2^32 messages per key that SP 800-38D section 8.3 allows with random 96-bit nonces.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ErrorCodes, TandemError } from '../errors.js';
import { deriveClusterKey } from './handshake.js';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const SEAL_OVERHEAD = NONCE_BYTES + TAG_BYTES;

export class Sealer {
  readonly #key: Buffer;

  /** `info` names the purpose, e.g. "tandem/ticket-keys/v1": different purposes never share a key. */
  constructor(clusterSecret: string | Buffer, info: string) {
    this.#key = deriveClusterKey(clusterSecret, info, 32);
  }

  seal(plaintext: Buffer, aad: Buffer): Buffer {
    const nonce = randomBytes(NONCE_BYTES);
    const c = createCipheriv('aes-256-gcm', this.#key, nonce, { authTagLength: TAG_BYTES });
    c.setAAD(aad);
    const body = Buffer.concat([c.update(plaintext), c.final()]);
    return Buffer.concat([nonce, body, c.getAuthTag()]);
  }

  /** The plaintext; throws FRAME_MALFORMED when the bytes were not sealed by this key with this AAD. */
  open(sealed: Buffer, aad: Buffer): Buffer {
    if (sealed.length < SEAL_OVERHEAD) throw new TandemError(ErrorCodes.FRAME_MALFORMED, 'sealed message too short');
    const nonce = sealed.subarray(0, NONCE_BYTES);
    const tag = sealed.subarray(sealed.length - TAG_BYTES);
    const d = createDecipheriv('aes-256-gcm', this.#key, nonce, { authTagLength: TAG_BYTES });
    d.setAAD(aad);
    d.setAuthTag(tag);
    try {
      return Buffer.concat([d.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)), d.final()]);
    } catch {
      throw new TandemError(ErrorCodes.FRAME_MALFORMED, 'sealed message failed authentication');
    }
  }
}
