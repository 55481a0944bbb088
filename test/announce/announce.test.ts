/**
 * `tandem announce` and the node's side of it, with real processes on 127.0.0.x (no namespaces,
 * no root): the node listens on its vip for http, tcp and udp; the watchdog runs `up` once the
 * node is ready, `down` when it is killed -9 and `up` again after its restart, counts and retries
 * a failing command, and withdraws on its own SIGTERM; a node's SIGTERM turns it not ready at
 * once while it keeps serving for withdrawGraceMs (a second SIGTERM cuts that short).
 * The commands append to a file, so the test reads the order in which they ran.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { createSocket } from 'node:dgram';
import { TestCluster, sleep, waitUntil } from '../helpers/cluster.js';
import { httpBackend, tcpBackend, udpBackend, type Backend } from '../helpers/backends.js';

const BASE = 23200;
const HTTP_PORT = 23210;
const TCP_PORT = 23211;
const UDP_PORT = 23212;
const METRICS = '127.0.0.1:23220';
const VIP = '127.0.0.62';
const BIN = new URL('../../bin/tandem.js', import.meta.url).pathname;

let cluster: TestCluster;
const backends: Backend[] = [];
const watchdogs: ChildProcess[] = [];
let events = '';
let flag = '';

const lines = (): string[] => (existsSync(events) ? readFileSync(events, 'utf8').split('\n').filter(Boolean) : []);

function startWatchdog(): ChildProcess {
  const child = spawn(process.execPath, [BIN, 'announce', '--config', cluster.configPath, '--node', 'lb1', '--metrics', METRICS], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(join(cluster.dir, 'announce.log'), { flags: 'a' });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  watchdogs.push(child);
  return child;
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`http://${METRICS}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && m[1] === name && Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

const exited = (p: ChildProcess): Promise<number | null> => (p.exitCode !== null ? Promise.resolve(p.exitCode) : new Promise((r) => p.once('exit', (code) => r(code))));

before(async () => {
  backends.push(await httpBackend('h1'), await tcpBackend('t1'), await udpBackend('u1'));
  cluster = new TestCluster({ basePort: BASE, nodes: 1, logLevel: 'info', services: [] });
  events = join(cluster.dir, 'events');
  flag = join(cluster.dir, 'up-works');
  writeFileSync(flag, '');
  cluster.writeConfig({
    ...cluster.config,
    cluster: {
      ...(cluster.config.cluster as Record<string, unknown>),
      announce: {
        // `up` fails while the flag file is missing: the retry path, end to end.
        up: `test -f ${flag} && echo "up $TANDEM_NODE $TANDEM_HOST $TANDEM_VIPS" >> ${events}`,
        down: `echo "down $TANDEM_NODE" >> ${events}`,
        checkIntervalMs: 50,
        withdrawGraceMs: 30_000,
      },
    },
    services: [
      { name: 'web', protocol: 'http', port: HTTP_PORT, vip: VIP, backends: [{ address: backends[0].address }] },
      { name: 'echo', protocol: 'tcp', port: TCP_PORT, vip: VIP, backends: [{ address: backends[1].address }] },
      { name: 'dns', protocol: 'udp', port: UDP_PORT, vip: VIP, backends: [{ address: backends[2].address }] },
    ],
  });
  await cluster.start('lb1');
});

after(async () => {
  for (const w of watchdogs) if (w.exitCode === null) w.kill('SIGKILL');
  await cluster?.stop();
  await Promise.all(backends.map((b) => b.close()));
});

test('the node listens on its vip too: http, tcp and udp (the udp reply comes from the vip)', async () => {
  for (const host of ['127.0.0.1', VIP]) {
    const r = await fetch(`http://${host}:${HTTP_PORT}/x`, { signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as { id: string }).id, 'h1');
  }
  const echoed = await new Promise<string>((resolve, reject) => {
    const s = connect({ host: VIP, port: TCP_PORT }, () => s.end('ping'));
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
  assert.equal(echoed, 'ping');
  const u = createSocket('udp4');
  const reply = new Promise<{ text: string; from: string }>((resolve) => u.once('message', (m, rinfo) => resolve({ text: String(m), from: rinfo.address })));
  u.send('hello', UDP_PORT, VIP);
  assert.deepEqual(await Promise.race([reply, sleep(5000).then(() => ({ text: 'no reply', from: '' }))]), { text: 'u1:hello', from: VIP });
  u.close();
});

test('tandem announce: up once ready (a failing command retried), down on kill -9, up after the restart, down on its own SIGTERM', async (t) => {
  writeFileSync(events, '');
  rmSync(flag);
  const dog = startWatchdog();
  // Whatever happens here, the next test must not meet this watchdog on the metrics port.
  t.after(async () => {
    if (dog.exitCode === null && dog.signalCode === null) {
      dog.kill('SIGKILL');
      await exited(dog);
    }
  });
  await waitUntil(async () => (await metric('tandem_announce_commands_total', { command: 'up', outcome: 'failed' }).catch(() => 0)) >= 2, 15_000, 'up failing and retried');
  assert.deepEqual(lines(), [], 'nothing announced while up fails');
  assert.match(readFileSync(join(cluster.dir, 'announce.log'), 'utf8'), /up command failed: retrying/);
  writeFileSync(flag, '');
  await waitUntil(() => lines().length === 1, 15_000, 'announced');
  assert.deepEqual(lines(), [`up lb1 127.0.0.1 ${VIP}`]);

  await cluster.kill('lb1');
  await waitUntil(() => lines().length === 2, 15_000, 'withdrawn after kill -9');
  assert.equal(lines()[1], 'down lb1');

  await cluster.start('lb1');
  await waitUntil(() => lines().length === 3, 15_000, 'announced again');
  assert.equal(lines()[2], `up lb1 127.0.0.1 ${VIP}`);
  // Recorded when the command's process has exited, which may be a moment after its line landed.
  await waitUntil(async () => (await metric('tandem_announce_announced', {})) === 1, 15_000, 'the gauge says announced');
  await waitUntil(async () => (await metric('tandem_announce_commands_total', { command: 'down', outcome: 'ok' })) === 1, 15_000, `one down counted ok; the watchdog's metrics: ${await fetch(`http://${METRICS}/metrics`).then((r) => r.text()).catch((e: Error) => e.message)}`);

  dog.kill('SIGTERM');
  assert.equal(await exited(dog), 0);
  assert.deepEqual(lines().slice(3), ['down lb1'], 'the watchdog withdraws when it stops');
});

test('SIGTERM of the node: not ready at once, still serving through the grace; the watchdog withdraws first; a second SIGTERM drains', async () => {
  writeFileSync(events, '');
  startWatchdog();
  await waitUntil(() => lines().includes(`up lb1 127.0.0.1 ${VIP}`), 15_000, 'announced');
  const node = cluster.node('lb1').process!;
  node.kill('SIGTERM');
  await waitUntil(async () => (await cluster.get('lb1', '/readyz').catch(() => null))?.status === 503, 10_000, 'not ready');
  await waitUntil(() => lines().includes('down lb1'), 15_000, 'the watchdog withdrew');
  // The grace (30 s here) goes on: the node serves on the vip and its host.
  for (const host of [VIP, '127.0.0.1']) {
    const r = await fetch(`http://${host}:${HTTP_PORT}/during-grace`, { signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 200, `${host} still served while the route is withdrawn`);
  }
  assert.equal(node.exitCode, null, 'the node still runs');
  node.kill('SIGTERM');
  assert.equal(await exited(node), 0, 'drained and exited 0');
  const log = readFileSync(cluster.node('lb1').logFile, 'utf8');
  assert.match(log, /not ready: serving on while the route is withdrawn/);
  assert.match(log, /withdraw grace cut short/);
  assert.ok(log.indexOf('not ready: serving on') < log.indexOf('"msg":"draining"'), 'not ready first, then draining');
});
