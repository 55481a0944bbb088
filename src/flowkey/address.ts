/**
 * Socket addresses as flow keys. A dual-stack listener reports IPv4 clients as IPv4-mapped IPv6
 * addresses (RFC 4291 section 2.5.5.2, `::ffff:a.b.c.d`); the same client seen by an IPv4 listener
 * on another node must give the same key, so both are reduced to the dotted quad.
 */

const MAPPED = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i;

/**
 * Canonical text of a remote address: IPv4-mapped IPv6 becomes plain IPv4, IPv6 is lower-cased
 * (RFC 5952 section 4.3 recommends lower case; Node already prints it so, other sources may not).
 */
export function normalizeAddress(address: string): string {
  const m = MAPPED.exec(address);
  if (m) return m[1];
  return address.includes(':') ? address.toLowerCase() : address;
}

/** `1.2.3.4:5555` or `[::1]:5555` (RFC 3986 section 3.2.2 brackets for IPv6 literals). */
export function formatHostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** The `connection` flow key: the client's normalised address and port. */
export function connectionKey(remoteAddress: string, remotePort: number): string {
  return formatHostPort(normalizeAddress(remoteAddress), remotePort);
}
