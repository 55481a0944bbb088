/**
 * The `flowKey` setting of a service (docs/design.md §4): which part of a communication names its
 * flow. Parsed once at config time so that the per-request code only switches on `kind`.
 */
import { TandemError, ErrorCodes } from '../errors.js';

export type FlowKeySpec =
  | { kind: 'client-ip' }
  | { kind: 'connection' }
  | { kind: 'header'; name: string /* lower-case */ }
  | { kind: 'cookie'; name: string }
  | { kind: 'quic-cid' }
  /** tcp: the server name of the TLS ClientHello the connection starts with (sni.ts). */
  | { kind: 'sni' };

export type FlowKeyKind = FlowKeySpec['kind'];
export type FlowProtocol = 'http' | 'tcp' | 'udp';

// Default first, as in the table of docs/design.md §4. `header:NAME` and `cookie:NAME` are shown
// in that form because that is how a user writes them in the config.
const ALLOWED: Readonly<Record<FlowProtocol, readonly string[]>> = {
  http: Object.freeze(['client-ip', 'connection', 'header:NAME', 'cookie:NAME']),
  tcp: Object.freeze(['connection', 'client-ip', 'sni']),
  udp: Object.freeze(['connection', 'client-ip', 'quic-cid']),
};

const KINDS: Readonly<Record<FlowProtocol, ReadonlySet<FlowKeyKind>>> = {
  http: new Set<FlowKeyKind>(['client-ip', 'connection', 'header', 'cookie']),
  tcp: new Set<FlowKeyKind>(['connection', 'client-ip', 'sni']),
  udp: new Set<FlowKeyKind>(['connection', 'client-ip', 'quic-cid']),
};

/**
 * RFC 9110 section 5.6.2: token = 1*tchar, tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
 * "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA. Field names (section 5.1) are tokens, and
 * so are cookie names (RFC 6265 section 4.1.1: cookie-name = token).
 */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Whether `s` is an RFC 9110 token. */
export function isToken(s: string): boolean {
  return TOKEN.test(s);
}

function bad(spec: string, why: string): TandemError {
  return new TandemError(ErrorCodes.FLOW_KEY, `invalid flowKey ${JSON.stringify(spec)}: ${why}`);
}

/**
 * Parses `client-ip`, `connection`, `quic-cid`, `sni`, `header:NAME` or `cookie:NAME`.
 * Header names are lower-cased (field names are case-insensitive, RFC 9110 section 5.1, and Node
 * hands them to us lower-cased); cookie names are kept as written because RFC 6265 compares them
 * case-sensitively.
 */
export function parseFlowKeySpec(s: string): FlowKeySpec {
  if (typeof s !== 'string') throw bad(String(s), 'must be a string');
  switch (s) {
    case 'client-ip':
    case 'connection':
    case 'quic-cid':
    case 'sni':
      return { kind: s };
  }
  const colon = s.indexOf(':');
  if (colon < 0) {
    throw bad(s, 'expected one of client-ip, connection, quic-cid, sni, header:NAME, cookie:NAME');
  }
  const prefix = s.slice(0, colon);
  const name = s.slice(colon + 1);
  if (prefix !== 'header' && prefix !== 'cookie') {
    throw bad(s, `unknown kind "${prefix}"; expected header:NAME or cookie:NAME`);
  }
  if (name.length === 0) throw bad(s, `${prefix} name is empty`);
  if (!isToken(name)) {
    throw bad(s, `${prefix} name must be an RFC 9110 token (letters, digits and !#$%&'*+-.^_\`|~)`);
  }
  return prefix === 'header' ? { kind: 'header', name: name.toLowerCase() } : { kind: 'cookie', name };
}

/** The canonical text form, the inverse of parseFlowKeySpec. */
export function formatFlowKeySpec(spec: FlowKeySpec): string {
  switch (spec.kind) {
    case 'header':
    case 'cookie':
      return `${spec.kind}:${spec.name}`;
    default:
      return spec.kind;
  }
}

/** The flowKey values a protocol accepts, default first (`header:NAME` stands for any header). */
export function flowKeysFor(protocol: FlowProtocol): readonly string[] {
  const list = ALLOWED[protocol];
  if (!list) throw new TandemError(ErrorCodes.FLOW_KEY, `unknown protocol ${JSON.stringify(protocol)}`);
  return list;
}

/** The flowKey used when a service does not set one. */
export function defaultFlowKey(protocol: FlowProtocol): FlowKeySpec {
  switch (protocol) {
    case 'http':
      return { kind: 'client-ip' };
    case 'tcp':
    case 'udp':
      return { kind: 'connection' };
    default:
      throw new TandemError(ErrorCodes.FLOW_KEY, `unknown protocol ${JSON.stringify(protocol)}`);
  }
}

/** Whether `spec` parses and its kind makes sense for `protocol`. Never throws. */
export function isFlowKeyAllowed(protocol: FlowProtocol, spec: string): boolean {
  const kinds = KINDS[protocol];
  if (!kinds) return false;
  try {
    return kinds.has(parseFlowKeySpec(spec).kind);
  } catch {
    return false;
  }
}
