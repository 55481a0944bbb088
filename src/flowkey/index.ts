/** Flow keys: which part of a communication names its flow (docs/design.md §4). Pure, no I/O. */
export {
  parseFlowKeySpec,
  formatFlowKeySpec,
  flowKeysFor,
  defaultFlowKey,
  isFlowKeyAllowed,
  isToken,
} from './spec.js';
export type { FlowKeySpec, FlowKeyKind, FlowProtocol } from './spec.js';
export { normalizeAddress, formatHostPort, connectionKey } from './address.js';
export { MAX_FLOW_KEY_BYTES, flowKeyProblem, assertValidFlowKey } from './validate.js';
export { cookieValue } from './cookie.js';
export { httpFlowKey } from './http.js';
export type { HttpFlowSource } from './http.js';
export { tcpFlowKey, udpFlowKey, DEFAULT_SHORT_HEADER_CID_LENGTH } from './transport.js';
export type { RemoteEndpoint, UdpFlowKeyOptions } from './transport.js';
export { quicDestinationCid, quicSourceCid, quicFlowKey, toHex, MAX_CID_LENGTH } from './quic.js';
