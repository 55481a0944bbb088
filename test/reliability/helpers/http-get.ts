/**
 * A GET over node:http with a deadline: what the reliability tests' loads and their agents (in
 * network namespaces, each with its own keep-alive agents) send. One place, so that every load
 * reads replies and gives up the same way.
 */
import { request, type Agent, type IncomingMessage } from 'node:http';

export interface TextReply {
  readonly status: number;
  readonly body: string;
}

export interface GetOptions {
  readonly agent: Agent;
  readonly headers?: Record<string, string>;
  /** Past this without a complete reply the request is destroyed and the promise rejects. */
  readonly timeoutMs: number;
  /** The message of that rejection. Default 'timeout'. */
  readonly timeoutMessage?: string;
}

/** GET `target` (a URL, or host, port and path): the status and the body as text. */
export function getText(target: string | { readonly host: string; readonly port: number; readonly path: string }, o: GetOptions): Promise<TextReply> {
  return new Promise((resolve, reject) => {
    const opts = { agent: o.agent, timeout: o.timeoutMs, ...(o.headers ? { headers: o.headers } : {}) };
    const onReply = (res: IncomingMessage): void => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    };
    const req = typeof target === 'string' ? request(target, opts, onReply) : request({ ...target, ...opts }, onReply);
    req.on('timeout', () => req.destroy(new Error(o.timeoutMessage ?? 'timeout')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * A GET keyed by `x-session` to a test backend (test/helpers/backends.ts answers JSON with its
 * id): the status and that id, null for anything else (an error page written by tandem).
 */
export async function keyedGet(host: string, port: number, path: string, agent: Agent, key: string, timeoutMs: number): Promise<{ status: number; id: string | null }> {
  const r = await getText({ host, port, path }, { agent, headers: { 'x-session': key }, timeoutMs, timeoutMessage: 'client timeout' });
  let id: string | null = null;
  try {
    id = (JSON.parse(r.body) as { id: string }).id;
  } catch {
    /* an error page */
  }
  return { status: r.status, id };
}
