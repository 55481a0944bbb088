// Addresses and ports the bench owns: loopback 127.0.0.1-9, ports 18000-18999.

export const BACKEND_HOST = '127.0.0.1';
export const PEER_HOST = '127.0.0.1';

/** The shared backends (one nginx instance, worker_processes 1; one-shot iperf3 servers). */
export const BACKEND = {
  http: 18080, // nginx `return 200` (also the TCP connection-rate responder, HTTP/1.0)
  udp: 18053, // bench/backends/udp-echo.pl
  iperf: 18201, // iperf3 -s (one test per server instance)
} as const;

/** HAProxy, and its chained path: the first frontend forwards to a second one in the same process. */
export const HAPROXY = {
  http: 18100, tcpConn: 18101, tcpBulk: 18102,
  httpChain: 18103, httpHop2: 18104, tcpBulkChain: 18105, tcpBulkHop2: 18106,
  /** HTTPS with HTTP/2 (ALPN h2), the h2-tls scenario. */
  h2: 18107,
} as const;
/** The naive Node proxy (node:http + undici Pool), HTTP only. */
export const NAIVE = { http: 18130 } as const;
export const NGINX = { http: 18110, tcpConn: 18111, tcpBulk: 18112, udp: 18113, h2: 18114 } as const;

/** tandem: a 2-node cluster; both nodes use the same ports on their own host address. */
export const TANDEM = {
  nodes: [
    { id: 'lb1', host: '127.0.0.2' },
    { id: 'lb2', host: '127.0.0.3' },
  ],
  peerPort: 18400,
  adminPort: 18401,
  http: 18120,
  tcpConn: 18121,
  tcpBulk: 18122,
  udp: 18123,
  h2: 18124,
} as const;

/** The node every tandem measurement sends its traffic to. */
export const TANDEM_INGRESS = TANDEM.nodes[0];

/** Client source addresses tried to find one whose flow primary is (or is not) the ingress node. */
export const CLIENT_CANDIDATES = [
  '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7', '127.0.0.8', '127.0.0.9',
  '127.0.0.1', '127.0.0.2', '127.0.0.3',
];

/** Default client source address for peers and direct runs. */
export const DEFAULT_CLIENT = '127.0.0.1';
