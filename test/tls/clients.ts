/** Real TLS clients for the tests: curl and openssl s_client, run as processes with a time bound. */
import { spawn } from 'node:child_process';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { ClientHelloReader } from '../../src/tls/client-hello.js';
import { chunks, reRecord } from './hello-fixtures.js';

export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command; `input` is written to stdin after `inputDelayMs`, then stdin is held open `holdMs`. */
export function run(cmd: string, args: string[], opts: { input?: string; inputDelayMs?: number; holdMs?: number; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.stdin.on('error', () => {});
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 15_000);
    setTimeout(() => {
      if (opts.input !== undefined) p.stdin.write(opts.input);
      setTimeout(() => p.stdin.end(), opts.holdMs ?? 300);
    }, opts.inputDelayMs ?? 0);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface CurlResult {
  readonly status: number;
  readonly body: string;
  /** The CN of the certificate the server presented. */
  readonly subject: string | null;
  readonly httpVersion: string;
}

/** `curl -k --resolve NAME:PORT:ADDR https://NAME:PORT/` (NAME may be an IP: no SNI). */
export async function curl(name: string, port: number, address: string, opts: { http2?: boolean; http1?: boolean } = {}): Promise<CurlResult> {
  const args = ['-sS', '-vk', '--max-time', '10', '-o', '-', '-w', '\n%{http_code} %{http_version}'];
  if (opts.http2) args.push('--http2');
  if (opts.http1) args.push('--http1.1');
  if (name !== address) args.push('--resolve', `${name}:${port}:${address}`);
  args.push(`https://${name}:${port}/`);
  const r = await run('curl', args);
  const lines = r.stdout.trimEnd().split('\n');
  const [status, httpVersion] = (lines.pop() ?? '0 0').split(' ');
  const subject = /subject: .*?CN=([^;,\s]+)/.exec(r.stderr)?.[1] ?? null;
  return { status: Number(status), body: lines.join('\n'), subject, httpVersion };
}

export interface SClientResult {
  /** "New" or "Reused", from s_client's summary. */
  readonly session: 'New' | 'Reused' | null;
  readonly protocol: string | null;
  readonly subject: string | null;
  readonly alpn: string | null;
  readonly output: string;
}

/** openssl s_client against host:port; `sessOut`/`sessIn` save and offer a session. */
export async function sClient(
  host: string,
  port: number,
  opts: { servername?: string | null; version?: '-tls1_2' | '-tls1_3'; sessOut?: string; sessIn?: string; alpn?: string; input?: string; extra?: string[] } = {},
): Promise<SClientResult> {
  const args = ['s_client', '-connect', `${host}:${port}`];
  if (opts.servername === null) args.push('-noservername');
  else if (opts.servername !== undefined) args.push('-servername', opts.servername);
  if (opts.version) args.push(opts.version);
  if (opts.sessOut) args.push('-sess_out', opts.sessOut);
  if (opts.sessIn) args.push('-sess_in', opts.sessIn);
  if (opts.alpn) args.push('-alpn', opts.alpn);
  args.push(...(opts.extra ?? []));
  // TLS 1.3 tickets arrive after the handshake: keep the connection a moment before closing.
  const r = await run('openssl', args, { input: opts.input ?? '', inputDelayMs: 200, holdMs: 500 });
  const out = r.stdout + r.stderr;
  const m = /^(New|Reused), (TLSv[\d.]+)/m.exec(out);
  return {
    session: (m?.[1] as 'New' | 'Reused' | undefined) ?? null,
    protocol: m?.[2] ?? null,
    subject: /^subject=.*?CN ?= ?([^,\s]+)/m.exec(out)?.[1] ?? null,
    alpn: /^ALPN protocol: (\S+)/m.exec(out)?.[1] ?? null,
    output: out,
  };
}

/**
 * A relay between a client and the TLS port that re-sends the client's ClientHello cut into TLS
 * records of `recordBytes` and TCP writes of `segmentBytes` (legal fragmentation that no client at
 * hand produces), then relays both ways untouched.
 */
export async function startFragmentingRelay(host: string, port: number, target: { host: string; port: number }, recordBytes: number, segmentBytes: number): Promise<Server> {
  const server = createServer((client: Socket) => {
    const upstream = connect(target.port, target.host);
    const reader = new ClientHelloReader();
    let relaying = false;
    const pending: Buffer[] = [];
    client.on('data', (d: Buffer) => {
      if (relaying) return void upstream.write(d);
      pending.push(d);
      if (reader.push(d) === 'need-more') return;
      relaying = true;
      const all = Buffer.concat(pending);
      const hello = all.subarray(0, reader.info?.bytes ?? all.length);
      const rest = all.subarray(hello.length);
      const pieces = chunks(reRecord(hello, recordBytes), segmentBytes);
      let i = 0;
      const next = (): void => {
        if (i < pieces.length) {
          upstream.write(pieces[i++]);
          setTimeout(next, 1);
          return;
        }
        if (rest.length > 0) upstream.write(rest);
      };
      next();
    });
    upstream.on('data', (d: Buffer) => client.write(d));
    const close = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  });
  await new Promise<void>((r) => server.listen(port, host, () => r()));
  return server;
}
