/**
 * Flow keys of the transport-level services (docs/design.md §4): a TCP connection, a UDP datagram.
 * Both protocols share `connection` (ip:port) and `client-ip`; UDP adds `quic-cid`.
 */
import { TandemError, ErrorCodes } from '../errors.js';
import { connectionKey, normalizeAddress } from './address.js';
import { quicFlowKey } from './quic.js';
import type { FlowKeySpec } from './spec.js';

/** The remote end of a socket or the sender of a datagram (`rinfo` of node:dgram fits). */
export interface RemoteEndpoint {
  readonly address: string;
  readonly port: number;
}

/** The key of a TCP connection: `connection` → ip:port, `client-ip` → ip. */
export function tcpFlowKey(spec: FlowKeySpec, remote: RemoteEndpoint): string {
  switch (spec.kind) {
    case 'connection':
      return connectionKey(remote.address, remote.port);
    case 'client-ip':
      return normalizeAddress(remote.address);
    default:
      throw new TandemError(ErrorCodes.FLOW_KEY, `flowKey ${spec.kind} does not apply to tcp`);
  }
}

/** Options of `udpFlowKey`. */
export interface UdpFlowKeyOptions {
  /** DCID length of short-header packets, fixed by the backends (see quic.ts). Default 8. */
  readonly shortHeaderCidLength?: number;
}

/** Default short-header CID length: 8 bytes is what most QUIC stacks issue (quiche, msquic, quic-go). */
export const DEFAULT_SHORT_HEADER_CID_LENGTH = 8;

/**
 * The key of a datagram. `quic-cid` falls back to the connection key when the datagram is not a
 * QUIC packet with a non-empty DCID, so that non-QUIC datagrams on a quic-cid service still keep
 * per-sender affinity.
 */
export function udpFlowKey(spec: FlowKeySpec, remote: RemoteEndpoint, datagram: Uint8Array, options: UdpFlowKeyOptions = {}): string {
  switch (spec.kind) {
    case 'connection':
      return connectionKey(remote.address, remote.port);
    case 'client-ip':
      return normalizeAddress(remote.address);
    case 'quic-cid':
      return (
        quicFlowKey(datagram, options.shortHeaderCidLength ?? DEFAULT_SHORT_HEADER_CID_LENGTH) ??
        connectionKey(remote.address, remote.port)
      );
    default:
      throw new TandemError(ErrorCodes.FLOW_KEY, `flowKey ${spec.kind} does not apply to udp`);
  }
}
