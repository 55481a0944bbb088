// UDP request/response load generator: `concurrency` sockets (one client address:port each), each
// with one datagram outstanding: send a numbered datagram, wait for its echo, send the next. A reply
// missing after --timeout-ms counts as lost and the socket sends anew. A reply that is not the echo
// of this socket's outstanding datagram counts as `wrong` (delivered to the wrong client) or `late`
// (an earlier datagram's echo) and does not count as a response. Bounded by --duration and --max.
// Prints one JSON line: { responses, lost, wrong, late, datagramsPerSec, latencyMs: {p50, p99}, … }.
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

const lat = new LatencyRecorder();
let sent = 0;
let responses = 0;
let lost = 0;
let late = 0;
let wrong = 0;
const t0 = nowMs();
const deadline = t0 + durationMs;

function runSocket(index: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock: Socket = createSocket('udp4');
    const prefix = `rr ${index} `;
    let seq = 0;
    let expected = '';
    let sentAt = 0;
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      sock.close();
      resolve();
    };
    const send = () => {
      if (nowMs() >= deadline || sent >= max) return done();
      sent++;
      expected = `${prefix}${++seq}`;
      sentAt = nowMs();
      sock.send(expected, port, args.host);
      timer = setTimeout(() => {
        lost++;
        send();
      }, timeoutMs);
    };
    sock.on('message', (msg) => {
      const text = msg.toString('latin1');
      if (text !== expected) {
        if (text.startsWith(prefix)) late++;
        else wrong++;
        return;
      }
      clearTimeout(timer);
      expected = '';
      responses++;
      lat.add(nowMs() - sentAt);
      send();
    });
    sock.once('error', reject);
    sock.bind({ address: args.local, port: 0 }, send);
  });
}

await Promise.all(Array.from({ length: concurrency }, (_, i) => runSocket(i)));
const elapsedSec = (nowMs() - t0) / 1000;
process.stdout.write(
  `${JSON.stringify({ sent, responses, lost, wrong, late, durationSec: elapsedSec, datagramsPerSec: responses / elapsedSec, latencyMs: lat.summary() })}\n`,
);
