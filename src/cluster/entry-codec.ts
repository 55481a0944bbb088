/**
 * FlowEntry <-> bytes, for replication batches and snapshot chunks (docs/protocol.md, "Entry
 * batch").
 *
 *   batch = u32 count, then count entries
 *   entry = u8  flags      bit0 ended, bit1 has backup, bit2 has backend; other bits must be 0
 *           ref service
 *           str key        (varint byte length + UTF-8, at most MAX_KEY_BYTES)
 *           ref primary
 *           ref backup     (only if bit1)
 *           ref backend    (only if bit2)
 *           ref writer
 *           f64 version    (packed HLC, a non-negative safe integer)
 *           f64 lastActive (wall-clock ms, finite)
 *   ref   = varint r: r = 0 introduces a literal (str, at most MAX_NAME_BYTES) that is appended to
 *           the batch's string table; r >= 1 names table[r - 1].
 *
 * Why the string table: service names, node ids and backend addresses repeat in nearly every
 * entry, so after their first mention they cost one byte each. A typical entry (15-byte client
 * address key) takes ~40 bytes instead of ~65, and decoding creates one string per entry (the key)
 * instead of six. The table is defined on first use, so encoding is one pass with no copy.
 *
 * Decoding is all-or-nothing: decodeEntryBatch() returns the whole array or throws
 * FRAME_MALFORMED, and callers merge only after it returned, so a corrupted batch never applies in
 * part.
 */
import { ErrorCodes, TandemError } from '../errors.js';
import type { FlowEntry } from './flow-entry.js';
import { ByteReader, ByteWriter, malformed } from './frame.js';

export const MAX_KEY_BYTES = 65_535;
export const MAX_NAME_BYTES = 4096;

const F_ENDED = 0x01;
const F_BACKUP = 0x02;
const F_BACKEND = 0x04;
const F_KNOWN = F_ENDED | F_BACKUP | F_BACKEND;
/** flags + 5 one-byte refs/lengths + 2 f64: the least an entry can take, to bound `count`. */
const MIN_ENTRY_BYTES = 1 + 4 + 16;

function tooLarge(what: string, n: number, limit: number): TandemError {
  return new TandemError(ErrorCodes.FRAME_TOO_LARGE, `${what} is ${n} bytes, limit ${limit}`);
}

/** Checks a string against a byte limit without measuring it in the common short case. */
function checkLength(s: string, limit: number, what: string): void {
  if (s.length * 3 <= limit) return;
  const n = Buffer.byteLength(s, 'utf8');
  if (n > limit) throw tooLarge(what, n, limit);
}

/**
 * Appends entries to a ByteWriter as one batch. The string table lives as long as the encoder,
 * i.e. one batch (one frame).
 */
export class EntryBatchEncoder {
  readonly #w: ByteWriter;
  readonly #countAt: number;
  readonly #table = new Map<string, number>();
  #count = 0;

  constructor(w: ByteWriter) {
    this.#w = w;
    this.#countAt = w.length;
    w.u32(0);
  }

  get count(): number {
    return this.#count;
  }

  /** Bytes of the frame so far. */
  get bytes(): number {
    return this.#w.length;
  }

  /**
   * Append one entry. Throws FRAME_TOO_LARGE, having written nothing, when a string exceeds its
   * limit (all lengths are checked before the first byte is written).
   */
  add(e: FlowEntry): void {
    checkLength(e.key, MAX_KEY_BYTES, 'flow key');
    checkLength(e.service, MAX_NAME_BYTES, 'service name');
    checkLength(e.primary, MAX_NAME_BYTES, 'primary id');
    checkLength(e.writer, MAX_NAME_BYTES, 'writer id');
    if (e.backup !== null) checkLength(e.backup, MAX_NAME_BYTES, 'backup id');
    if (e.backend !== null) checkLength(e.backend, MAX_NAME_BYTES, 'backend');
    const w = this.#w;
    let flags = 0;
    if (e.ended) flags |= F_ENDED;
    if (e.backup !== null) flags |= F_BACKUP;
    if (e.backend !== null) flags |= F_BACKEND;
    w.u8(flags);
    this.#ref(e.service);
    w.str(e.key);
    this.#ref(e.primary);
    if (e.backup !== null) this.#ref(e.backup);
    if (e.backend !== null) this.#ref(e.backend);
    this.#ref(e.writer);
    w.f64(e.version);
    w.f64(e.lastActive);
    this.#count++;
  }

  /** Patch the count in; the writer then holds a complete batch. */
  finish(): void {
    this.#w.patchU32(this.#countAt, this.#count);
  }

  #ref(s: string): void {
    const idx = this.#table.get(s);
    if (idx !== undefined) {
      this.#w.varint(idx);
      return;
    }
    this.#table.set(s, this.#table.size + 1);
    this.#w.u8(0);
    this.#w.str(s);
  }
}

/** Encode entries as a standalone batch (tests, tools). */
export function encodeEntryBatch(entries: Iterable<FlowEntry>): Buffer {
  const w = new ByteWriter(1024);
  const enc = new EntryBatchEncoder(w);
  for (const e of entries) enc.add(e);
  enc.finish();
  return Buffer.from(w.view());
}

/**
 * Names (services, node ids, backends) are interned across batches: every batch defines its own
 * string table, and without this each batch's entries would pin their own copies of "lb1" etc.
 * for as long as they sit in the flow table. Bounded, since the peer chooses the strings: past
 * MAX_INTERNED distinct names the map starts over (correctness never depends on it).
 */
const MAX_INTERNED = 10_000;
let interned = new Map<string, string>();
function intern(s: string): string {
  const hit = interned.get(s);
  if (hit !== undefined) return hit;
  if (interned.size >= MAX_INTERNED) interned = new Map();
  interned.set(s, s);
  return s;
}

/**
 * Decode one batch, consuming it from the reader. All entries or FRAME_MALFORMED. With
 * `receivedAt`, every entry's lastActive is that time instead of the sender's (still validated):
 * a receiver counts idleness in its own clock, from when it last heard of the flow, so that clocks
 * of different nodes are never compared (docs/reliability.md, clock skew).
 */
export function decodeEntryBatch(r: ByteReader, receivedAt?: number): FlowEntry[] {
  const count = r.u32('entry count');
  if (count * MIN_ENTRY_BYTES > r.remaining) throw malformed(`entry count ${count} does not fit in ${r.remaining} bytes`);
  const table: string[] = [];
  const out = new Array<FlowEntry>(count);
  const ref = (what: string): string => {
    const v = r.varint(what);
    if (v === 0) {
      const s = intern(r.str(MAX_NAME_BYTES, what));
      table.push(s);
      return s;
    }
    if (v > table.length) throw malformed(`${what} refers to string #${v}, only ${table.length} defined`);
    return table[v - 1];
  };
  for (let i = 0; i < count; i++) {
    const flags = r.u8('entry flags');
    if ((flags & ~F_KNOWN) !== 0) throw malformed(`entry ${i}: unknown flags 0x${flags.toString(16)}`);
    const service = ref('service');
    const key = r.str(MAX_KEY_BYTES, 'flow key');
    const primary = ref('primary');
    const backup = (flags & F_BACKUP) !== 0 ? ref('backup') : null;
    const backend = (flags & F_BACKEND) !== 0 ? ref('backend') : null;
    const writer = ref('writer');
    const version = r.f64('version');
    const lastActive = r.f64('lastActive');
    if (service.length === 0 || primary.length === 0 || writer.length === 0) throw malformed(`entry ${i}: empty service, primary or writer`);
    if (!Number.isSafeInteger(version) || version < 0) throw malformed(`entry ${i}: version ${version} is not a non-negative safe integer`);
    if (!Number.isFinite(lastActive)) throw malformed(`entry ${i}: lastActive is not finite`);
    // Field order as in FlowEntry, so that decoded entries share one hidden class with local ones.
    out[i] = { service, key, primary, backup, backend, version, writer, lastActive: receivedAt ?? lastActive, ended: (flags & F_ENDED) !== 0 };
  }
  return out;
}

/** Decode a standalone batch that must fill the buffer exactly. */
export function decodeEntryBatchBuffer(buf: Buffer): FlowEntry[] {
  const r = new ByteReader(buf);
  const entries = decodeEntryBatch(r);
  r.end('entry batch');
  return entries;
}
