// TCP connection-rate load generator: `concurrency` loops of connect → send a small HTTP/1.0
// request → read the reply until the server closes → close; bounded by --duration and --max.
// Prints one JSON line: { connections, errors, connectionsPerSec, latencyMs: {p50, p99}, … }.
import { connect } from 'node:net';
import { parseArgs, num, LatencyRecorder, nowMs } from './common.js';

const args = parseArgs(process.argv.slice(2), {
  host: '127.0.0.1', port: '', local: '', concurrency: '32', duration: '5', max: '2000000', 'timeout-ms': '5000',
});
const port = num(args, 'port');
const concurrency = Math.max(1, num(args, 'concurrency'));
const durationMs = num(args, 'duration') * 1000;
const max = num(args, 'max');
const timeoutMs = num(args, 'timeout-ms');
const REQUEST = Buffer.from('GET / HTTP/1.0\r\nHost: bench\r\nUser-Agent: tandem-bench\r\n\r\n');

const lat = new LatencyRecorder();
let started = 0;
let ok = 0;
let errors = 0;
const errorSamples = new Map<string, number>();
const t0 = nowMs();
const deadline = t0 + durationMs;

function once(): Promise<void> {
  return new Promise((resolve) => {
    const t = nowMs();
    let got = '';
    let settled = false;
    const finish = (err?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (!err && !got.startsWith('HTTP/1.1 200') && !got.startsWith('HTTP/1.0 200')) err = `bad reply: ${JSON.stringify(got.slice(0, 40))}`;
      if (err) {
        errors++;
        errorSamples.set(err, (errorSamples.get(err) ?? 0) + 1);
      } else {
        ok++;
        lat.add(nowMs() - t);
      }
      resolve();
    };
    const sock = connect({ host: args.host, port, localAddress: args.local || undefined, noDelay: true });
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    sock.setEncoding('latin1');
    sock.once('connect', () => sock.write(REQUEST));
    sock.on('data', (d: string) => {
      if (got.length < 64) got += d;
    });
    sock.once('end', () => finish());
    sock.once('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
  });
}

async function worker(): Promise<void> {
  while (nowMs() < deadline && started < max) {
    started++;
    await once();
  }
}

await Promise.all(Array.from({ length: concurrency }, () => worker()));
const elapsedSec = (nowMs() - t0) / 1000;
process.stdout.write(
  `${JSON.stringify({
    connections: ok,
    errors,
    errorSamples: Object.fromEntries([...errorSamples].slice(0, 5)),
    durationSec: elapsedSec,
    connectionsPerSec: ok / elapsedSec,
    latencyMs: lat.summary(),
  })}\n`,
);
