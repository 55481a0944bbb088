/**
 * `flowKey: sni` on tcp services (TLS passthrough): a connection is keyed by the server name of the
 * TLS ClientHello it starts with, so that every connection for one site keeps its backend and its
 * owners wherever it arrives. Pure: feed the first bytes of the connection, chunk by chunk, and
 * get `need-more`, a `name`, `none` (a ClientHello without SNI) or `invalid` (not TLS, malformed,
 * oversized, or a server name that is not a DNS name). The bytes are only read, never changed:
 * the caller passes exactly what it fed through to the backend.
 *
 * Without a usable name the key falls back to the client's address (`client-ip`), so such
 * connections keep per-client affinity. The two kinds of key cannot collide: a normalised DNS name
 * never looks like an IP address (names.ts rejects numeric top labels; IPv6 has ':').
 */
import { ClientHelloReader, DEFAULT_MAX_CLIENT_HELLO_BYTES, type ClientHelloProblem } from '../tls/client-hello.js';
import { normalizeAddress } from './address.js';

export type SniResult =
  | { readonly kind: 'need-more' }
  | { readonly kind: 'name'; readonly name: string }
  | { readonly kind: 'none' }
  | { readonly kind: 'invalid'; readonly problem: ClientHelloProblem | 'bad-name' };

const NEED_MORE: SniResult = Object.freeze({ kind: 'need-more' });
const NONE: SniResult = Object.freeze({ kind: 'none' });
const BAD_NAME: SniResult = Object.freeze({ kind: 'invalid', problem: 'bad-name' });

/** Reads the server name from the first bytes of a connection (bounded, default 16 KiB). */
export class SniReader {
  readonly #reader: ClientHelloReader;
  #result: SniResult = NEED_MORE;

  constructor(maxBytes = DEFAULT_MAX_CLIENT_HELLO_BYTES) {
    this.#reader = new ClientHelloReader(maxBytes);
  }

  /** Feed the next chunk; once the result is not `need-more`, later chunks are ignored. */
  push(chunk: Buffer): SniResult {
    if (this.#result.kind !== 'need-more') return this.#result;
    const status = this.#reader.push(chunk);
    if (status === 'invalid') this.#result = { kind: 'invalid', problem: this.#reader.problem ?? 'malformed' };
    else if (status === 'done') {
      const info = this.#reader.info;
      if (info?.serverName) this.#result = { kind: 'name', name: info.serverName };
      else this.#result = info?.serverNameInvalid ? BAD_NAME : NONE;
    }
    return this.#result;
  }

  get result(): SniResult {
    return this.#result;
  }

  /** Every byte fed so far, in order: what must reach the backend first, untouched. */
  get bytes(): Buffer {
    return this.#reader.buffered;
  }
}

/**
 * The flow key of a connection on a `flowKey: sni` service: the server name, or the client's
 * address when there is none (`none`, `invalid`, or a caller that gave up waiting: pass null).
 */
export function sniFlowKey(result: SniResult | null, clientAddress: string): string {
  return result !== null && result.kind === 'name' ? result.name : normalizeAddress(clientAddress);
}
