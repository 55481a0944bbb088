/**
 * The ACME_STATE control frame (docs/protocol.md): what one node tells the others about ACME.
 * Its payload is sealed (src/cluster/sealed.ts, AES-256-GCM under HKDF(cluster secret,
 * "tandem/acme/v1")), the AAD binding cluster name and sender: private keys and key
 * authorizations never cross the network in clear, with or without link TLS.
 *
 *   plaintext = u8 kind ‖ fields
 *   1 CHALLENGE       str token, str keyAuthorization, u64 expiresAt (ms, wall clock)
 *   2 CHALLENGE_DONE  str token
 *   3 CERTIFICATE     str certificate id, str certificate PEM (leaf first, chain), str key PEM
 *   4 RENEW           str certificate id   (an operator asked any node; the order owner acts)
 */
import { ErrorCodes, TandemError } from '../errors.js';
import { ByteReader } from '../cluster/byte-reader.js';
import { ByteWriter, FrameType } from '../cluster/frame.js';
import { Sealer } from '../cluster/sealed.js';

export const ACME_SEAL_INFO = 'tandem/acme/v1';
const MAX_TOKEN = 256;
const MAX_KEY_AUTH = 512;
const MAX_ID = 255;
const MAX_PEM = 64 * 1024;

export type AcmeMessage =
  | { readonly kind: 'challenge'; readonly token: string; readonly keyAuthorization: string; readonly expiresAt: number }
  | { readonly kind: 'challenge-done'; readonly token: string }
  | { readonly kind: 'certificate'; readonly id: string; readonly cert: string; readonly key: string }
  | { readonly kind: 'renew'; readonly id: string };

const KINDS = { challenge: 1, 'challenge-done': 2, certificate: 3, renew: 4 } as const;

export function encodeMessage(m: AcmeMessage): Buffer {
  const w = new ByteWriter(m.kind === 'certificate' ? m.cert.length + m.key.length + 64 : 128);
  w.u8(KINDS[m.kind]);
  switch (m.kind) {
    case 'challenge':
      w.str(m.token);
      w.str(m.keyAuthorization);
      w.u64(m.expiresAt);
      break;
    case 'challenge-done':
      w.str(m.token);
      break;
    case 'certificate':
      w.str(m.id);
      w.str(m.cert);
      w.str(m.key);
      break;
    case 'renew':
      w.str(m.id);
      break;
  }
  return Buffer.from(w.view());
}

/** Throws FRAME_MALFORMED on anything but exactly one well-formed message. */
export function decodeMessage(plain: Buffer): AcmeMessage {
  const r = new ByteReader(plain);
  const kind = r.u8('kind');
  let m: AcmeMessage;
  switch (kind) {
    case 1:
      m = { kind: 'challenge', token: r.str(MAX_TOKEN, 'token'), keyAuthorization: r.str(MAX_KEY_AUTH, 'keyAuthorization'), expiresAt: r.u64('expiresAt') };
      break;
    case 2:
      m = { kind: 'challenge-done', token: r.str(MAX_TOKEN, 'token') };
      break;
    case 3:
      m = { kind: 'certificate', id: r.str(MAX_ID, 'id'), cert: r.str(MAX_PEM, 'certificate'), key: r.str(MAX_PEM, 'key') };
      break;
    case 4:
      m = { kind: 'renew', id: r.str(MAX_ID, 'id') };
      break;
    default:
      throw new TandemError(ErrorCodes.FRAME_MALFORMED, `ACME_STATE message of unknown kind ${kind}`);
  }
  r.end('ACME_STATE');
  if ('token' in m && !/^[A-Za-z0-9_-]+$/.test(m.token)) throw new TandemError(ErrorCodes.FRAME_MALFORMED, 'ACME_STATE token is not base64url');
  return m;
}

export class AcmeSealer {
  readonly #sealer: Sealer;
  readonly #cluster: string;

  constructor(clusterSecret: string, clusterName: string) {
    this.#sealer = new Sealer(clusterSecret, ACME_SEAL_INFO);
    this.#cluster = clusterName;
  }

  #aad(sender: string): Buffer {
    return Buffer.from(`${ACME_SEAL_INFO}\0${this.#cluster}\0${sender}`, 'utf8');
  }

  frame(m: AcmeMessage, sender: string): Buffer {
    const sealed = this.#sealer.seal(encodeMessage(m), this.#aad(sender));
    const f = ByteWriter.frame(FrameType.ACME_STATE, sealed.length + 8);
    f.bytes(sealed);
    return Buffer.from(f.finish());
  }

  open(payload: Buffer, sender: string): AcmeMessage {
    return decodeMessage(this.#sealer.open(payload, this.#aad(sender)));
  }
}
