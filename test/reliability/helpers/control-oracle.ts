/**
 * An independent model of what a node must do with the bytes an authenticated peer sends on a
 * control link, written from docs/protocol.md (sections 1, 4, 5, 6, 7 and 8) rather than from the
 * code: the fuzz test feeds the same bytes to a live node and to this model and compares the
 * rejection counts by reason and the entries that may have reached the table. Where the document
 * leaves an order open (two faults in one frame), the model follows the order the document lists
 * the checks in; a disagreement is reported, and either the model or the node is wrong.
 */

export const CONTROL_TYPES = new Set([0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16]);
export const MAX_FRAME_BYTES = 1024 * 1024;
const MAX_KEY_BYTES = 65_535;
const MAX_NAME_BYTES = 4096;
const MIN_ENTRY_BYTES = 21;
/** hlc.ts DEFAULT_MAX_AHEAD_MS: remote versions further ahead than this are refused (not a frame rejection). */
const HLC_MAX_AHEAD_MS = 24 * 3_600_000;

export type Reason = 'garbage' | 'oversized' | 'malformed' | 'protocol';

/** The receiver's view of the sender's replication stream (docs/protocol.md section 5). */
export interface StreamState {
  incarnation: string | null;
  lastSeq: number;
  complete: boolean;
}

export interface ModelEntry {
  readonly service: string;
  readonly key: string;
  readonly version: number;
}

export interface Verdict {
  /** The reason the node must drop the link for, or null when every complete frame is fine. */
  readonly rejected: Reason | null;
  /** Entries of batches the node must apply (before the HLC's own filter, see `hlcRefused`). */
  readonly applied: ModelEntry[];
  /** Applied-batch entries whose version the HLC refuses: must not be in the table. */
  readonly hlcRefused: ModelEntry[];
  /** Frames fully processed before the verdict. */
  readonly frames: number;
}

class Bad extends Error {
  constructor(readonly reason: Reason, message: string) {
    super(message);
  }
}

const fatal = new TextDecoder('utf-8', { fatal: true });

class Reader {
  pos = 0;
  constructor(readonly b: Buffer) {}
  get left(): number {
    return this.b.length - this.pos;
  }
  need(n: number): void {
    if (this.left < n) throw new Bad('malformed', `truncated: need ${n}, have ${this.left}`);
  }
  u8(): number {
    this.need(1);
    return this.b[this.pos++];
  }
  u32(): number {
    this.need(4);
    const v = this.b.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  /** "u64 carries values below 2^53 (a receiver refuses larger ones)". */
  u64(): number {
    this.need(8);
    const v = this.b.readBigUInt64BE(this.pos);
    this.pos += 8;
    if (v >= 2n ** 53n) throw new Bad('malformed', 'u64 >= 2^53');
    return Number(v);
  }
  f64(): number {
    this.need(8);
    const v = this.b.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }
  /** "unsigned LEB128, at most 5 bytes, value below 2^31". */
  varint(): number {
    let v = 0;
    for (let i = 0; i < 5; i++) {
      const byte = this.u8();
      v += (byte & 0x7f) * 2 ** (7 * i);
      if ((byte & 0x80) === 0) {
        if (v >= 2 ** 31) throw new Bad('malformed', 'varint >= 2^31');
        return v;
      }
    }
    throw new Bad('malformed', 'varint longer than 5 bytes');
  }
  /** "varint byte length followed by that many bytes of UTF-8 (invalid UTF-8 is refused)". */
  str(max: number): string {
    const n = this.varint();
    if (n > max) throw new Bad('malformed', `string of ${n} bytes`);
    this.need(n);
    const s = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    try {
      return fatal.decode(s);
    } catch {
      throw new Bad('malformed', 'invalid UTF-8');
    }
  }
  end(): void {
    if (this.left !== 0) throw new Bad('malformed', `${this.left} trailing bytes`);
  }
}

/** Section 7: the whole batch or nothing. */
function decodeBatch(r: Reader): ModelEntry[] {
  const count = r.u32();
  if (count * MIN_ENTRY_BYTES > r.left) throw new Bad('malformed', `count ${count} cannot fit`);
  const table: string[] = [];
  const ref = (): string => {
    const v = r.varint();
    if (v === 0) {
      const s = r.str(MAX_NAME_BYTES);
      table.push(s);
      return s;
    }
    if (v > table.length) throw new Bad('malformed', 'reference past the string table');
    return table[v - 1];
  };
  const out: ModelEntry[] = [];
  for (let i = 0; i < count; i++) {
    const flags = r.u8();
    if ((flags & ~0x07) !== 0) throw new Bad('malformed', 'unknown flag bits');
    const service = ref();
    const key = r.str(MAX_KEY_BYTES);
    const primary = ref();
    if (flags & 0x02) ref();
    if (flags & 0x04) ref();
    const writer = ref();
    const version = r.f64();
    const lastActive = r.f64();
    if (service === '' || primary === '' || writer === '') throw new Bad('malformed', 'empty name');
    if (!Number.isSafeInteger(version) || version < 0) throw new Bad('malformed', 'bad version');
    if (!Number.isFinite(lastActive)) throw new Bad('malformed', 'lastActive not finite');
    out.push({ service, key, version });
  }
  return out;
}

/**
 * Runs the model over every byte sent after the prelude, starting from `state` (updated in
 * place). Frames the stream ends inside of are incomplete: the node sees the connection close,
 * which is not a rejection.
 */
export function judge(bytes: Buffer, state: StreamState, nowMs = Date.now()): Verdict {
  const applied: ModelEntry[] = [];
  const hlcRefused: ModelEntry[] = [];
  let pos = 0;
  let frames = 0;
  const apply = (entries: ModelEntry[]): void => {
    for (const e of entries) {
      // "hlc.observe(version), entries the clock refuses are skipped".
      if (Math.floor(e.version / 1024) - nowMs > HLC_MAX_AHEAD_MS) hlcRefused.push(e);
      else applied.push(e);
    }
  };
  try {
    for (;;) {
      const avail = bytes.length - pos;
      if (avail < 4) break;
      const length = bytes.readUInt32BE(pos);
      // Section 1: "length < 2, another version or a type not allowed ... are refused as soon as
      // the 6 header bytes are in"; the length limit "before buffering any of it".
      if (avail >= 6) {
        if (bytes[pos + 4] !== 1) throw new Bad('garbage', 'version');
        if (!CONTROL_TYPES.has(bytes[pos + 5])) throw new Bad('garbage', `type 0x${bytes[pos + 5].toString(16)}`);
      }
      if (length > MAX_FRAME_BYTES) throw new Bad('oversized', `length ${length}`);
      if (length < 2) throw new Bad('garbage', `length ${length}`);
      if (avail < 4 + length) break;
      const type = bytes[pos + 5];
      const r = new Reader(bytes.subarray(pos + 6, pos + 4 + length));
      pos += 4 + length;
      handle(type, r, state, apply);
      frames++;
    }
  } catch (err) {
    if (err instanceof Bad) return { rejected: err.reason, applied, hlcRefused, frames };
    throw err;
  }
  return { rejected: null, applied, hlcRefused, frames };
}

function handle(type: number, r: Reader, s: StreamState, apply: (e: ModelEntry[]) => void): void {
  switch (type) {
    case 0x11: {
      // HEARTBEAT: empty (a build from before views), or the sender's view: "u8 count · count ×
      // (str peer id · u32 milliseconds)"; "a malformed view drops the link".
      if (r.b.length === 0) return;
      const n = r.u8();
      for (let i = 0; i < n; i++) {
        r.str(255);
        r.u32();
      }
      r.end();
      return;
    }
    case 0x10: {
      // OPEN, 25 bytes. A different sender incarnation voids our position in its stream.
      r.need(8);
      const inc = r.b.subarray(r.pos, r.pos + 8).toString('hex');
      r.pos += 8;
      r.u8();
      r.need(8);
      r.pos += 8;
      r.u64();
      r.end();
      if (s.incarnation !== null && s.incarnation !== inc) {
        s.incarnation = null;
        s.lastSeq = 0;
        s.complete = false;
      }
      return;
    }
    case 0x12: {
      // ENTRIES: u64 seq · batch. Duplicates are ignored, a gap is a protocol violation.
      const seq = r.u64();
      if (s.incarnation === null) throw new Bad('protocol', 'ENTRIES before the stream was established');
      if (seq <= s.lastSeq) return;
      if (seq !== s.lastSeq + 1) {
        s.complete = false;
        throw new Bad('protocol', `gap: ${seq} after ${s.lastSeq}`);
      }
      const entries = decodeBatch(r);
      r.end();
      s.lastSeq = seq;
      apply(entries);
      return;
    }
    case 0x13: // ACK
      r.u64();
      r.end();
      return;
    case 0x14: {
      // RESYNC_BEGIN: 8 bytes incarnation · u64 baseSeq · u8 flags
      r.need(8);
      const inc = r.b.subarray(r.pos, r.pos + 8).toString('hex');
      r.pos += 8;
      const base = r.u64();
      r.u8();
      r.end();
      s.incarnation = inc;
      s.lastSeq = base;
      s.complete = false;
      return;
    }
    case 0x15: {
      // SNAPSHOT_CHUNK: only inside a resync.
      if (s.incarnation === null || s.complete) throw new Bad('protocol', 'SNAPSHOT_CHUNK outside a resync');
      const entries = decodeBatch(r);
      r.end();
      apply(entries);
      return;
    }
    case 0x16: {
      // RESYNC_END: u64 count, only inside a resync.
      r.u64();
      r.end();
      if (s.incarnation === null || s.complete) throw new Bad('protocol', 'RESYNC_END outside a resync');
      s.complete = true;
      return;
    }
    default:
      throw new Bad('garbage', 'type');
  }
}
