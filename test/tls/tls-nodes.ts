/** Parent side of fixtures/tls-node.ts: spawn TLS test nodes and talk to them over IPC. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ClusterSettings } from '../../src/cluster/cluster-options.js';
import type { CertificatePairConfig } from '../../src/config/schema.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/tls-node.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface TlsNodeOptions {
  readonly host: string;
  readonly clusterPort: number;
  readonly nodePort: number;
  readonly rotationMs: number;
  readonly certificates: CertificatePairConfig[];
}

export interface KeyView {
  readonly now: number;
  readonly epoch: number;
  readonly keys: Array<{ epoch: number; writer: string; id: string }>;
}

export interface TlsNode {
  readonly id: string;
  readonly options: TlsNodeOptions;
  proc: ChildProcess;
  call<T>(cmd: string, timeoutMs?: number): Promise<T>;
  event(ev: string, timeoutMs?: number): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function spawnTlsNode(settings: ClusterSettings, id: string, options: TlsNodeOptions): TlsNode {
  const proc = spawn(process.execPath, ['--import', 'tsx', FIXTURE, JSON.stringify(settings), id, JSON.stringify(options)], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const seen = new Set<string>();
  const listeners = new Set<(m: Record<string, unknown>) => void>();
  proc.on('message', (raw) => {
    const m = raw as Record<string, unknown>;
    if (typeof m.ev === 'string') seen.add(m.ev);
    for (const l of [...listeners]) l(m);
  });
  const wait = <T>(pred: (m: Record<string, unknown>) => boolean, timeoutMs: number, what: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        listeners.delete(l);
        reject(new Error(`${id}: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      const l = (m: Record<string, unknown>): void => {
        if (!pred(m)) return;
        clearTimeout(timer);
        listeners.delete(l);
        resolve(m as T);
      };
      listeners.add(l);
    });
  return {
    id,
    options,
    proc,
    call<T>(cmd: string, timeoutMs = 10_000): Promise<T> {
      const p = wait<T>((m) => m.ev === 'reply' && m.cmd === cmd, timeoutMs, `reply to ${cmd}`);
      proc.send({ cmd });
      return p;
    },
    event(ev: string, timeoutMs = 15_000): Promise<void> {
      if (seen.has(ev)) return Promise.resolve();
      return wait<void>((m) => m.ev === ev, timeoutMs, ev).then(() => undefined);
    },
    async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill(signal);
      await exited;
    },
  };
}
