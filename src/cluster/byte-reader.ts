/**
 * Bounds-checked reading of payloads (the counterpart of ByteWriter in frame.ts). Every failure is
 * a TandemError FRAME_MALFORMED: a peer's bytes can make a message fail to decode, never make the
 * decoder read outside the payload or return half a value.
 */
import { ErrorCodes, TandemError } from '../errors.js';

export function malformed(message: string): TandemError {
  return new TandemError(ErrorCodes.FRAME_MALFORMED, message);
}

const TWO_32 = 2 ** 32;

/** Bounds-checked reads over one payload. Every failure is FRAME_MALFORMED. */
export class ByteReader {
  readonly #buf: Buffer;
  #pos: number;
  readonly #end: number;

  constructor(buf: Buffer) {
    this.#buf = buf;
    this.#pos = 0;
    this.#end = buf.length;
  }

  get remaining(): number {
    return this.#end - this.#pos;
  }

  #need(n: number, what: string): void {
    if (this.#end - this.#pos < n) throw malformed(`truncated payload: ${what} needs ${n} bytes, ${this.#end - this.#pos} left`);
  }

  u8(what = 'u8'): number {
    this.#need(1, what);
    return this.#buf[this.#pos++];
  }

  u16(what = 'u16'): number {
    this.#need(2, what);
    const v = this.#buf.readUInt16BE(this.#pos);
    this.#pos += 2;
    return v;
  }

  u32(what = 'u32'): number {
    this.#need(4, what);
    const v = this.#buf.readUInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  u64(what = 'u64'): number {
    this.#need(8, what);
    const hi = this.#buf.readUInt32BE(this.#pos);
    const lo = this.#buf.readUInt32BE(this.#pos + 4);
    this.#pos += 8;
    if (hi > 0x1fffff) throw malformed(`${what} exceeds 2^53`);
    return hi * TWO_32 + lo;
  }

  f64(what = 'f64'): number {
    this.#need(8, what);
    const v = this.#buf.readDoubleBE(this.#pos);
    this.#pos += 8;
    return v;
  }

  /** LEB128 varint, at most 5 bytes and below 2^31. */
  varint(what = 'varint'): number {
    let v = 0;
    let shift = 0;
    for (let i = 0; i < 5; i++) {
      this.#need(1, what);
      const b = this.#buf[this.#pos++];
      v += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) {
        if (v > 0x7fffffff) throw malformed(`${what} too large`);
        return v;
      }
      shift += 7;
    }
    throw malformed(`${what}: varint longer than 5 bytes`);
  }

  /** A view of the next n bytes (no copy). */
  bytes(n: number, what = 'bytes'): Buffer {
    this.#need(n, what);
    const v = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return v;
  }

  /** varint length + UTF-8, rejecting invalid UTF-8 and strings over maxBytes. */
  str(maxBytes: number, what = 'string'): string {
    const n = this.varint(what);
    if (n > maxBytes) throw malformed(`${what} is ${n} bytes, limit ${maxBytes}`);
    this.#need(n, what);
    const start = this.#pos;
    this.#pos += n;
    return utf8(this.#buf, start, start + n, what);
  }

  /** Require that the whole payload was consumed: trailing bytes mean a malformed message. */
  end(what = 'payload'): void {
    if (this.#pos !== this.#end) throw malformed(`${this.#end - this.#pos} unexpected trailing bytes after ${what}`);
  }
}

/**
 * Strict UTF-8: Buffer#toString silently replaces bad sequences with U+FFFD, which would make a
 * corrupted key compare equal to nothing and yet be stored. ASCII (the usual case: addresses,
 * ids, header values) is checked in a tight loop; anything else goes through a fatal TextDecoder.
 */
const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
export function utf8(buf: Buffer, start: number, end: number, what: string): string {
  for (let i = start; i < end; i++) {
    if (buf[i] >= 0x80) {
      try {
        return fatalUtf8.decode(buf.subarray(start, end));
      } catch {
        throw malformed(`${what} is not valid UTF-8`);
      }
    }
  }
  // Pure ASCII: latin1 decoding gives the same string and skips UTF-8 state handling.
  return buf.toString('latin1', start, end);
}

