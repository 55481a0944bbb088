// Child processes of the bench: each in its own process group, all killed on exit, Ctrl-C or error.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, existsSync } from 'node:fs';
import { connect } from 'node:net';

export interface Proc {
  name: string;
  pid: number;
  child: ChildProcess;
  logFile?: string;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited: () => boolean;
}

const live = new Set<Proc>();

/** CPU pinning: proxies on one CPU, backends and load generators on the other (see README). */
export const pinning = { enabled: false, proxyCpu: 1, loadCpu: 0 };

export type CpuRole = 'proxy' | 'load' | 'none';

function pinned(role: CpuRole, cmd: string, args: string[]): [string, string[]] {
  if (!pinning.enabled || role === 'none') return [cmd, args];
  const cpu = role === 'proxy' ? pinning.proxyCpu : pinning.loadCpu;
  return ['taskset', ['-c', String(cpu), cmd, ...args]];
}

function track(name: string, child: ChildProcess, logFile?: string): Proc {
  if (child.pid === undefined) throw new Error(`${name}: could not start`);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: -1, signal: null }));
  });
  const proc: Proc = { name, pid: child.pid, child, logFile, exited, hasExited: () => done };
  live.add(proc);
  void exited.then(() => {
    done = true;
    live.delete(proc);
  });
  return proc;
}

export interface ServiceOptions {
  cpu: CpuRole;
  logFile: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Starts a long-running process with stdout and stderr appended to logFile. */
export function startService(name: string, cmd: string, args: string[], o: ServiceOptions): Proc {
  const fd = openSync(o.logFile, 'a');
  try {
    const [c, a] = pinned(o.cpu, cmd, args);
    const child = spawn(c, a, { cwd: o.cwd, env: o.env ?? process.env, stdio: ['ignore', fd, fd], detached: true });
    child.on('error', () => undefined);
    return track(name, child, o.logFile);
  } finally {
    closeSync(fd);
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

/** SIGTERM the process group, then SIGKILL after graceMs. */
export async function stopProc(p: Proc, graceMs = 3000): Promise<void> {
  if (p.hasExited()) return;
  signalGroup(p.pid, 'SIGTERM');
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
  if ((await Promise.race([p.exited, timer])) === 'timeout') {
    signalGroup(p.pid, 'SIGKILL');
    await Promise.race([p.exited, new Promise((r) => setTimeout(r, 1000).unref())]);
  }
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => stopProc(p)));
}

let handlersInstalled = false;

/** Kills every child on Ctrl-C, SIGTERM, uncaught errors and process exit. */
export function installCleanupHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`\nbench: ${sig}, stopping every process it started…\n`);
    void stopAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('SIGHUP', onSignal);
  process.on('exit', () => {
    for (const p of live) signalGroup(p.pid, 'SIGKILL');
  });
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a command to completion (bounded by timeoutMs) and captures its output. */
export async function runCommand(
  cmd: string,
  args: string[],
  o: { cpu: CpuRole; timeoutMs: number; cwd?: string; env?: NodeJS.ProcessEnv; name?: string },
): Promise<RunResult> {
  const [c, a] = pinned(o.cpu, cmd, args);
  const child = spawn(c, a, { cwd: o.cwd, env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout = (stdout + d).slice(-1_000_000)));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-100_000)));
  let spawnError: Error | undefined;
  child.on('error', (e) => (spawnError = e));
  if (child.pid === undefined) {
    await new Promise((r) => setImmediate(r));
    return { code: -1, signal: null, stdout, stderr: String(spawnError ?? 'spawn failed'), timedOut: false };
  }
  const proc = track(o.name ?? cmd, child);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void stopProc(proc, 1000);
  }, o.timeoutMs);
  const { code, signal } = await proc.exited;
  clearTimeout(timer);
  // 'exit' may come before the pipes are drained.
  await new Promise((r) => setTimeout(r, 20));
  return { code, signal, stdout, stderr: spawnError ? `${stderr}${spawnError.message}` : stderr, timedOut };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls url until it answers 200; rejects on timeout or when proc exits first. */
export async function waitForHttp(url: string, timeoutMs: number, proc?: Proc): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (proc?.hasExited()) throw new Error(`${proc.name} exited: ${tailLog(proc.logFile)}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(150);
  }
  throw new Error(`${url} did not answer 200 within ${Math.round(timeoutMs / 1000)} s (${last})`);
}

/** Polls a TCP port until it accepts; rejects on timeout or when proc exits first. */
export async function waitForTcp(host: string, port: number, timeoutMs: number, proc?: Proc): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc?.hasExited()) throw new Error(`${proc.name} exited: ${tailLog(proc.logFile)}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port });
      s.setTimeout(500);
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
      s.once('timeout', () => (s.destroy(), resolve(false)));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`${host}:${port} did not accept connections within ${Math.round(timeoutMs / 1000)} s`);
}

/** The last non-empty lines of a log file, joined on one line. */
export function tailLog(file: string | undefined, lines = 3): string {
  if (!file || !existsSync(file)) return '(no log)';
  const text = readFileSync(file, 'utf8').trim();
  if (!text) return '(empty log)';
  return text.split('\n').filter((l) => l.trim()).slice(-lines).join(' | ').slice(0, 400);
}

export { sleep };
