/** ClientHello test material: the captured goldens, and builders for synthetic and re-fragmented ones. */
import { readFileSync } from 'node:fs';

export interface GoldenHello {
  readonly name: string;
  readonly client: string;
  readonly hex: string;
  readonly reads: number[];
  readonly expect: { serverName: string | null; ticketKeyName: string | null; fragmented: boolean };
}

export const GOLDEN_HELLOS: readonly GoldenHello[] = JSON.parse(
  readFileSync(new URL('./fixtures/client-hellos.json', import.meta.url), 'utf8'),
) as GoldenHello[];

/** The handshake message inside a captured single-record ClientHello. */
export function handshakeOf(record: Buffer): Buffer {
  const len = record.readUInt16BE(3);
  return record.subarray(5, 5 + len);
}

/** The same handshake bytes carried in records of at most `size` bytes (legal fragmentation). */
export function reRecord(record: Buffer, size: number): Buffer {
  const hs = handshakeOf(record);
  const parts: Buffer[] = [];
  for (let i = 0; i < hs.length; i += size) {
    const body = hs.subarray(i, Math.min(hs.length, i + size));
    const h = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
    h.writeUInt16BE(body.length, 3);
    parts.push(h, body);
  }
  return Buffer.concat(parts);
}

/** Splits bytes into chunks of `size` (the last may be shorter). */
export function chunks(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

const u16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};
const vec16 = (b: Buffer): Buffer => Buffer.concat([u16(b.length), b]);

export function extension(type: number, data: Buffer): Buffer {
  return Buffer.concat([u16(type), vec16(data)]);
}

export function sniExtension(...names: Array<string | Buffer>): Buffer {
  const entries = names.map((n) => {
    const b = typeof n === 'string' ? Buffer.from(n, 'latin1') : n;
    return Buffer.concat([Buffer.from([0]), vec16(b)]);
  });
  return extension(0, vec16(Buffer.concat(entries)));
}

/** A minimal but well-formed ClientHello record with the given extensions (null: no extensions block). */
export function buildHello(extensions: Buffer[] | null, opts: { sessionId?: number; recordVersion?: number } = {}): Buffer {
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]),
    Buffer.alloc(32, 7),
    Buffer.concat([Buffer.from([opts.sessionId ?? 0]), Buffer.alloc(opts.sessionId ?? 0, 1)]),
    vec16(Buffer.from([0x13, 0x01, 0xc0, 0x2f])),
    Buffer.from([1, 0]),
    ...(extensions === null ? [] : [vec16(Buffer.concat(extensions))]),
  ]);
  const hs = Buffer.concat([Buffer.from([1, (body.length >> 16) & 0xff, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  const rec = Buffer.from([0x16, 0x03, opts.recordVersion ?? 0x01, 0, 0]);
  rec.writeUInt16BE(hs.length, 3);
  return Buffer.concat([rec, hs]);
}
