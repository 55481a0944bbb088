/**
 * Runs inside the clients' network namespace for the partition test (started through
 * `ip netns exec`, driven over the IPC channel): the HTTP backends, admin API queries and the
 * client load all live here, because only this namespace can reach the nodes' addresses.
 *
 * Messages: { id, cmd, args } → { id, ok, result } | { id, ok: false, error }.
 */
import { Agent, request } from 'node:http';
import { httpBackend, type Backend } from '../../helpers/backends.js';

const backends: Backend[] = [];
const agent = new Agent({ keepAlive: true, maxSockets: 32 });

interface Reply {
  status: number;
  body: string;
}

function get(url: string, headers: Record<string, string>, timeoutMs: number): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

interface LoadArgs {
  /** Base URLs of the service on the nodes to send to. */
  readonly targets: readonly string[];
  readonly keys: readonly string[];
  readonly durationMs: number;
  readonly concurrency: number;
  readonly timeoutMs: number;
  /** Upper bound on requests, whatever the duration. */
  readonly maxRequests: number;
}

interface LoadResult {
  requests: number;
  failures: number;
  failureSamples: string[];
  /** key → backend ids that answered it, in order of first appearance. */
  backends: Record<string, string[]>;
}

async function load(a: LoadArgs): Promise<LoadResult> {
  const out: LoadResult = { requests: 0, failures: 0, failureSamples: [], backends: {} };
  const deadline = Date.now() + a.durationMs;
  let n = 0;
  await Promise.all(
    Array.from({ length: a.concurrency }, async () => {
      while (Date.now() < deadline && n < a.maxRequests) {
        const i = n++;
        const key = a.keys[i % a.keys.length];
        const target = a.targets[Math.floor(i / a.keys.length + i) % a.targets.length];
        out.requests++;
        try {
          const r = await get(`${target}/p?i=${i}`, { 'x-session': key }, a.timeoutMs);
          if (r.status !== 200) throw new Error(`status ${r.status}: ${r.body.slice(0, 80)}`);
          const id = (JSON.parse(r.body) as { id: string }).id;
          const seen = (out.backends[key] ??= []);
          if (!seen.includes(id)) seen.push(id);
        } catch (err) {
          out.failures++;
          if (out.failureSamples.length < 5) out.failureSamples.push(`${target} ${key}: ${(err as Error).message}`);
        }
      }
    }),
  );
  return out;
}

async function handle(cmd: string, args: Record<string, unknown>): Promise<unknown> {
  switch (cmd) {
    case 'backends': {
      for (const [i, port] of (args.ports as number[]).entries()) backends.push(await httpBackend(`b${i + 1}`, args.host as string, port));
      return backends.map((b) => b.address);
    }
    case 'get': {
      const r = await get(args.url as string, {}, (args.timeoutMs as number | undefined) ?? 3000);
      return { status: r.status, body: r.body };
    }
    case 'load':
      return load(args as unknown as LoadArgs);
    case 'exit':
      agent.destroy();
      await Promise.all(backends.map((b) => b.close()));
      setImmediate(() => process.exit(0));
      return null;
    default:
      throw new Error(`unknown command ${cmd}`);
  }
}

process.on('message', (m: { id: number; cmd: string; args: Record<string, unknown> }) => {
  handle(m.cmd, m.args ?? {}).then(
    (result) => process.send?.({ id: m.id, ok: true, result }),
    (err: Error) => process.send?.({ id: m.id, ok: false, error: err.message }),
  );
});
// The test process is our only reason to live.
process.on('disconnect', () => process.exit(0));
process.send?.({ id: 0, ok: true, result: 'ready' });
