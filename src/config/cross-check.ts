/**
 * The checks of a config that span several fields (node ports and addresses, service ports and
 * VIPs, flow keys, routes, announce timing, etcd), run on the raw input by load.ts next to the
 * schema pass, so that a type error elsewhere does not hide them.
 */
import { isIP } from 'node:net';
import type { ConfigIssue } from './issues.js';
import type { Protocol } from './schema.js';
import { normalizeName } from '../tls/names.js';
import { backendIssues, routeIssues } from './routes-check.js';
import { isFlowKeyAllowed, flowKeysFor } from '../flowkey/spec.js';

export type Obj = Record<string, unknown>;
export const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
export const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/**
 * Checks that span several fields. They run on the raw input, independently of the schema pass,
 * so that a type error elsewhere does not hide them; each looks only at values of the right shape.
 */
export function crossCheck(raw: unknown): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (!isObj(raw)) return issues;
  const cluster = isObj(raw.cluster) ? raw.cluster : {};
  const nodes = list(cluster.nodes);
  const services = list(raw.services);

  const ids = new Map<string, number>();
  const tcpPorts = new Map<string, string>(); // "host:port" → what uses it
  nodes.forEach((n, i) => {
    if (!isObj(n)) return;
    if (typeof n.id === 'string') {
      const first = ids.get(n.id);
      if (first !== undefined) issues.push({ path: `cluster.nodes[${i}].id`, message: `duplicate node id "${n.id}" (also cluster.nodes[${first}].id)` });
      else ids.set(n.id, i);
    }
    if (typeof n.host !== 'string') return;
    for (const [key, dflt] of [['peerPort', 7000], ['adminPort', 9000]] as const) {
      const p = n[key] ?? dflt;
      if (typeof p !== 'number') continue;
      const at = `${n.host}:${p}`;
      const user = tcpPorts.get(at);
      if (user) issues.push({ path: `cluster.nodes[${i}].${key}`, message: `${at} is already used by ${user}` });
      else tcpPorts.set(at, `node ${String(n.id)} ${key}`);
    }
  });

  if (Array.isArray(cluster.nodes) && cluster.nodes.length === 0 && cluster.discovery === undefined) {
    issues.push({ path: 'cluster.nodes', message: 'must list at least one node' });
  } else if (cluster.nodes === undefined && cluster.discovery === undefined && isObj(raw.cluster)) {
    issues.push({ path: 'cluster.nodes', message: 'is required' });
  }
  if (isObj(cluster.discovery) && isObj(cluster.discovery.etcd)) issues.push(...checkEtcd(cluster.discovery.etcd));

  const hb = typeof cluster.heartbeatMs === 'number' ? cluster.heartbeatMs : 100;
  const ft = cluster.failureTimeoutMs;
  if (typeof ft === 'number' && ft <= hb) {
    issues.push({ path: 'cluster.failureTimeoutMs', message: `must be greater than heartbeatMs (${hb})` });
  }

  issues.push(...announceChecks(cluster));

  const names = new Map<string, number>();
  const ports = new Map<string, string>();
  const nodePorts = new Map<number, string>();
  for (const n of nodes) {
    if (!isObj(n)) continue;
    nodePorts.set(typeof n.peerPort === 'number' ? n.peerPort : 7000, `the peerPort of node ${String(n.id)}`);
    nodePorts.set(typeof n.adminPort === 'number' ? n.adminPort : 9000, `the adminPort of node ${String(n.id)}`);
  }
  services.forEach((s, i) => {
    if (!isObj(s)) return;
    const at = `services[${i}]`;
    if (typeof s.name === 'string') {
      const first = names.get(s.name);
      if (first !== undefined) issues.push({ path: `${at}.name`, message: `duplicate service name "${s.name}" (also services[${first}].name)` });
      else names.set(s.name, i);
    }
    const protocol = typeof s.protocol === 'string' && ['http', 'tcp', 'udp'].includes(s.protocol) ? (s.protocol as Protocol) : null;
    if (typeof s.port === 'number' && protocol) {
      // http and tcp both listen on TCP ports, so they clash with each other.
      const transport = protocol === 'udp' ? 'udp' : 'tcp';
      const k = `${transport}/${s.port}`;
      const user = ports.get(k);
      if (user) issues.push({ path: `${at}.port`, message: `port ${s.port}/${transport} is already used by service "${user}"` });
      else ports.set(k, String(s.name));
      const nodeUse = nodePorts.get(s.port);
      if (nodeUse && (transport === 'tcp' || nodeUse.startsWith('the peerPort'))) {
        issues.push({ path: `${at}.port`, message: `port ${s.port} is ${nodeUse}` });
      }
    }
    if (protocol && typeof s.flowKey === 'string' && !isFlowKeyAllowed(protocol, s.flowKey)) {
      issues.push({
        path: `${at}.flowKey`,
        message: `"${s.flowKey}" is not allowed for protocol ${protocol} (allowed: ${flowKeysFor(protocol).join(', ')})`,
      });
    }
    if (typeof s.vip === 'string') {
      const problem = vipProblem(s.vip);
      if (problem) issues.push({ path: `${at}.vip`, message: problem });
    }
    if (s.tls !== undefined && protocol && protocol !== 'http') {
      issues.push({ path: `${at}.tls`, message: 'only allowed for protocol http (a tcp service passes TLS through; see flowKey: sni)' });
    }
    if (isObj(s.tls) && s.tls.certificates === undefined && s.tls.acme === undefined) {
      issues.push({ path: `${at}.tls`, message: 'needs certificates (or acme)' });
    }
    if (isObj(s.tls) && isObj(s.tls.acme)) {
      list(s.tls.acme.domains).forEach((d, j) => {
        if (typeof d !== 'string') return;
        const where = `${at}.tls.acme.domains[${j}]`;
        if (d.startsWith('*.')) issues.push({ path: where, message: 'wildcard names need the DNS-01 challenge; tandem answers HTTP-01 only' });
        else if (normalizeName(d) === null) issues.push({ path: where, message: `"${d}" is not a DNS name` });
      });
    }
    if (protocol && protocol !== 'tcp' && s.proxyProtocol !== undefined) {
      issues.push({ path: `${at}.proxyProtocol`, message: 'only allowed for protocol tcp' });
    }
    if (protocol && isObj(s.healthCheck)) {
      const t = s.healthCheck.type;
      if (t === 'udp' && protocol !== 'udp') issues.push({ path: `${at}.healthCheck.type`, message: 'udp checks are only for protocol udp' });
      if ((t === 'http' || t === 'tcp') && protocol === 'udp') {
        issues.push({ path: `${at}.healthCheck.type`, message: `${t} checks cannot probe a udp backend (use udp or none)` });
      }
      if (t === 'udp' && typeof s.healthCheck.payload !== 'string') {
        issues.push({ path: `${at}.healthCheck.payload`, message: 'is required for udp checks' });
      }
    }
    issues.push(...backendIssues(at, s.backends), ...routeIssues(at, s));
  });
  return issues;
}

/** Why a service address cannot be listened on, or null. It must be one concrete unicast address. */
function vipProblem(vip: string): string | null {
  const family = isIP(vip);
  if (family === 0) return `"${vip}" is not an IP address`;
  if (family === 4) {
    const first = Number(vip.split('.')[0]);
    if (vip === '0.0.0.0' || vip === '255.255.255.255') return `"${vip}" is not a unicast address`;
    if (first >= 224 && first <= 239) return `"${vip}" is a multicast address`;
    return null;
  }
  const v = vip.toLowerCase();
  if (/^[0:]+$/.test(v)) return `"${vip}" is not a unicast address`;
  if (v.startsWith('ff')) return `"${vip}" is a multicast address`;
  return null;
}

/** The watchdog must be able to see the node not ready before the node stops serving. */
function announceChecks(cluster: Obj): ConfigIssue[] {
  const a = cluster.announce;
  if (!isObj(a)) return [];
  const num = (v: unknown, d: number) => (typeof v === 'number' ? v : d);
  const interval = num(a.checkIntervalMs, 100);
  const fall = num(a.fall, 3);
  const grace = num(a.withdrawGraceMs, 1000);
  if (grace < interval * fall) {
    return [{ path: 'cluster.announce.withdrawGraceMs', message: `must be at least fall × checkIntervalMs (${interval * fall}): the watchdog needs that long to see the node not ready` }];
  }
  return [];
}

function checkEtcd(etcd: Obj): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const at = 'cluster.discovery.etcd';
  list(etcd.endpoints).forEach((e, i) => {
    if (typeof e !== 'string') return;
    let url: URL | null = null;
    try {
      url = new URL(e);
    } catch {
      /* reported below */
    }
    if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '' || url.pathname.length > 1 || url.search !== '') {
      issues.push({ path: `${at}.endpoints[${i}]`, message: `"${e}" is not an http:// or https:// URL of the form scheme://host:port` });
    }
  });
  if (typeof etcd.prefix === 'string' && [...etcd.prefix].some((ch) => ch.charCodeAt(0) <= 0x20 || ch.charCodeAt(0) === 0x7f)) issues.push({ path: `${at}.prefix`, message: 'must not contain spaces or control characters' });
  if (isObj(etcd.auth)) {
    const both = etcd.auth.password !== undefined && etcd.auth.passwordFile !== undefined;
    const none = etcd.auth.password === undefined && etcd.auth.passwordFile === undefined;
    if (both) issues.push({ path: `${at}.auth.passwordFile`, message: 'set either password or passwordFile, not both' });
    if (none) issues.push({ path: `${at}.auth.password`, message: 'is required (or passwordFile)' });
  }
  if (isObj(etcd.tls) && (etcd.tls.cert === undefined) !== (etcd.tls.key === undefined)) {
    issues.push({ path: `${at}.tls.${etcd.tls.cert === undefined ? 'cert' : 'key'}`, message: 'is required with tls.' + (etcd.tls.cert === undefined ? 'key' : 'cert') + ' (a client certificate needs both)' });
  }
  return issues;
}
