/**
 * `tandem status` and `tandem flow`: read-only views over the admin API of a running cluster.
 * One node is asked for the membership; every node is then asked for its own summary, so a dead
 * node shows as dead rather than making the command fail.
 */
import type { Io } from './validate.js';

interface ClusterView {
  self: string;
  cluster: string;
  nodes: Array<{ id: string; state: string; weight: number; host: string; adminPort: number; replicationLagMs?: number }>;
}
interface NodeStatus {
  id: string;
  ready: boolean;
  draining: boolean;
  uptimeSec: number;
  flows: { total: number; primary: number; backup: number };
  ratePerSec: number;
}
interface BackendsView {
  services: Array<{ name: string; protocol: string; policy: string; backends: Array<{ address: string; weight: number; state: string; active: number; total: number; ejections: number }> }>;
}

async function getJson<T>(base: string, path: string): Promise<{ status: number; body: T }> {
  const r = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(2000) });
  return { status: r.status, body: (await r.json()) as T };
}

const DEFAULT_ADMIN = '127.0.0.1:9000';

export async function statusCommand(args: { admin?: string; json?: boolean }, io: Io): Promise<number> {
  const base = `http://${args.admin ?? DEFAULT_ADMIN}`;
  let cluster: ClusterView;
  let backends: BackendsView;
  try {
    cluster = (await getJson<ClusterView>(base, '/api/cluster')).body;
    backends = (await getJson<BackendsView>(base, '/api/backends')).body;
  } catch (err) {
    io.err(`tandem status: cannot reach the admin API at ${base}: ${(err as Error).message}`);
    return 1;
  }
  const statuses = await Promise.all(
    cluster.nodes.map(async (n) => {
      try {
        return (await getJson<NodeStatus>(`http://${n.host}:${n.adminPort}`, '/api/status')).body;
      } catch {
        return null;
      }
    }),
  );
  if (args.json) {
    io.out(JSON.stringify({ cluster: cluster.cluster, seenBy: cluster.self, nodes: cluster.nodes.map((n, i) => ({ ...n, status: statuses[i] })), services: backends.services }, null, 2));
    return 0;
  }
  io.out(`cluster ${cluster.cluster} (as seen by ${cluster.self})`);
  io.out(
    table(
      ['NODE', 'STATE', 'WEIGHT', 'READY', 'FLOWS', 'PRIMARY', 'BACKUP', 'RATE/S', 'REPL LAG'],
      cluster.nodes.map((n, i) => {
        const s = statuses[i];
        return [
          n.id,
          n.state,
          String(n.weight),
          s ? (s.draining ? 'draining' : s.ready ? 'yes' : 'no') : '-',
          s ? String(s.flows.total) : '-',
          s ? String(s.flows.primary) : '-',
          s ? String(s.flows.backup) : '-',
          s ? s.ratePerSec.toFixed(1) : '-',
          n.replicationLagMs !== undefined ? `${n.replicationLagMs} ms` : '-',
        ];
      }),
    ),
  );
  for (const svc of backends.services) {
    io.out('');
    io.out(`service ${svc.name} (${svc.protocol}, ${svc.policy})`);
    io.out(
      table(
        ['BACKEND', 'STATE', 'WEIGHT', 'ACTIVE', 'TOTAL', 'EJECTIONS'],
        svc.backends.map((b) => [b.address, b.state, String(b.weight), String(b.active), String(b.total), String(b.ejections)]),
      ),
    );
  }
  return 0;
}

export async function flowCommand(args: { admin?: string; service?: string; key?: string; json?: boolean }, io: Io): Promise<number> {
  if (!args.service || args.key === undefined) {
    io.err('tandem flow: needs --service S --key K');
    return 2;
  }
  const base = `http://${args.admin ?? DEFAULT_ADMIN}`;
  try {
    const q = `service=${encodeURIComponent(args.service)}&key=${encodeURIComponent(args.key)}`;
    const flow = await getJson<{ primary: string; backup: string | null; backend: string | null }>(base, `/api/flows?${q}`);
    const ranking = await getJson<{ ranking: Array<{ id: string; score: number; state: string; weight: number }>; wouldOwn: { primary: string; backup: string | null } }>(
      base,
      `/api/ranking?key=${encodeURIComponent(args.key)}`,
    );
    const entry = flow.status === 200 ? flow.body : null;
    if (args.json) {
      io.out(JSON.stringify({ flow: entry, wouldOwn: ranking.body.wouldOwn, ranking: ranking.body.ranking }, null, 2));
      return entry ? 0 : 3;
    }
    if (entry) {
      io.out(`flow ${args.service}/${args.key}: primary ${entry.primary}, backup ${entry.backup ?? '-'}, backend ${entry.backend ?? '(not chosen yet)'}`);
    } else {
      io.out(`flow ${args.service}/${args.key}: not in the table (no live flow)`);
    }
    io.out(`a new flow for this key would go to: primary ${ranking.body.wouldOwn.primary}, backup ${ranking.body.wouldOwn.backup ?? '-'}`);
    io.out(table(['RANK', 'NODE', 'STATE', 'WEIGHT', 'SCORE'], ranking.body.ranking.map((r, i) => [String(i + 1), r.id, r.state, String(r.weight), r.score.toPrecision(6)])));
    return entry ? 0 : 3;
  } catch (err) {
    io.err(`tandem flow: cannot reach the admin API at ${base}: ${(err as Error).message}`);
    return 1;
  }
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}
