/**
 * The test side of an agent process (ecmp-agent.ts) in a namespace: calls over IPC, each bounded
 * in time.
 */
import type { ChildProcess } from 'node:child_process';

export class AgentClient {
  #next = 1;
  readonly #waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  constructor(readonly child: ChildProcess) {
    child.on('message', (m: { id: number; ok: boolean; result?: unknown; error?: string }) => {
      const w = this.#waiting.get(m.id);
      if (!w) return;
      this.#waiting.delete(m.id);
      if (m.ok) w.resolve(m.result);
      else w.reject(new Error(m.error));
    });
    child.on('exit', (code, signal) => {
      for (const [id, w] of this.#waiting) w.reject(new Error(`agent exited (${code ?? signal}) before answering call ${id}`));
      this.#waiting.clear();
    });
  }

  ready(ms: number): Promise<void> {
    return this.#wait(0, ms).then(() => undefined);
  }

  call<T>(cmd: string, args: Record<string, unknown> = {}, ms = 15_000): Promise<T> {
    const id = this.#next++;
    const p = this.#wait(id, ms) as Promise<T>;
    this.child.send({ id, cmd, args });
    return p;
  }

  /** GET `url` from the agent's namespace (its 'get' command): the status and the body as JSON (null if it is none). */
  async getJson(url: string, timeoutMs = 2000): Promise<{ status: number; json: unknown }> {
    const r = await this.call<{ status: number; body: string }>('get', { url, timeoutMs });
    let json: unknown = null;
    try {
      json = JSON.parse(r.body);
    } catch {
      /* not JSON */
    }
    return { status: r.status, json };
  }

  #wait(id: number, ms: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error(`agent call ${id} timed out after ${ms} ms`));
      }, ms);
      this.#waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }
}

/**
 * Polls `cond` every 50 ms (a throw counts as false) until it holds, for at most `ms`; returns the
 * elapsed ms (for figures, never for an assertion). On timeout it throws with `context()` (the
 * nodes' logs), so that a failure in a namespace says what the nodes saw.
 */
export async function pollUntil(what: string, ms: number, cond: () => Promise<boolean>, context: () => string): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await cond().catch(() => false)) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${ms} ms: ${what}\n${context()}`);
}
