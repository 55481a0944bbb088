/** The admin API's routes (docs/design.md §6), over a running node. */
import type { AdminServer } from '../admin/server.js';
import type { NodeControl } from './node-view.js';

export function registerAdminRoutes(node: NodeControl, admin: AdminServer): void {
  admin.get('/healthz', () => ({ status: 200, json: { status: 'ok', node: node.id } }));

  admin.get('/readyz', () => {
    // Ready, but honest: a service without its ACME certificate yet answers with a self-signed one.
    const fallback = node.acme.fallbacks();
    const detail = fallback.length > 0 ? { selfSignedCertificate: fallback } : {};
    return node.ready
      ? { status: 200, json: { ready: true, node: node.id, ...detail } }
      : { status: 503, json: { ready: false, node: node.id, reason: node.draining ? 'draining' : 'syncing', ...detail } };
  });

  admin.get('/api/certificates', () => ({ status: 200, json: { node: node.id, certificates: node.acme.certificates() } }));
  admin.post('/api/certificates/renew', (req) => {
    const b = (req.body ?? {}) as { certificates?: unknown };
    const ids = b.certificates;
    if (ids !== undefined && !(Array.isArray(ids) && ids.every((x) => typeof x === 'string'))) {
      return { status: 400, json: { error: 'body must be {} or {"certificates": [ID, ...]}' } };
    }
    const asked = node.acme.renew(ids);
    if (asked.length === 0) return { status: 404, json: { error: 'no such ACME certificate here' } };
    return { status: 202, json: { renewing: asked } };
  });

  admin.get('/api/cluster', () => {
    const stats = new Map(node.peers().map((p) => [p.id, p]));
    return {
      status: 200,
      json: {
        self: node.id,
        cluster: node.config.cluster.name,
        ready: node.ready,
        // Membership through etcd (null without cluster.discovery) and the pushed config in force.
        discovery: node.membership.discovery(),
        configRevision: node.membership.config().revision,
        configRefused: node.membership.config().refused,
        nodes: node.config.cluster.nodes.map((n) => {
          const s = stats.get(n.id);
          const m = node.membership.info(n.id);
          return {
            id: n.id,
            state: node.stateOf(n.id),
            weight: n.weight,
            host: n.host,
            peerPort: n.peerPort,
            adminPort: n.adminPort,
            ...(s ? { lastHeartbeatAgoMs: s.lastHeartbeatAgoMs, replicationLagMs: s.replicationLagMs, pendingEntries: s.pendingEntries } : {}),
            ...(m ? { source: m.source, phase: m.phase, configRevision: m.configRevision } : {}),
          };
        }),
      },
    };
  });

  admin.get('/api/flows', (req) => {
    const service = req.query.get('service');
    const key = req.query.get('key');
    if (!service) return { status: 400, json: { error: 'the service query parameter is required' } };
    if (key === null) {
      // A listing, for comparing tables across nodes: bounded, in the table's order.
      const limit = Math.min(Math.max(Number(req.query.get('limit') ?? '1000') || 1000, 1), 1_000_000);
      const flows = [];
      for (const e of node.table.entries(service)) {
        if (flows.length >= limit) break;
        flows.push({ key: e.key, primary: e.primary, backup: e.backup, backend: e.backend, version: e.version, writer: e.writer });
      }
      return { status: 200, json: { service, count: node.table.size(service), flows } };
    }
    const e = node.table.get(service, key);
    if (!e) return { status: 404, json: { error: 'no such flow on this node', service, key } };
    return {
      status: 200,
      json: {
        service: e.service,
        key: e.key,
        primary: e.primary,
        backup: e.backup,
        backend: e.backend,
        version: e.version,
        writer: e.writer,
        lastActive: new Date(e.lastActive).toISOString(),
      },
    };
  });

  admin.get('/api/status', () => ({ status: 200, json: node.status() }));

  admin.get('/api/ranking', (req) => {
    const key = req.query.get('key');
    if (key === null) return { status: 400, json: { error: 'key query parameter is required' } };
    return { status: 200, json: { key, ranking: node.ranking(key), wouldOwn: node.wouldOwn(key) } };
  });

  admin.get('/api/backends', () => ({
    status: 200,
    json: {
      services: node.config.services.map((s) => ({
        name: s.name,
        protocol: s.protocol,
        policy: s.policy,
        backends: (node.backends(s.name) ?? []).map((b) => ({
          address: b.address,
          weight: b.configWeight,
          effectiveWeight: b.weight,
          state: b.draining ? 'draining' : !b.healthy ? 'down' : b.ejectedUntil > Date.now() ? 'ejected' : 'up',
          healthy: b.healthy,
          draining: b.draining,
          active: b.active,
          total: b.total,
          ejections: b.ejections,
        })),
      })),
    },
  }));

  const drain = (on: boolean) => (req: { body: unknown }) => {
    const b = (req.body ?? {}) as { service?: unknown; address?: unknown };
    if (typeof b.service !== 'string' || typeof b.address !== 'string') {
      return { status: 400, json: { error: 'body must be {"service": NAME, "address": "host:port"}' } };
    }
    if (!node.setDraining(b.service, b.address, on)) {
      return { status: 404, json: { error: `no backend ${b.address} in service ${b.service}` } };
    }
    return { status: 200, json: { service: b.service, address: b.address, draining: on } };
  };
  admin.post('/api/reload', async () => {
    const r = await node.reloadFromFile();
    return r.ok ? { status: 200, json: { reloaded: true } } : { status: 422, json: { reloaded: false, problems: r.problems } };
  });

  admin.get('/api/events', (req) => ({ status: 200, json: { events: node.events.since(Number(req.query.get('after') ?? '0') || 0) } }));

  admin.post('/api/backends/drain', drain(true));
  admin.post('/api/backends/undrain', drain(false));

  admin.get('/metrics', async () => ({
    status: 200,
    text: await node.registry.metrics(),
    contentType: node.registry.contentType,
  }));
}
