/**
 * HAProxy's PROXY protocol, versions 1 (text) and 2 (binary), per haproxy's doc/proxy-protocol.txt
 * ("The PROXY protocol, Versions 1 & 2", sections 2.1 and 2.2). The encoders produce what a
 * `send-proxy` / `send-proxy-v2` server line of HAProxy produces for TCP over IPv4 or IPv6; the
 * parser is strict (section 2.1: "Any sequence which does not exactly match the protocol must be
 * discarded") and is used by the tests' backends and by a future `accept-proxy`.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Socket } from 'node:net';
import { TandemError, ErrorCodes } from '../../errors.js';

export interface ProxyEndpoint {
  readonly address: string;
  readonly port: number;
}

/** Section 2.2: the 12-byte signature of version 2. */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Section 2.1: the longest v1 line including CRLF ("worst case", 107 characters). */
export const PROXY_V1_MAX_LINE = 107;

const V2_VERSION_PROXY = 0x21; // version 2, command PROXY
const V2_VERSION_LOCAL = 0x20; // version 2, command LOCAL
const V2_TCP4 = 0x11;
const V2_TCP6 = 0x21;

function bad(msg: string): TandemError {
  return new TandemError(ErrorCodes.BAD_REQUEST, `PROXY header: ${msg}`);
}

// ---------------------------------------------------------------- addresses

const MAPPED = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i;

function stripZone(a: string): string {
  const i = a.indexOf('%');
  return i < 0 ? a : a.slice(0, i);
}

/** 4 bytes of a dotted quad (no leading zeros, section 2.1), or null. */
export function ipv4Bytes(a: string): Buffer | null {
  const parts = a.split('.');
  if (parts.length !== 4) return null;
  const out = Buffer.allocUnsafe(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

/** 16 bytes of an IPv6 address (RFC 4291 section 2.2 text forms, zone id dropped), or null. */
export function ipv6Bytes(text: string): Buffer | null {
  const a = stripZone(text);
  if (!isIPv6(a)) return null;
  const out = Buffer.alloc(16);
  let head = a;
  let tail = '';
  const dc = a.indexOf('::');
  if (dc >= 0) {
    head = a.slice(0, dc);
    tail = a.slice(dc + 2);
  }
  const groups = (s: string): number[] => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (g.includes('.')) {
        const v4 = ipv4Bytes(g);
        if (!v4) throw bad(`bad address ${text}`);
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const h = groups(head);
  const t = groups(tail);
  if (dc < 0 && h.length !== 8) return null;
  if (h.length + t.length > 8) return null;
  h.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  t.forEach((g, i) => out.writeUInt16BE(g, 16 - (t.length - i) * 2));
  return out;
}

/** RFC 5952 text of 16 bytes: lower case, no leading zeros, the longest run (>= 2) of zero groups as "::". */
export function formatIpv6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i] << 8) | b[i + 1]);
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

type Family = 4 | 6;

/** Both endpoints in one family: IPv4-mapped IPv6 (RFC 4291 2.5.5.2) is shown as IPv4 when both
 * sides are IPv4, and a lone IPv4 side is mapped into IPv6 when the other side is IPv6 (as HAProxy
 * does), because both PROXY formats carry a single family. */
function toFamily(src: string, dst: string): { family: Family; src: Buffer; dst: Buffer } {
  const norm = (a: string) => {
    const s = stripZone(a);
    const m = MAPPED.exec(s);
    return m ? m[1] : s;
  };
  const s = norm(src);
  const d = norm(dst);
  const s4 = isIPv4(s) ? ipv4Bytes(s) : null;
  const d4 = isIPv4(d) ? ipv4Bytes(d) : null;
  if (s4 && d4) return { family: 4, src: s4, dst: d4 };
  const s6 = s4 ? ipv6Bytes(`::ffff:${s}`) : ipv6Bytes(s);
  const d6 = d4 ? ipv6Bytes(`::ffff:${d}`) : ipv6Bytes(d);
  if (!s6) throw bad(`not an IP address: ${src}`);
  if (!d6) throw bad(`not an IP address: ${dst}`);
  return { family: 6, src: s6, dst: d6 };
}

function checkPort(p: number): number {
  if (!Number.isInteger(p) || p < 0 || p > 65535) throw bad(`port ${p} out of range`);
  return p;
}

// ---------------------------------------------------------------- encoders

/** Section 2.1: "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n". */
export function encodeProxyV1(source: ProxyEndpoint, destination: ProxyEndpoint): Buffer {
  const { family, src, dst } = toFamily(source.address, destination.address);
  const text = (b: Buffer) => (family === 4 ? `${b[0]}.${b[1]}.${b[2]}.${b[3]}` : formatIpv6(b));
  const line = `PROXY TCP${family} ${text(src)} ${text(dst)} ${checkPort(source.port)} ${checkPort(destination.port)}\r\n`;
  return Buffer.from(line, 'latin1');
}

/** Section 2.2: signature, 0x21 (v2, PROXY), 0x11 TCP4 / 0x21 TCP6, length, addresses, ports. */
export function encodeProxyV2(source: ProxyEndpoint, destination: ProxyEndpoint): Buffer {
  const { family, src, dst } = toFamily(source.address, destination.address);
  const alen = family === 4 ? 12 : 36;
  const buf = Buffer.allocUnsafe(16 + alen);
  PROXY_V2_SIGNATURE.copy(buf, 0);
  buf[12] = V2_VERSION_PROXY;
  buf[13] = family === 4 ? V2_TCP4 : V2_TCP6;
  buf.writeUInt16BE(alen, 14);
  src.copy(buf, 16);
  dst.copy(buf, 16 + src.length);
  buf.writeUInt16BE(checkPort(source.port), 16 + 2 * src.length);
  buf.writeUInt16BE(checkPort(destination.port), 18 + 2 * src.length);
  return buf;
}

/** Section 2.2: a LOCAL header (health checks): no address, family UNSPEC. */
export function encodeProxyV2Local(): Buffer {
  const buf = Buffer.alloc(16);
  PROXY_V2_SIGNATURE.copy(buf, 0);
  buf[12] = V2_VERSION_LOCAL;
  return buf;
}

export function encodeProxyHeader(version: 'v1' | 'v2', source: ProxyEndpoint, destination: ProxyEndpoint): Buffer {
  return version === 'v1' ? encodeProxyV1(source, destination) : encodeProxyV2(source, destination);
}

// ---------------------------------------------------------------- parser

export interface ProxyTlv {
  readonly type: number;
  readonly value: Buffer;
}

export interface ProxyHeader {
  readonly version: 1 | 2;
  /** 'local' (v2 LOCAL) or 'unknown' (v1 UNKNOWN, v2 UNSPEC): use the real connection's endpoints. */
  readonly command: 'proxy' | 'local' | 'unknown';
  readonly family: 'tcp4' | 'tcp6' | 'udp4' | 'udp6' | 'unix' | 'unspec';
  readonly source: ProxyEndpoint | null;
  readonly destination: ProxyEndpoint | null;
  readonly tlvs: readonly ProxyTlv[];
  /** Bytes the header took; the payload starts there. */
  readonly length: number;
}

function v1Addr(s: string, family: '4' | '6'): string {
  if (family === '4') {
    if (!ipv4Bytes(s)) throw bad(`bad IPv4 address ${JSON.stringify(s)}`);
    return s;
  }
  if (!/^[0-9A-Fa-f:.]+$/.test(s)) throw bad(`bad IPv6 address ${JSON.stringify(s)}`);
  const b = ipv6Bytes(s);
  if (!b) throw bad(`bad IPv6 address ${JSON.stringify(s)}`);
  return formatIpv6(b);
}

function v1Port(s: string): number {
  if (!/^(0|[1-9]\d{0,4})$/.test(s) || Number(s) > 65535) throw bad(`bad port ${JSON.stringify(s)}`);
  return Number(s);
}

function parseV1(buf: Buffer): ProxyHeader | null {
  const end = buf.indexOf('\r\n', 0, 'latin1');
  if (end < 0) {
    if (buf.length >= PROXY_V1_MAX_LINE) throw bad('no CRLF in the first 107 bytes');
    // A lone LF must not end the line (section 2.1).
    if (buf.indexOf(0x0a) >= 0) throw bad('LF without CR');
    return null;
  }
  if (end + 2 > PROXY_V1_MAX_LINE) throw bad('line longer than 107 bytes');
  const line = buf.toString('latin1', 0, end);
  const f = line.split(' ');
  if (f[1] === 'UNKNOWN') {
    return { version: 1, command: 'unknown', family: 'unspec', source: null, destination: null, tlvs: [], length: end + 2 };
  }
  if (f.length !== 6 || (f[1] !== 'TCP4' && f[1] !== 'TCP6')) throw bad(`malformed v1 line ${JSON.stringify(line)}`);
  const fam = f[1] === 'TCP4' ? '4' : '6';
  return {
    version: 1,
    command: 'proxy',
    family: fam === '4' ? 'tcp4' : 'tcp6',
    source: { address: v1Addr(f[2], fam), port: v1Port(f[4]) },
    destination: { address: v1Addr(f[3], fam), port: v1Port(f[5]) },
    tlvs: [],
    length: end + 2,
  };
}

function parseV2(buf: Buffer): ProxyHeader | null {
  if (buf.length < 16) return null;
  const ver = buf[12] >> 4;
  const cmd = buf[12] & 0x0f;
  if (ver !== 2) throw bad(`version ${ver}`);
  if (cmd > 1) throw bad(`command ${cmd}`);
  const fp = buf[13];
  const len = buf.readUInt16BE(14);
  if (buf.length < 16 + len) return null;
  const body = buf.subarray(16, 16 + len);
  const fam = fp >> 4;
  const proto = fp & 0x0f;
  if (fam > 3 || proto > 2) throw bad(`family/protocol 0x${fp.toString(16)}`);
  const need = fam === 1 ? 12 : fam === 2 ? 36 : fam === 3 ? 216 : 0;
  if (len < need) throw bad(`address length ${len} too short for 0x${fp.toString(16)}`);
  const family =
    fam === 0 || proto === 0 ? 'unspec' : fam === 3 ? 'unix' : (`${proto === 1 ? 'tcp' : 'udp'}${fam === 1 ? 4 : 6}` as const);
  let source: ProxyEndpoint | null = null;
  let destination: ProxyEndpoint | null = null;
  if (cmd === 1 && (fam === 1 || fam === 2) && proto !== 0) {
    const n = fam === 1 ? 4 : 16;
    const text = (b: Buffer) => (n === 4 ? `${b[0]}.${b[1]}.${b[2]}.${b[3]}` : formatIpv6(b));
    source = { address: text(body.subarray(0, n)), port: body.readUInt16BE(2 * n) };
    destination = { address: text(body.subarray(n, 2 * n)), port: body.readUInt16BE(2 * n + 2) };
  }
  // Section 2.2.x: the rest of the address block is a list of TLVs (type, 16-bit length, value).
  const tlvs: ProxyTlv[] = [];
  for (let o = need; o < len; ) {
    if (o + 3 > len) throw bad('truncated TLV');
    const type = body[o];
    const vlen = body.readUInt16BE(o + 1);
    if (o + 3 + vlen > len) throw bad('TLV overruns the header');
    tlvs.push({ type, value: Buffer.from(body.subarray(o + 3, o + 3 + vlen)) });
    o += 3 + vlen;
  }
  const command = cmd === 0 ? 'local' : family === 'unspec' ? 'unknown' : 'proxy';
  return { version: 2, command, family, source, destination, tlvs, length: 16 + len };
}

/**
 * Parses a v1 or v2 header at the start of `buf`. Returns null while more bytes are needed; throws
 * TandemError(BAD_REQUEST) on anything that does not match the spec exactly.
 */
export function parseProxyHeader(buf: Buffer): ProxyHeader | null {
  const n = Math.min(buf.length, PROXY_V2_SIGNATURE.length);
  if (buf.subarray(0, n).equals(PROXY_V2_SIGNATURE.subarray(0, n))) {
    return n < PROXY_V2_SIGNATURE.length ? null : parseV2(buf);
  }
  const v1 = Buffer.from('PROXY ', 'latin1');
  const m = Math.min(buf.length, v1.length);
  if (!buf.subarray(0, m).equals(v1.subarray(0, m))) throw bad('no PROXY signature');
  return m < v1.length ? null : parseV1(buf);
}

/**
 * Reads a PROXY header from a socket, leaves any payload after it in the socket (unshift), and
 * resolves with the header. Rejects on a malformed header, on close, or after `timeoutMs`
 * (section 2: "at least 3 seconds to cover a TCP retransmit").
 */
export function readProxyHeader(socket: Socket, timeoutMs = 3000): Promise<ProxyHeader> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const done = (err: Error | null, h?: ProxyHeader) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      if (err) reject(err);
      else resolve(h!);
    };
    const onEnd = () => done(bad('connection closed before the header'));
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      let h: ProxyHeader | null;
      try {
        h = parseProxyHeader(buf);
      } catch (err) {
        done(err as Error);
        return;
      }
      if (h === null) {
        if (buf.length > 16 + 65535) done(bad('header too long'));
        return;
      }
      socket.pause();
      if (buf.length > h.length) socket.unshift(buf.subarray(h.length));
      done(null, h);
    };
    const timer = setTimeout(() => done(bad('timeout waiting for the header')), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onEnd);
  });
}
