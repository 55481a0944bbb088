// Finds the external tools the bench uses. It never installs anything.
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { spawnSync } from 'node:child_process';

export const INSTALL_HINT = 'apt-get install haproxy nginx libnginx-mod-stream wrk iperf3 nghttp2-client openssl util-linux perl-base';

export interface ToolSet {
  haproxy?: string;
  nginx?: string;
  wrk?: string;
  iperf3?: string;
  /** nghttp2's HTTP/2 load generator (the h2-tls scenario). */
  h2load?: string;
  taskset?: string;
  perl?: string;
  /** `load_module …;` line when nginx's stream module is dynamic, '' when built in. */
  nginxStreamLoad?: string;
  versions: Record<string, string>;
}

const EXTRA_DIRS = ['/usr/sbin', '/sbin', '/usr/local/sbin', '/usr/local/bin', '/usr/bin'];

export function which(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...EXTRA_DIRS].filter(Boolean);
  for (const d of dirs) {
    const p = join(d, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0]?.trim() ?? '';
}

const STREAM_MODULE_PATHS = [
  '/usr/lib/nginx/modules/ngx_stream_module.so',
  '/usr/share/nginx/modules/ngx_stream_module.so',
  '/usr/lib64/nginx/modules/ngx_stream_module.so',
];

/** Where nginx's stream module comes from: built in (''), a loadable file, or missing (undefined). */
export function nginxStream(nginx: string): string | undefined {
  const r = spawnSync(nginx, ['-V'], { encoding: 'utf8', timeout: 5000 });
  const conf = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (/--with-stream(\s|$)/.test(conf)) return '';
  const file = STREAM_MODULE_PATHS.find((p) => existsSync(p));
  return file ? `load_module ${file};` : undefined;
}

export function findTools(): ToolSet {
  const t: ToolSet = { versions: {} };
  t.haproxy = which('haproxy');
  t.nginx = which('nginx');
  t.wrk = which('wrk');
  t.iperf3 = which('iperf3');
  t.h2load = which('h2load');
  t.taskset = which('taskset');
  t.perl = which('perl');
  if (t.nginx) t.nginxStreamLoad = nginxStream(t.nginx);
  if (t.haproxy) t.versions.haproxy = firstLine(t.haproxy, ['-v']);
  if (t.nginx) t.versions.nginx = firstLine(t.nginx, ['-v']);
  if (t.wrk) t.versions.wrk = firstLine(t.wrk, ['-v']);
  if (t.iperf3) t.versions.iperf3 = firstLine(t.iperf3, ['-v']);
  if (t.h2load) t.versions.h2load = firstLine(t.h2load, ['--version']);
  return t;
}

/** Names of what is missing for the scenarios that will run (empty when all is there). */
export function missingTools(t: ToolSet, need: { haproxy: boolean; nginx: boolean; stream: boolean; wrk: boolean; iperf3: boolean; h2load?: boolean; taskset: boolean; perl: boolean }): string[] {
  const miss: string[] = [];
  if (need.haproxy && !t.haproxy) miss.push('haproxy');
  if (need.nginx && !t.nginx) miss.push('nginx');
  if (need.stream && t.nginx && t.nginxStreamLoad === undefined) miss.push('nginx stream module (libnginx-mod-stream)');
  if (need.wrk && !t.wrk) miss.push('wrk');
  if (need.iperf3 && !t.iperf3) miss.push('iperf3');
  if (need.h2load === true && !t.h2load) miss.push('h2load (nghttp2-client)');
  if (need.taskset && !t.taskset) miss.push('taskset (util-linux)');
  if (need.perl && !t.perl) miss.push('perl (perl-base)');
  return miss;
}

export function missingMessage(miss: string[]): string {
  return `bench: missing ${miss.join(', ')}. The bench installs nothing; install the tools with:\n  ${INSTALL_HINT}\n`;
}

export interface NodeInfo { path: string; version: string; v8: string }

/**
 * The Node that runs tandem, the naive Node proxy and the micro-benchmarks: BENCH_NODE (a path to
 * another node binary, e.g. a newer LTS line) or the bench's own. Asked for its versions, so the
 * report says which Node ran, not which Node started the bench.
 */
export function contenderNode(): NodeInfo {
  const path = process.env.BENCH_NODE || process.execPath;
  if (path === process.execPath) return { path, version: process.version, v8: process.versions.v8 };
  const r = spawnSync(path, ['-p', 'JSON.stringify([process.version, process.versions.v8])'], { encoding: 'utf8', timeout: 10_000 });
  try {
    const [version, v8] = JSON.parse(r.stdout) as [string, string];
    return { path, version, v8 };
  } catch {
    throw new Error(`BENCH_NODE=${path} does not run: ${(r.stderr || r.error?.message || '').trim().slice(0, 200)}`);
  }
}

/** "model name" of the first CPU in /proc/cpuinfo (pure: takes the file's text). */
export function cpuModelOf(cpuinfo: string): string | undefined {
  return /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim();
}
