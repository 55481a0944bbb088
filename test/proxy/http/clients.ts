/**
 * Client-side tools for the HTTP proxy tests: raw sockets for malformed and slow inputs, a
 * WebSocket-like upgrade client, streamed uploads and downloads with checksums, and a bounded
 * load runner that records per-request latency.
 */
import net from 'node:net';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { WAIT_FLOOR_MS } from '../../helpers/wait.js';

/** Sends `data` on a fresh connection and collects what comes back until the server closes. */
export function rawExchange(host: string, port: number, data: string | Buffer, timeoutMs = 20_000): Promise<{ text: string; closed: boolean; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect({ host, port });
    let text = '';
    const done = (closed: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ text, closed, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => done(true));
    s.on('connect', () => s.write(data));
  });
}

/** Trickles a request head one byte every `everyMs`; resolves with what the server said and when it closed. */
export function slowloris(host: string, port: number, everyMs: number, timeoutMs: number): Promise<{ text: string; closed: boolean; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const head = 'GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(10_000);
    let i = 0;
    let text = '';
    const s = net.connect({ host, port });
    const tick = setInterval(() => {
      if (i < head.length && s.writable) s.write(head[i++]);
    }, everyMs);
    const done = (closed: boolean): void => {
      clearInterval(tick);
      clearTimeout(timer);
      s.destroy();
      resolve({ text, closed, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => done(true));
  });
}

/** Opens an upgrade tunnel, sends `messages` one by one and returns the 101 head and the echoes. */
export function upgradeEcho(host: string, port: number, headers: Record<string, string>, messages: readonly string[]): Promise<{ head: string; echoes: string[] }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    let buf = '';
    let head = '';
    const echoes: string[] = [];
    let i = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`upgrade echo timed out; head=${JSON.stringify(head || buf)}`));
    }, WAIT_FLOOR_MS);
    const next = (): void => {
      if (i < messages.length) s.write(messages[i]);
      else {
        clearTimeout(timer);
        s.end();
        resolve({ head, echoes });
      }
    };
    s.on('connect', () => {
      let h = 'GET /ws HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n';
      for (const [k, v] of Object.entries(headers)) h += `${k}: ${v}\r\n`;
      s.write(h + '\r\n');
    });
    s.on('error', reject);
    s.on('data', (d) => {
      buf += d.toString('latin1');
      if (!head) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        if (!head.startsWith('HTTP/1.1 101')) {
          clearTimeout(timer);
          s.destroy();
          return reject(new Error(`no 101: ${head}`));
        }
        next();
      }
      const want = messages[i];
      if (want !== undefined && buf.length >= want.length) {
        echoes.push(buf.slice(0, want.length));
        buf = buf.slice(want.length);
        i++;
        next();
      }
    });
  });
}

/** A readable of `total` pseudo-random bytes in `chunk`-sized pieces, and its sha256 when done. */
export function randomBody(total: number, chunk = 64 * 1024): { stream: Readable; sha256: () => string } {
  const h = createHash('sha256');
  let sent = 0;
  let seed = 12345;
  const stream = new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const n = Math.min(chunk, total - sent);
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        b[i] = seed >>> 24;
      }
      h.update(b);
      sent += n;
      this.push(b);
    },
  });
  return { stream, sha256: () => h.digest('hex') };
}

export interface LoadResult {
  readonly ok: number;
  readonly failed: number;
  readonly errors: string[];
  readonly latencies: number[];
  /** When each measured request started (ms since the run began), parallel to latencies. */
  readonly starts: number[];
  /** session → backends seen */
  readonly backends: Map<string, Set<string>>;
}

/**
 * `concurrency` workers send GETs for `durationMs`, each to a node picked by `pickNode`, with the
 * session header cycling through `sessions`. Bounded by design: never more than `concurrency` in flight.
 */
export async function runLoad(opts: {
  readonly urls: () => string;
  readonly sessions: readonly string[];
  readonly concurrency: number;
  readonly durationMs: number;
  readonly agent: Agent;
}): Promise<LoadResult> {
  const res: LoadResult = { ok: 0, failed: 0, errors: [], latencies: [], starts: [], backends: new Map() };
  const end = Date.now() + opts.durationMs;
  const origin = performance.now();
  let n = 0;
  const worker = async (): Promise<void> => {
    while (Date.now() < end) {
      const session = opts.sessions[n++ % opts.sessions.length];
      const t0 = performance.now();
      try {
        const r = await request(opts.urls(), { headers: { 'x-session': session }, dispatcher: opts.agent, headersTimeout: 10_000 });
        const body = (await r.body.json()) as { id: string };
        res.latencies.push(performance.now() - t0);
        res.starts.push(t0 - origin);
        if (r.statusCode !== 200) {
          (res as { failed: number }).failed++;
          res.errors.push(`status ${r.statusCode} ${JSON.stringify(body)}`);
          continue;
        }
        (res as { ok: number }).ok++;
        let set = res.backends.get(session);
        if (!set) res.backends.set(session, (set = new Set()));
        set.add(body.id);
      } catch (err) {
        (res as { failed: number }).failed++;
        res.errors.push(String((err as Error).message));
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  return res;
}

/**
 * Failover figures from a load run: the baseline (requests started before `atMs`) against the
 * requests started in the second after it. "Added" is the slowest of those above the baseline median.
 */
export function failoverFigures(res: LoadResult, atMs: number): { baseP50: number; baseP99: number; windowMax: number; added: number } {
  const base: number[] = [];
  const win: number[] = [];
  for (let i = 0; i < res.latencies.length; i++) {
    const s = res.starts[i];
    if (s < atMs) base.push(res.latencies[i]);
    else if (s < atMs + 1000) win.push(res.latencies[i]);
  }
  const baseP50 = percentile(base, 50);
  const windowMax = win.length ? Math.max(...win) : 0;
  return { baseP50, baseP99: percentile(base, 99), windowMax, added: Math.max(0, windowMax - baseP50) };
}

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
