/**
 * Frames of the peer multiplexer (docs/protocol.md, "Data-plane multiplexing"): many forwarded
 * communications share one authenticated connection between two nodes. Pure: no I/O.
 *
 *   0        4      5       6          10
 *   | len u32 | type | flags | stream u32 | payload (len - 6 bytes) |
 *
 * `len` counts everything after itself. Integers are big-endian. The connection is already
 * mutually authenticated (src/cluster/handshake.ts), so frames carry no MAC and no timestamp:
 * the link is the freshness.
 */

export const FrameType = {
  /** Opens a stream; the payload is the opener's head (what it is, the protocol's business). */
  OPEN: 1,
  DATA: 2,
  /** The sender's half of the stream is done (also a flag on OPEN and DATA). */
  END: 3,
  /** Ends both halves at once; payload: code u8, reason (UTF-8, at most 255 bytes). */
  RESET: 4,
  /** Returns send credit for a stream; payload: increment u32. */
  WINDOW: 5,
} as const;
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

/** Flag on OPEN and DATA: this frame also ends the sender's half. */
export const FLAG_END = 0x01;

/** Why a stream was reset. Values are on the wire: never renumber. */
export const ResetCode = {
  /** The receiver consumed nothing of the stream: safe to send it elsewhere. */
  REFUSED: 1,
  /** The receiver is draining (stopping): nothing consumed, send it to the next owner. */
  DRAINING: 2,
  /** The sender no longer wants the stream (its client left, it timed out). */
  CANCEL: 3,
  /** The connection under the stream broke (never sent; raised locally). */
  CONNECTION_LOST: 4,
  /** The stream broke the protocol. */
  PROTOCOL: 5,
  /** The receiver failed while serving it. */
  INTERNAL: 6,
  /** The connection never reached the peer (its dial failed or timed out): nothing was sent. Local only. */
  UNREACHABLE: 7,
} as const;
export type ResetCodeValue = (typeof ResetCode)[keyof typeof ResetCode];
const RESET_NAMES = new Map<number, string>(Object.entries(ResetCode).map(([k, v]) => [v, k.toLowerCase().replace('_', '-')]));

export function resetName(code: number): string {
  return RESET_NAMES.get(code) ?? 'unknown';
}

export const HEADER_BYTES = 10;
/** Largest payload of one frame; DATA is split to this size so that streams interleave. */
export const MAX_PAYLOAD = 64 * 1024;
/** Largest OPEN payload (a request head and its routing fields). */
export const MAX_OPEN_PAYLOAD = 96 * 1024;
const MAX_REASON = 255;

function header(buf: Buffer, len: number, type: number, flags: number, stream: number): void {
  buf.writeUInt32BE(len + 6, 0);
  buf[4] = type;
  buf[5] = flags;
  buf.writeUInt32BE(stream, 6);
}

/** A whole frame with its payload copied behind the header (one buffer, one write). */
export function encodeFrame(type: FrameTypeCode, flags: number, stream: number, payload?: Buffer): Buffer {
  const n = payload === undefined ? 0 : payload.length;
  const buf = Buffer.allocUnsafe(HEADER_BYTES + n);
  header(buf, n, type, flags, stream);
  if (n > 0) payload!.copy(buf, HEADER_BYTES);
  return buf;
}

/** Only the header of a DATA frame, for a payload written right behind it without a copy. */
export function encodeDataHeader(stream: number, length: number, end: boolean): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_BYTES);
  header(buf, length, FrameType.DATA, end ? FLAG_END : 0, stream);
  return buf;
}

export function encodeReset(stream: number, code: ResetCodeValue, reason = ''): Buffer {
  const r = Buffer.from(reason.slice(0, MAX_REASON), 'utf8').subarray(0, MAX_REASON);
  const buf = Buffer.allocUnsafe(HEADER_BYTES + 1 + r.length);
  header(buf, 1 + r.length, FrameType.RESET, 0, stream);
  buf[HEADER_BYTES] = code;
  r.copy(buf, HEADER_BYTES + 1);
  return buf;
}

export function encodeWindow(stream: number, increment: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_BYTES + 4);
  header(buf, 4, FrameType.WINDOW, 0, stream);
  buf.writeUInt32BE(increment, HEADER_BYTES);
  return buf;
}

export interface FrameSink {
  frame(type: number, flags: number, stream: number, payload: Buffer): void;
  /** The bytes are not frames of this protocol; the connection must be closed. */
  malformed(reason: string): void;
}

/**
 * Incremental decoder: feed it socket chunks, it calls `sink.frame` for each whole frame. A frame
 * inside one chunk is handed out as a view of that chunk (no copy); only a frame cut across
 * chunks is assembled. Payload views stay valid: Node hands out a fresh Buffer per read.
 */
export class FrameDecoder {
  readonly #sink: FrameSink;
  #partial: Buffer | null = null;
  #failed = false;

  constructor(sink: FrameSink) {
    this.#sink = sink;
  }

  push(chunk: Buffer): void {
    if (this.#failed) return;
    let buf = chunk;
    if (this.#partial !== null) {
      buf = Buffer.concat([this.#partial, chunk]);
      this.#partial = null;
    }
    let off = 0;
    const end = buf.length;
    while (end - off >= 4) {
      const len = buf.readUInt32BE(off);
      if (len < 6 || len > MAX_OPEN_PAYLOAD + 6) {
        this.#failed = true;
        return this.#sink.malformed(`frame length ${len} out of bounds`);
      }
      if (end - off < 4 + len) break;
      const type = buf[off + 4];
      const flags = buf[off + 5];
      const stream = buf.readUInt32BE(off + 6);
      const payload = buf.subarray(off + HEADER_BYTES, off + 4 + len);
      off += 4 + len;
      if (type !== FrameType.OPEN && payload.length > MAX_PAYLOAD + 256) {
        this.#failed = true;
        return this.#sink.malformed(`frame of type ${type} with ${payload.length} bytes`);
      }
      this.#sink.frame(type, flags, stream, payload);
      if (this.#failed) return;
    }
    if (off < end) this.#partial = buf.subarray(off);
  }

  /** Stop decoding (the connection is being closed). */
  fail(): void {
    this.#failed = true;
    this.#partial = null;
  }
}
