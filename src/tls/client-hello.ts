/**
 * A bounded, incremental reader of a TLS ClientHello (RFC 8446 section 4.1.2; RFC 5246 section
 * 7.4.1.2 for TLS 1.2): feed it the first bytes of a connection chunk by chunk, as TCP delivers
 * them, and it says when it has the whole ClientHello, or that it never will. Pure, no I/O.
 *
 * What it extracts:
 *   - the server name (server_name extension, RFC 6066 section 3), normalised (names.ts);
 *   - the key name of a session ticket the client offers: the first 16 bytes of the TLS 1.3
 *     pre_shared_key identity (RFC 8446 section 4.2.11) or of the TLS 1.2 SessionTicket extension
 *     (RFC 5077 section 3.2). OpenSSL's tickets start with the 16-byte name of the key that
 *     encrypted them (the layout Node documents for `ticketKeys`), which is how the listener finds
 *     the ticket-key generation that can decrypt it.
 *
 * Work and memory are linear and bounded: at most `maxBytes` (default 16 KiB) are buffered, record
 * headers are walked once, and the handshake message is parsed once, when complete. A ClientHello
 * may legally span several records (fragmentation, RFC 8446 section 5.1) and any number of TCP
 * segments; both are handled. Records of another type before the ClientHello is complete, SSLv2
 * hellos, zero-length or over-long records, and a body that does not parse are `malformed`; a
 * first byte that starts an HTTP method is `plain-http`; anything else that is not a handshake
 * record is `not-tls`.
 */
import { normalizeName } from './names.js';

export const DEFAULT_MAX_CLIENT_HELLO_BYTES = 16 * 1024;
export const TICKET_KEY_NAME_BYTES = 16;

const RECORD_HEADER = 5;
const HANDSHAKE = 22;
const CLIENT_HELLO = 1;
/** RFC 8446 section 5.1: a plaintext record carries at most 2^14 bytes. */
const MAX_RECORD = 16_384;

const EXT_SERVER_NAME = 0;
const EXT_SESSION_TICKET = 35;
const EXT_PRE_SHARED_KEY = 41;

export type ClientHelloProblem = 'plain-http' | 'not-tls' | 'oversized' | 'malformed';
export type ClientHelloStatus = 'need-more' | 'done' | 'invalid';

export interface ClientHelloInfo {
  /** The normalised server name, or null without SNI (or with a name that is not a DNS name). */
  readonly serverName: string | null;
  /** True when the client sent a server_name that is not a valid DNS host name. */
  readonly serverNameInvalid: boolean;
  /** The first 16 bytes of the offered session ticket / PSK identity, or null. */
  readonly ticketKeyName: Buffer | null;
  /** The ClientHello spanned more than one TLS record. */
  readonly fragmented: boolean;
  /** Bytes of the connection up to the end of the record that completed the ClientHello. */
  readonly bytes: number;
}

class Malformed extends Error {}

/** A read cursor over the ClientHello body; every overrun is Malformed. */
class Cursor {
  pos: number;
  constructor(readonly buf: Buffer, pos: number, readonly end: number) {
    this.pos = pos;
  }
  need(n: number): void {
    if (this.pos + n > this.end) throw new Malformed();
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }
}

export class ClientHelloReader {
  readonly #max: number;
  /** The raw bytes so far: the first chunk itself while there is only one, then an accumulator. */
  #raw: Buffer = Buffer.alloc(0);
  #rawOwned = false;
  #rawLength = 0;
  /** Offset in #raw of the next record header not yet consumed. */
  #recordAt = 0;
  /** The handshake bytes gathered from the records so far. */
  #hs: Buffer = Buffer.alloc(0);
  #hsLength = 0;
  #records = 0;
  #status: ClientHelloStatus = 'need-more';
  #problem: ClientHelloProblem | null = null;
  #info: ClientHelloInfo | null = null;

  constructor(maxBytes = DEFAULT_MAX_CLIENT_HELLO_BYTES) {
    this.#max = maxBytes;
  }

  get status(): ClientHelloStatus {
    return this.#status;
  }

  get problem(): ClientHelloProblem | null {
    return this.#problem;
  }

  get info(): ClientHelloInfo | null {
    return this.#info;
  }

  /** Every byte pushed so far, in order (a view; valid until the next push). */
  get buffered(): Buffer {
    return this.#raw.subarray(0, this.#rawLength);
  }

  push(chunk: Buffer): ClientHelloStatus {
    if (this.#status !== 'need-more' || chunk.length === 0) return this.#status;
    this.#append(chunk);
    if (this.#rawLength > this.#max && this.#status === 'need-more') {
      // Still parse what fits: a complete ClientHello followed by early bytes is fine.
      this.#walk(this.#max);
      if (this.#status === 'need-more') return this.#fail('oversized');
      return this.#status;
    }
    this.#walk(this.#rawLength);
    return this.#status;
  }

  #append(chunk: Buffer): void {
    if (this.#rawLength === 0) {
      this.#raw = chunk;
      this.#rawLength = chunk.length;
      return;
    }
    const need = this.#rawLength + chunk.length;
    if (!this.#rawOwned || need > this.#raw.length) {
      // One accumulator of the bound's size (or the need, past it): linear copying, however the
      // bytes are split.
      const next = Buffer.allocUnsafe(Math.max(need, Math.min(this.#max + 1, need * 2)));
      this.#raw.copy(next, 0, 0, this.#rawLength);
      this.#raw = next;
      this.#rawOwned = true;
    }
    chunk.copy(this.#raw, this.#rawLength);
    this.#rawLength = need;
  }

  #fail(problem: ClientHelloProblem): ClientHelloStatus {
    this.#status = 'invalid';
    this.#problem = problem;
    return this.#status;
  }

  /** Consume complete records below `limit`, gathering handshake bytes; parse when complete. */
  #walk(limit: number): void {
    const raw = this.#raw;
    if (this.#recordAt === 0 && limit > 0 && raw[0] !== HANDSHAKE) {
      const http = looksLikeHttp(raw, limit);
      if (http === null) return; // need a few more bytes to tell
      this.#fail(http ? 'plain-http' : 'not-tls');
      return;
    }
    while (this.#recordAt + RECORD_HEADER <= limit) {
      const at = this.#recordAt;
      if (raw[at] !== HANDSHAKE || raw[at + 1] !== 3 || raw[at + 2] > 4) {
        this.#fail('malformed');
        return;
      }
      const len = raw.readUInt16BE(at + 3);
      if (len === 0 || len > MAX_RECORD) {
        this.#fail('malformed');
        return;
      }
      if (at + RECORD_HEADER + len > limit) {
        if (at + RECORD_HEADER + len > this.#max) this.#fail('oversized');
        return;
      }
      this.#records++;
      this.#gather(raw, at + RECORD_HEADER, len);
      if (this.#status !== 'need-more') return;
      this.#recordAt = at + RECORD_HEADER + len;
      if (this.#hsLength >= 4) {
        const hs = this.#hsView();
        if (hs[0] !== CLIENT_HELLO) {
          this.#fail('malformed');
          return;
        }
        const msgLength = (hs[1] << 16) | (hs[2] << 8) | hs[3];
        if (4 + msgLength > this.#max) {
          this.#fail('oversized');
          return;
        }
        if (this.#hsLength >= 4 + msgLength) {
          this.#finish(hs, msgLength);
          return;
        }
      }
    }
  }

  #gather(raw: Buffer, from: number, len: number): void {
    if (this.#records === 1) {
      // The common case, one record: the handshake bytes are a view of the raw bytes.
      this.#hs = raw.subarray(from, from + len);
      this.#hsLength = len;
      return;
    }
    if (this.#records === 2) {
      // Fragmented: one accumulator of the bound's size, so that many tiny records copy linearly.
      const acc = Buffer.allocUnsafe(this.#max);
      this.#hsView().copy(acc, 0);
      this.#hs = acc;
    }
    if (this.#hsLength + len > this.#max) {
      this.#fail('oversized');
      return;
    }
    raw.copy(this.#hs, this.#hsLength, from, from + len);
    this.#hsLength += len;
  }

  #hsView(): Buffer {
    return this.#hs.subarray(0, this.#hsLength);
  }

  #finish(hs: Buffer, msgLength: number): void {
    try {
      const parsed = parseClientHelloBody(hs, 4, 4 + msgLength);
      this.#info = { ...parsed, fragmented: this.#records > 1, bytes: this.#recordAt };
      this.#status = 'done';
    } catch (err) {
      if (!(err instanceof Malformed)) throw err;
      this.#fail('malformed');
    }
  }
}

/**
 * Whether the first bytes are an HTTP request line's method and its space (RFC 9110 section 9:
 * methods are tokens; real ones are upper-case letters), which also covers the HTTP/2 preface
 * "PRI * HTTP/2.0". Null while the bytes so far could still be one. SSLv2-style hellos and other
 * protocols (an SSH banner "SSH-2.0-…") are not HTTP.
 */
function looksLikeHttp(raw: Buffer, limit: number): boolean | null {
  const n = Math.min(limit, 17);
  for (let i = 0; i < n; i++) {
    const b = raw[i];
    if (b === 0x20) return i > 0;
    if (b < 0x41 || b > 0x5a) return false;
  }
  return n === 17 ? false : null;
}

/** Parses the ClientHello body in hs[from, end). Throws Malformed. */
function parseClientHelloBody(hs: Buffer, from: number, end: number): Pick<ClientHelloInfo, 'serverName' | 'serverNameInvalid' | 'ticketKeyName'> {
  const c = new Cursor(hs, from, end);
  c.skip(2 + 32); // legacy_version, random
  const sid = c.u8();
  if (sid > 32) throw new Malformed();
  c.skip(sid);
  const suites = c.u16();
  if (suites < 2 || suites % 2 !== 0) throw new Malformed();
  c.skip(suites);
  const compressions = c.u8();
  if (compressions < 1) throw new Malformed();
  c.skip(compressions);
  let serverName: string | null = null;
  let serverNameInvalid = false;
  let ticket: Buffer | null = null;
  let psk: Buffer | null = null;
  if (c.pos === end) return { serverName, serverNameInvalid, ticketKeyName: null }; // no extensions (TLS 1.2 allows it)
  const extLength = c.u16();
  if (c.pos + extLength !== end) throw new Malformed();
  const seen = new Set<number>();
  while (c.pos < end) {
    const type = c.u16();
    const len = c.u16();
    c.need(len);
    const start = c.pos;
    // RFC 8446 section 4.2: "There MUST NOT be more than one extension of the same type".
    if (seen.has(type)) throw new Malformed();
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      const r = readServerName(hs, start, start + len);
      serverName = r.name;
      serverNameInvalid = r.invalid;
    } else if (type === EXT_SESSION_TICKET) {
      if (len >= TICKET_KEY_NAME_BYTES) ticket = Buffer.from(hs.subarray(start, start + TICKET_KEY_NAME_BYTES));
    } else if (type === EXT_PRE_SHARED_KEY) {
      psk = readFirstPskIdentity(hs, start, start + len);
    }
    c.pos = start + len;
  }
  return { serverName, serverNameInvalid, ticketKeyName: psk ?? ticket };
}

function readServerName(hs: Buffer, from: number, end: number): { name: string | null; invalid: boolean } {
  const c = new Cursor(hs, from, end);
  const listLength = c.u16();
  if (c.pos + listLength !== end || listLength === 0) throw new Malformed();
  let name: string | null = null;
  let invalid = false;
  while (c.pos < end) {
    const type = c.u8();
    const len = c.u16();
    c.need(len);
    if (type === 0 && name === null && !invalid) {
      if (len === 0) throw new Malformed();
      let printable = true;
      for (let i = c.pos; i < c.pos + len; i++) {
        const b = hs[i];
        if (b < 0x21 || b > 0x7e) {
          printable = false;
          break;
        }
      }
      const n = printable ? normalizeName(hs.toString('latin1', c.pos, c.pos + len)) : null;
      if (n === null) invalid = true;
      else name = n;
    } else if (type === 0) {
      // RFC 6066 section 3: at most one name of a type.
      throw new Malformed();
    }
    c.pos += len;
  }
  return { name, invalid };
}

function readFirstPskIdentity(hs: Buffer, from: number, end: number): Buffer | null {
  const c = new Cursor(hs, from, end);
  const identities = c.u16();
  c.need(identities);
  if (identities < 2 + 1 + 4) throw new Malformed();
  const len = c.u16();
  if (len === 0 || 2 + len + 4 > identities) throw new Malformed();
  c.need(len);
  return len >= TICKET_KEY_NAME_BYTES ? Buffer.from(hs.subarray(c.pos, c.pos + TICKET_KEY_NAME_BYTES)) : null;
}
