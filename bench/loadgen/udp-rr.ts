// UDP request/response load generator: `concurrency` sockets (one client address:port each), each
// with one datagram outstanding: send "ping", wait for the reply, send again. A reply missing after
// --timeout-ms counts as lost and the socket sends anew. Bounded by --duration and --max.
// Prints one JSON line: { responses, lost, datagramsPerSec, latencyMs: {p50, p99}, … }.
import { createSocket, type Socket } from 'node:dgram';
import { parseArgs, num, LatencyRecorder, nowMs } from './common.js';

const args = parseArgs(process.argv.slice(2), {
  host: '127.0.0.1', port: '', local: '127.0.0.1', concurrency: '32', duration: '5', max: '5000000', 'timeout-ms': '200',
});
const port = num(args, 'port');
const concurrency = Math.max(1, num(args, 'concurrency'));
const durationMs = num(args, 'duration') * 1000;
const max = num(args, 'max');
const timeoutMs = Math.max(1, num(args, 'timeout-ms'));
const PAYLOAD = Buffer.from('ping');

const lat = new LatencyRecorder();
let sent = 0;
let responses = 0;
let lost = 0;
let late = 0;
const t0 = nowMs();
const deadline = t0 + durationMs;

function runSocket(): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock: Socket = createSocket('udp4');
    let sentAt = 0;
    let waiting = false;
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      sock.close();
      resolve();
    };
    const send = () => {
      if (nowMs() >= deadline || sent >= max) return done();
      sent++;
      waiting = true;
      sentAt = nowMs();
      sock.send(PAYLOAD, port, args.host);
      timer = setTimeout(() => {
        lost++;
        waiting = false;
        send();
      }, timeoutMs);
    };
    sock.on('message', () => {
      if (!waiting) {
        late++; // the reply to a datagram already counted lost
        return;
      }
      clearTimeout(timer);
      waiting = false;
      responses++;
      lat.add(nowMs() - sentAt);
      send();
    });
    sock.once('error', reject);
    sock.bind({ address: args.local, port: 0 }, send);
  });
}

await Promise.all(Array.from({ length: concurrency }, () => runSocket()));
const elapsedSec = (nowMs() - t0) / 1000;
process.stdout.write(
  `${JSON.stringify({ sent, responses, lost, late, durationSec: elapsedSec, datagramsPerSec: responses / elapsedSec, latencyMs: lat.summary() })}\n`,
);
