import { isIP } from 'node:net';

/** "host:port" or "[v6]:port" → parts; null when it does not parse or the port is out of range. */
export function parseHostPort(address: string): { host: string; port: number } | null {
  let host: string;
  let portText: string;
  if (address.startsWith('[')) {
    const end = address.indexOf(']');
    if (end < 0 || address[end + 1] !== ':') return null;
    host = address.slice(1, end);
    portText = address.slice(end + 2);
    if (isIP(host) !== 6) return null;
  } else {
    const colon = address.lastIndexOf(':');
    if (colon <= 0 || address.indexOf(':') !== colon) return null;
    host = address.slice(0, colon);
    portText = address.slice(colon + 1);
    // A hostname per RFC 1123 labels, or an IPv4 literal.
    if (!isIP(host) && !/^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(host)) {
      return null;
    }
  }
  if (!/^\d{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port < 1 || port > 65535) return null;
  return { host, port };
}
