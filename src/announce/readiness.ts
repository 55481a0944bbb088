/**
 * One readiness check of a node: `GET /readyz` on its admin port, on a fresh connection each time
 * (a pooled connection could outlive the process it was opened to), bounded by a deadline. Ready
 * means 200; anything else — 503 while starting or draining, a refused connection after a crash,
 * silence past the deadline — is not ready.
 */
import { request } from 'node:http';

export interface CheckResult {
  readonly ok: boolean;
  /** HTTP status, or the error code (ECONNREFUSED, timeout, …) when there was no answer. */
  readonly detail: string;
}

export function checkReady(host: string, port: number, timeoutMs: number): Promise<CheckResult> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: CheckResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const req = request({ host, port, path: '/readyz', method: 'GET', agent: false, headers: { connection: 'close' } }, (res) => {
      res.resume();
      done({ ok: res.statusCode === 200, detail: String(res.statusCode ?? 0) });
    });
    const timer = setTimeout(() => {
      done({ ok: false, detail: 'timeout' });
      req.destroy();
    }, timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => done({ ok: false, detail: err.code ?? err.message }));
    req.end();
  });
}
