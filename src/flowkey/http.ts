/**
 * The flow key of an HTTP request (docs/design.md §4, protocol http).
 */
import { TandemError, ErrorCodes } from '../errors.js';
import { connectionKey, normalizeAddress } from './address.js';
import { cookieValue } from './cookie.js';
import type { FlowKeySpec } from './spec.js';
import { assertValidFlowKey } from './validate.js';

/** What the key derivation needs of a request; an IncomingMessage plus its socket fits. */
export interface HttpFlowSource {
  readonly remoteAddress: string;
  readonly remotePort: number;
  /**
   * Lower-cased field names. Pass node:http's `req.headersDistinct` (every field as an array, in
   * arrival order) for exact "first occurrence" semantics: `req.headers` joins repeated fields
   * with ", " (RFC 9110 section 5.3), so "a" then "b" would give the key "a, b".
   */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/**
 * The key for `req` under `spec`. A missing or empty header or cookie falls back to the client ip,
 * so that clients without a session still get affinity of the coarsest useful kind. A value that
 * fails the hygiene rules of validate.ts throws TandemError(BAD_REQUEST): the proxy answers 400.
 * Keys are used as-is (no hashing), so that an operator can type one into `tandem flow --key`.
 */
export function httpFlowKey(spec: FlowKeySpec, req: HttpFlowSource): string {
  switch (spec.kind) {
    case 'client-ip':
      return normalizeAddress(req.remoteAddress);
    case 'connection':
      return connectionKey(req.remoteAddress, req.remotePort);
    case 'header': {
      const raw = req.headers[spec.name];
      // Repeated field: the first occurrence names the flow (see HttpFlowSource.headers).
      const value = Array.isArray(raw) ? raw[0] : raw;
      if (value === undefined || value === '') return normalizeAddress(req.remoteAddress);
      return assertValidFlowKey(value);
    }
    case 'cookie': {
      const value = cookieValue(req.headers['cookie'], spec.name);
      if (value === undefined || value === '') return normalizeAddress(req.remoteAddress);
      return assertValidFlowKey(value);
    }
    default:
      throw new TandemError(ErrorCodes.FLOW_KEY, `flowKey ${spec.kind} does not apply to http`);
  }
}
