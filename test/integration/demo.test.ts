/**
 * `tandem demo` end to end (issue 9): HTTP, TCP and UDP through all three nodes, a node killed,
 * traffic still flowing, SIGINT stopping everything with no process left behind.
 * Uses the demo's fixed ports (8080-8082, 7000, 9000, 9101-9303).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { createSocket } from 'node:dgram';
import { request } from 'undici';
import { waitUntil } from '../helpers/cluster.js';

const BIN = new URL('../../bin/tandem.js', import.meta.url).pathname;
const HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];

async function http(host: string, session: string): Promise<string> {
  const r = await request(`http://${host}:8080/`, { headers: { 'x-session': session }, headersTimeout: 5000 });
  assert.equal(r.statusCode, 200);
  return (await r.body.text()).split(':')[0];
}

function tcp(host: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(8081, host, () => s.end(text));
    let out = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (out += d));
    s.on('end', () => resolve(out));
    s.on('error', reject);
    s.setTimeout(5000, () => s.destroy(new Error('tcp timeout')));
  });
}

function udp(host: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    const timer = setTimeout(() => {
      s.close();
      reject(new Error('udp timeout'));
    }, 3000);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(String(m));
    });
    s.send(text, 8082, host);
  });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('tandem demo: three protocols through three nodes, a node killed, Ctrl-C stops all', { timeout: 60_000 }, async (t) => {
  const demo = spawn(process.execPath, [BIN, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  demo.stdout.on('data', (d: Buffer) => (out += d.toString()));
  demo.stderr.on('data', (d: Buffer) => (out += d.toString()));
  try {
    await waitUntil(() => out.includes('Ctrl-C stops everything'), 30_000, `the demo's guide:\n${out}`);
    const pids = Object.fromEntries([...out.matchAll(/(lb\d)=(\d+)/g)].slice(0, 3).map((m) => [m[1], Number(m[2])]));
    assert.deepEqual(Object.keys(pids).sort(), ['lb1', 'lb2', 'lb3']);
    assert.match(out, /curl -H 'x-session: alice' http:\/\/127\.0\.0\.2:8080\//);

    const first = new Map<string, string>();
    for (const host of HOSTS) {
      for (const session of ['alice', 'bob', 'carol']) {
        const backend = await http(host, session);
        if (first.has(session)) assert.equal(backend, first.get(session), `${session} keeps its backend`);
        else first.set(session, backend);
      }
      assert.match(await tcp(host, 'ping'), /^(alpha|beta|gamma)> ping$/);
      assert.match(await udp(host, 'ping'), /^(alpha|beta|gamma): ping$/);
    }

    // Kill alice's primary: the backup serves her, on the same backend.
    const flow = (await (await request('http://127.0.0.1:9000/api/flows?service=web&key=alice')).body.json()) as { primary: string };
    const victim = flow.primary;
    process.kill(pids[victim], 'SIGKILL');
    await waitUntil(() => out.includes(`${victim} (pid ${pids[victim]}) exited`), 5000, 'the demo notices');
    const survivors = HOSTS.filter((_, i) => `lb${i + 1}` !== victim);
    for (const host of survivors) {
      assert.equal(await http(host, 'alice'), first.get('alice'));
      assert.match(await tcp(host, 'again'), /> again$/);
      assert.match(await udp(host, 'again'), /: again$/);
    }
    t.diagnostic(`killed ${victim}; alice stayed on ${first.get('alice')}`);
  } finally {
    const exited = new Promise<number | null>((resolve) => (demo.exitCode !== null ? resolve(demo.exitCode) : demo.once('exit', (code) => resolve(code))));
    demo.kill('SIGINT');
    const code = await exited;
    assert.equal(code, 0);
  }
  const pids = [...out.matchAll(/(lb\d)=(\d+)/g)].slice(0, 3).map((m) => Number(m[2]));
  await waitUntil(() => pids.every((p) => !alive(p)), 5000, 'no node process left');
  assert.match(out, /\[demo\] stopped/);
});
