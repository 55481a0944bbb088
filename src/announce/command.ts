/**
 * Runs one announce command through `sh -c`, as the contract says (docs/deploy-ecmp.md), so that
 * any BGP speaker's client works: `birdc`, `gobgp`, `vtysh`, a write to ExaBGP's pipe. The command
 * runs in its own process group and is killed whole when it overruns its deadline (a hung birdc
 * must not block the next withdrawal). Output is kept, bounded, for the log.
 */
import { spawn } from 'node:child_process';

export interface CommandResult {
  readonly ok: boolean;
  /** Exit code, or null when killed (deadline) or not started. */
  readonly code: number | null;
  readonly timedOut: boolean;
  readonly durationMs: number;
  /** The last bytes of stdout and stderr together, or the spawn error. */
  readonly output: string;
}

const MAX_OUTPUT = 2048;

export function runCommand(command: string, env: Readonly<Record<string, string>>, timeoutMs: number): Promise<CommandResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-MAX_OUTPUT);
    };
    let timedOut = false;
    let settled = false;
    const child = spawn('sh', ['-c', command], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const finish = (code: number | null, extra = ''): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const out = (output + extra).trim();
      resolve({ ok: code === 0 && !timedOut, code, timedOut, durationMs: Math.round(performance.now() - started), output: out });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, timeoutMs);
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (err) => finish(null, err.message));
    child.on('close', (code) => finish(timedOut ? null : code));
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}
