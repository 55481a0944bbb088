/**
 * Framing of the cluster's peer links (docs/protocol.md, "Frames").
 *
 *   frame = u32 length (big-endian, counts the bytes after itself: 2 + payload)
 *           u8  protocolVersion (PROTOCOL_VERSION)
 *           u8  type (FrameType)
 *           payload (length - 2 bytes)
 *
 * All multi-byte integers and floats on the wire are big-endian (network order). The length
 * comes first so that a receiver can refuse an oversized frame from its first four bytes, before
 * buffering any of it; version and type are checked before the payload is looked at.
 *
 * ByteWriter (here) and ByteReader (byte-reader.ts) are the payload primitives used by every
 * message codec; the reader never reads past its end and reports FRAME_MALFORMED instead.
 */
import type { Socket } from 'node:net';
import { ErrorCodes, TandemError } from '../errors.js';
import { malformed } from './byte-reader.js';

export { ByteReader, malformed, utf8 } from './byte-reader.js';

export const PROTOCOL_VERSION = 1;
export const FRAME_HEADER_BYTES = 6;
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;

export const FrameType = {
  // Handshake (handshake.ts), the only frames accepted before authentication.
  HELLO: 0x01,
  HELLO_REPLY: 0x02,
  HELLO_PROOF: 0x03,
  // Control link (membership.ts, replication.ts, snapshot.ts).
  OPEN: 0x10,
  HEARTBEAT: 0x11,
  ENTRIES: 0x12,
  ACK: 0x13,
  RESYNC_BEGIN: 0x14,
  SNAPSHOT_CHUNK: 0x15,
  RESYNC_END: 0x16,
  // Control link, cluster-wide state beside the flow table (cluster.ts, onControlFrame()).
  TLS_TICKET_KEYS: 0x17,
  RATE_COUNTS: 0x18,
  ACME_STATE: 0x19,
  // Control link, the primary's choice of a new flow's backend, relayed once (claims.ts).
  CLAIM: 0x1a,
  CLAIM_REPLY: 0x1b,
} as const;
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

export const HANDSHAKE_FRAME_TYPES: ReadonlySet<number> = new Set([FrameType.HELLO, FrameType.HELLO_REPLY, FrameType.HELLO_PROOF]);
export const CONTROL_FRAME_TYPES: ReadonlySet<number> = new Set([
  FrameType.OPEN,
  FrameType.HEARTBEAT,
  FrameType.ENTRIES,
  FrameType.ACK,
  FrameType.RESYNC_BEGIN,
  FrameType.SNAPSHOT_CHUNK,
  FrameType.RESYNC_END,
  FrameType.TLS_TICKET_KEYS,
  FrameType.RATE_COUNTS,
  FrameType.ACME_STATE,
  FrameType.CLAIM,
  FrameType.CLAIM_REPLY,
]);
/** Control frames owned by a handler registered with Cluster.onControlFrame(); ignored when none is. */
export const EXTENSION_FRAME_TYPES: ReadonlySet<number> = new Set([FrameType.TLS_TICKET_KEYS, FrameType.RATE_COUNTS, FrameType.ACME_STATE, FrameType.CLAIM, FrameType.CLAIM_REPLY]);

export interface Frame {
  readonly type: number;
  /** A view into the received bytes: valid until the next push(); copy what must outlive it. */
  readonly payload: Buffer;
  /** Bytes on the wire, header included. */
  readonly size: number;
}


/**
 * A frame that parsed but breaks the rules of its stream (a sequence gap, a snapshot chunk outside
 * a resync). Still FRAME_MALFORMED for callers; counted as reason "protocol".
 */
export class StreamViolation extends TandemError {
  constructor(message: string) {
    super(ErrorCodes.FRAME_MALFORMED, message);
    this.name = 'StreamViolation';
  }
}

const TWO_32 = 2 ** 32;

/**
 * A growable output buffer. `ByteWriter.frame(type)` reserves the 6 header bytes so that a whole
 * frame is built in one allocation and finished in place (no concat).
 */
export class ByteWriter {
  #buf: Buffer;
  #pos: number;
  #type = -1;

  constructor(initialBytes = 256) {
    this.#buf = Buffer.allocUnsafe(initialBytes);
    this.#pos = 0;
  }

  static frame(type: number, initialBytes = 256): ByteWriter {
    const w = new ByteWriter(Math.max(initialBytes, FRAME_HEADER_BYTES + 16));
    w.#type = type;
    w.#pos = FRAME_HEADER_BYTES;
    return w;
  }

  get length(): number {
    return this.#pos;
  }

  /** Move back to an earlier length, dropping what was written after it. */
  truncate(length: number): void {
    if (length < 0 || length > this.#pos) throw new RangeError('truncate beyond written length');
    this.#pos = length;
  }

  #ensure(n: number): void {
    const need = this.#pos + n;
    if (need <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.#buf.copy(next, 0, 0, this.#pos);
    this.#buf = next;
  }

  u8(v: number): void {
    this.#ensure(1);
    this.#buf[this.#pos++] = v;
  }

  u16(v: number): void {
    this.#ensure(2);
    this.#buf.writeUInt16BE(v, this.#pos);
    this.#pos += 2;
  }

  u32(v: number): void {
    this.#ensure(4);
    this.#buf.writeUInt32BE(v >>> 0, this.#pos);
    this.#pos += 4;
  }

  /** An unsigned integer up to 2^53 - 1 as 8 bytes (hi u32, lo u32). */
  u64(v: number): void {
    this.#ensure(8);
    this.#buf.writeUInt32BE(Math.floor(v / TWO_32), this.#pos);
    this.#buf.writeUInt32BE(v >>> 0, this.#pos + 4);
    this.#pos += 8;
  }

  f64(v: number): void {
    this.#ensure(8);
    this.#buf.writeDoubleBE(v, this.#pos);
    this.#pos += 8;
  }

  /** LEB128 unsigned varint, for values below 2^31 (counts, lengths, string indices). */
  varint(v: number): void {
    this.#ensure(5);
    const b = this.#buf;
    while (v >= 0x80) {
      b[this.#pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    b[this.#pos++] = v;
  }

  bytes(src: Uint8Array): void {
    this.#ensure(src.length);
    this.#buf.set(src, this.#pos);
    this.#pos += src.length;
  }

  /** varint byte length + UTF-8. Returns the byte length. */
  str(s: string): number {
    // Short strings (the common case: ids, keys, addresses) fit a 1-byte length whatever their
    // content (42 chars * 3 bytes < 128), so the string is encoded straight after the length slot
    // and the length is patched in, without a separate Buffer.byteLength pass.
    const len = s.length;
    if (len <= 42) {
      this.#ensure(1 + len * 3);
      const b = this.#buf;
      const start = this.#pos + 1;
      // ASCII in a JS loop: for strings this short it beats a call into Buffer#write.
      let j = 0;
      for (; j < len; j++) {
        const c = s.charCodeAt(j);
        if (c >= 0x80) break;
        b[start + j] = c;
      }
      const n = j === len ? len : b.write(s, start, 'utf8');
      b[this.#pos] = n;
      this.#pos += 1 + n;
      return n;
    }
    const n = Buffer.byteLength(s, 'utf8');
    this.varint(n);
    this.#ensure(n);
    this.#buf.write(s, this.#pos, 'utf8');
    this.#pos += n;
    return n;
  }

  /** Overwrite 4 bytes written earlier (a count known only at the end). */
  patchU32(offset: number, v: number): void {
    if (offset < 0 || offset + 4 > this.#pos) throw new RangeError('patch outside written bytes');
    this.#buf.writeUInt32BE(v >>> 0, offset);
  }

  /** The bytes written so far (a view, not a copy). */
  view(): Buffer {
    return this.#buf.subarray(0, this.#pos);
  }

  /** Finish a frame started with ByteWriter.frame(): writes the header, returns the frame bytes. */
  finish(): Buffer {
    if (this.#type < 0) throw new Error('ByteWriter.finish() needs a writer made by ByteWriter.frame()');
    const b = this.#buf;
    b.writeUInt32BE(this.#pos - 4, 0);
    b[4] = PROTOCOL_VERSION;
    b[5] = this.#type;
    return b.subarray(0, this.#pos);
  }
}

/** A frame with a fixed small payload, e.g. a heartbeat or an ack. */
export function encodeFrame(type: number, payload?: Uint8Array): Buffer {
  const n = payload?.length ?? 0;
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + n);
  b.writeUInt32BE(2 + n, 0);
  b[4] = PROTOCOL_VERSION;
  b[5] = type;
  if (payload !== undefined) b.set(payload, FRAME_HEADER_BYTES);
  return b;
}

/**
 * Streaming decoder: push() received chunks, then call next() until it returns null. A frame
 * wholly inside one chunk is returned as a view of that chunk (no copy); only a frame spanning
 * chunks is assembled, once, when all of its bytes are there (so a 1 MiB frame arriving in 64 KiB
 * reads costs one copy, not sixteen growing ones).
 *
 * Parsing is lazy (in next(), not push()), so the handshake can stop right after its last frame
 * and hand the untouched rest to whoever owns the connection next (remaining()).
 */
export class FrameDecoder {
  readonly #maxFrameBytes: number;
  readonly #types: ReadonlySet<number>;
  #chunks: Buffer[] = [];
  #head = 0;
  #total = 0;

  constructor(opts: { maxFrameBytes?: number; types: ReadonlySet<number> }) {
    this.#maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.#types = opts.types;
  }

  get bufferedBytes(): number {
    return this.#total;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#total += chunk.length;
  }

  /** The next complete frame, or null when more bytes are needed. Throws on a bad header. */
  next(): Frame | null {
    if (this.#total < 4) return null;
    const first = this.#chunks[0];
    const avail = first.length - this.#head;
    let length: number;
    if (avail >= 4) length = first.readUInt32BE(this.#head);
    else length = this.#peek(4).readUInt32BE(0);
    // Version and type first when they are in (so random bytes read as garbage, not as a huge
    // length), then the length, all before waiting for the body: an attacker announcing 4 GiB
    // is dropped at once.
    if (this.#total >= FRAME_HEADER_BYTES) {
      if (avail >= FRAME_HEADER_BYTES) this.#checkHeader(first[this.#head + 4], first[this.#head + 5]);
      else {
        const h = this.#peek(FRAME_HEADER_BYTES);
        this.#checkHeader(h[4], h[5]);
      }
    }
    if (length > this.#maxFrameBytes) {
      throw new TandemError(ErrorCodes.FRAME_TOO_LARGE, `frame of ${length} bytes exceeds the limit of ${this.#maxFrameBytes}`);
    }
    if (length < 2) throw malformed(`frame length ${length} is shorter than its header`);
    const size = 4 + length;
    if (this.#total < size) return null;
    let bytes: Buffer;
    if (avail >= size) {
      bytes = first.subarray(this.#head, this.#head + size);
      this.#advance(size);
    } else {
      bytes = this.#peek(size);
      this.#advance(size);
    }
    return { type: bytes[5], payload: bytes.subarray(FRAME_HEADER_BYTES), size };
  }

  /** Every byte not yet returned as a frame, in one Buffer; the decoder is empty afterwards. */
  remaining(): Buffer {
    const out = this.#total === 0 ? Buffer.alloc(0) : this.#peek(this.#total);
    this.#chunks = [];
    this.#head = 0;
    this.#total = 0;
    return out;
  }

  #checkHeader(version: number, type: number): void {
    if (version !== PROTOCOL_VERSION) throw malformed(`unsupported protocol version ${version}`);
    if (!this.#types.has(type)) throw malformed(`unexpected frame type 0x${type.toString(16)}`);
  }

  /** The first n buffered bytes, copied only if they span chunks. */
  #peek(n: number): Buffer {
    const first = this.#chunks[0];
    if (first.length - this.#head >= n) return first.subarray(this.#head, this.#head + n);
    const out = Buffer.allocUnsafe(n);
    let copied = 0;
    let off = this.#head;
    for (const c of this.#chunks) {
      const take = Math.min(c.length - off, n - copied);
      c.copy(out, copied, off, off + take);
      copied += take;
      off = 0;
      if (copied === n) break;
    }
    return out;
  }

  #advance(n: number): void {
    this.#total -= n;
    while (n > 0) {
      const first = this.#chunks[0];
      const avail = first.length - this.#head;
      if (n < avail) {
        this.#head += n;
        return;
      }
      n -= avail;
      this.#chunks.shift();
      this.#head = 0;
    }
  }
}

/**
 * Output side of a link. Writes are batched per event-loop turn: the first write in a tick
 * corks the socket and a process.nextTick() uncorks it, so every frame written during the same
 * macrotask (a replication flush fanning out, acks, a heartbeat) leaves in one writev() call —
 * the pattern the Node.js docs give for writable.cork(). Replication itself batches one level up
 * (one ENTRIES frame per setImmediate turn, replication.ts).
 */
export class FrameWriter {
  readonly #socket: Socket;
  readonly #highWater: number;
  readonly #onWrite: ((bytes: number) => void) | undefined;
  #corked = false;

  constructor(socket: Socket, opts: { highWaterBytes: number; onWrite?: (bytes: number) => void }) {
    this.#socket = socket;
    this.#highWater = opts.highWaterBytes;
    this.#onWrite = opts.onWrite;
  }

  /** Queue one frame. Returns false when the link is congested (see `congested`) or closed. */
  write(frame: Buffer): boolean {
    const s = this.#socket;
    if (s.destroyed || s.writableEnded) return false;
    if (!this.#corked) {
      this.#corked = true;
      s.cork();
      process.nextTick(this.#uncork);
    }
    s.write(frame);
    this.#onWrite?.(frame.length);
    return !this.congested;
  }

  readonly #uncork = (): void => {
    this.#corked = false;
    this.#socket.uncork();
  };

  /** Bytes accepted but not yet handed to the kernel. */
  get pendingBytes(): number {
    return this.#socket.writableLength;
  }

  /**
   * True when more than highWaterBytes wait to be sent: callers stop and wait for 'drain'. Also
   * requires writableNeedDrain, i.e. that the stream will emit 'drain' at all (it does only after a
   * write() returned false, at its own highWaterMark), so a waiter can never hang.
   */
  get congested(): boolean {
    const s = this.#socket;
    return s.writableNeedDrain && s.writableLength > this.#highWater;
  }

  get closed(): boolean {
    return this.#socket.destroyed || this.#socket.writableEnded;
  }
}
