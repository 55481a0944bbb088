/**
 * A real ACME server for integration tests: Debian's `pebble` with a dnsmasq beside it, so that
 * HTTP-01 validation really reaches the nodes' addresses (127.0.0.x) on the challenge port.
 * The HTTPS certificate of pebble's own listener is made here with openssl (the nodes trust it
 * through `caFile`). Always call stop().
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, createWriteStream, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, get } from 'node:https';

export interface PebbleOptions {
  /** pebble and dnsmasq listen here (127.0.0.x). */
  readonly host: string;
  /** ACME directory port; management = +1; DNS = +2. */
  readonly port: number;
  /** The HTTP-01 port pebble validates on (the nodes' challenge port). */
  readonly httpPort: number;
  /** Test name → address. */
  readonly names: Readonly<Record<string, string>>;
}

export function havePebble(): boolean {
  return ['/usr/bin/pebble', '/usr/sbin/dnsmasq'].every((p) => existsSync(p));
}

export class Pebble {
  readonly dir: string;
  readonly caFile: string;
  readonly directory: string;
  readonly #o: PebbleOptions;
  #pebble: ChildProcess | null = null;
  #dns: ChildProcess | null = null;

  constructor(o: PebbleOptions) {
    this.#o = o;
    this.dir = mkdtempSync(join(tmpdir(), 'tandem-pebble-'));
    this.caFile = join(this.dir, 'cert.pem');
    this.directory = `https://${o.host}:${o.port}/dir`;
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=pebble-test',
      '-addext', `subjectAltName=IP:${o.host},DNS:localhost`, '-keyout', join(this.dir, 'key.pem'), '-out', this.caFile], { stdio: 'ignore' });
    writeFileSync(join(this.dir, 'pebble.json'), JSON.stringify({
      pebble: {
        listenAddress: `${o.host}:${o.port}`, managementListenAddress: `${o.host}:${o.port + 1}`,
        certificate: this.caFile, privateKey: join(this.dir, 'key.pem'),
        httpPort: o.httpPort, tlsPort: o.httpPort + 1, ocspResponderURL: '', externalAccountBindingRequired: false,
      },
    }));
  }

  async startDns(): Promise<void> {
    const args = ['--keep-in-foreground', '--no-resolv', '--no-hosts', '--bind-interfaces', `--listen-address=${this.#o.host}`, `--port=${this.#o.port + 2}`, '--pid-file=', '--user=root', '--log-facility=-'];
    for (const [name, addr] of Object.entries(this.#o.names)) args.push(`--address=/${name}/${addr}`);
    this.#dns = spawn('/usr/sbin/dnsmasq', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const log = createWriteStream(join(this.dir, 'dnsmasq.log'));
    this.#dns.stdout!.pipe(log);
    this.#dns.stderr!.pipe(log);
    await new Promise((r) => setTimeout(r, 200));
  }

  /** Start (or restart) pebble; `env` adds PEBBLE_* knobs (e.g. PEBBLE_WFE_NONCEREJECT). */
  async start(env: Record<string, string> = {}): Promise<void> {
    if (this.#dns === null) await this.startDns();
    this.#pebble = spawn('/usr/bin/pebble', ['-config', join(this.dir, 'pebble.json'), '-dnsserver', `${this.#o.host}:${this.#o.port + 2}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0', ...env },
    });
    const log = createWriteStream(join(this.dir, 'pebble.log'), { flags: 'a' });
    this.#pebble.stdout!.pipe(log);
    this.#pebble.stderr!.pipe(log);
    const agent = new Agent({ ca: readFileSync(this.caFile) });
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const ok = await new Promise<boolean>((resolve) => {
        get(this.directory, { agent }, (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        }).on('error', () => resolve(false));
      });
      if (ok) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`pebble did not start:\n${this.log()}`);
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'pebble.log'), 'utf8').split('\n').slice(-30).join('\n');
    } catch {
      return '';
    }
  }

  async stopPebble(): Promise<void> {
    const p = this.#pebble;
    this.#pebble = null;
    if (p === null || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    });
  }

  async stop(): Promise<void> {
    await this.stopPebble();
    const d = this.#dns;
    this.#dns = null;
    if (d !== null && d.exitCode === null) {
      await new Promise<void>((resolve) => {
        d.once('exit', () => resolve());
        d.kill('SIGKILL');
      });
    }
  }
}
