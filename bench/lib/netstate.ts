// State the kernel keeps between scenarios that could slow the next one: sockets in TIME_WAIT
// (every closed connection of the new-connection scenarios, for 60 s) and conntrack entries.
import { readFileSync } from 'node:fs';

/** The `tw` count of the TCP line of /proc/net/sockstat (IPv4 and IPv6 share it). */
export function parseTimeWait(sockstat: string): number | undefined {
  const m = /^TCP:.*\btw (\d+)/m.exec(sockstat);
  return m ? Number(m[1]) : undefined;
}

const read = (f: string) => {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return undefined;
  }
};

export function netState(): { timeWait?: number; conntrack?: number } {
  const sock = read('/proc/net/sockstat');
  const ct = read('/proc/sys/net/netfilter/nf_conntrack_count');
  return { timeWait: sock === undefined ? undefined : parseTimeWait(sock), conntrack: ct === undefined ? undefined : Number(ct.trim()) };
}
