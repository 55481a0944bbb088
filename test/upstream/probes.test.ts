import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttp, type Server as HttpServer } from 'node:http';
import { createServer as createTcp, type AddressInfo } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { decodeBytes, httpProbe, parseStatusRange, probeFor, statusInRange, tcpProbe, udpProbe, type ProbeTarget } from '../../src/upstream/probes.js';
import { HC_DEFAULTS } from './helpers.js';
import type { HealthCheckConfig } from '../../src/config/schema.js';

const HOST = '127.0.0.1';
const target = (port: number): ProbeTarget => ({ address: `${HOST}:${port}`, host: HOST, port });
const check = (c: Partial<HealthCheckConfig>): HealthCheckConfig => ({ ...HC_DEFAULTS, timeoutMs: 300, ...c });
const signal = () => new AbortController().signal;

/** A port that nothing listens on (bound, then closed). */
async function closedTcpPort(): Promise<number> {
  const s = createTcp();
  await new Promise<void>((r) => s.listen(0, HOST, r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('expectStatus parsing', () => {
  it('parses a status and a range, inclusive', () => {
    assert.deepEqual(parseStatusRange('200-399'), { min: 200, max: 399 });
    assert.deepEqual(parseStatusRange('204'), { min: 204, max: 204 });
    const r = parseStatusRange('200-299');
    assert.equal(statusInRange(200, r), true);
    assert.equal(statusInRange(299, r), true);
    assert.equal(statusInRange(300, r), false);
    assert.equal(statusInRange(199, r), false);
  });

  it('rejects what the schema would', () => {
    for (const bad of ['', 'abc', '200-', '99', '600', '200-600', '399-200', '2000']) assert.throws(() => parseStatusRange(bad), RangeError, bad);
  });

  it('decodes udp payloads: text or hex:', () => {
    assert.deepEqual(decodeBytes('ping'), Buffer.from('ping'));
    assert.deepEqual(decodeBytes('hex:00ff 10'), Buffer.from([0, 255, 16]));
    assert.throws(() => decodeBytes('hex:0g'), RangeError);
    assert.equal(probeFor('none'), null);
    assert.equal(probeFor('tcp'), tcpProbe);
  });
});

describe('http probe', () => {
  let server: HttpServer;
  let port: number;
  const seen: string[] = [];
  before(async () => {
    server = createHttp((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.host}`);
      if (req.url === '/hang') return;
      const status = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('status') ?? '200');
      res.writeHead(status).end('body');
    });
    await new Promise<void>((r) => server.listen(0, HOST, r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('sends method and path to host:port; a status inside the range passes', async () => {
    assert.deepEqual(await httpProbe(target(port), check({ path: '/healthz?status=204', method: 'HEAD' }), signal()), { ok: true });
    assert.equal(seen.at(-1), `HEAD /healthz?status=204 ${HOST}:${port}`);
    assert.deepEqual(await httpProbe(target(port), check({ path: '/x?status=399' }), signal()), { ok: true });
  });

  it('a status outside the range fails', async () => {
    assert.deepEqual(await httpProbe(target(port), check({ path: '/x?status=503' }), signal()), { ok: false, reason: 'status 503', timeout: false });
    assert.deepEqual(await httpProbe(target(port), check({ path: '/x?status=200', expectStatus: '204' }), signal()), { ok: false, reason: 'status 200', timeout: false });
  });

  it('no answer within timeoutMs fails as a timeout', async () => {
    // /hang never answers: only the probe's own timeout can end this (the test would hang otherwise).
    const r = await httpProbe(target(port), check({ path: '/hang', timeoutMs: 100 }), signal());
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.timeout, true);
  });

  it('connection refused fails at once', async () => {
    const r = await httpProbe(target(await closedTcpPort()), check({}), signal());
    assert.deepEqual(r, { ok: false, reason: 'ECONNREFUSED', timeout: false });
  });

  it('an abort ends the probe at once', async () => {
    const ac = new AbortController();
    const p = httpProbe(target(port), check({ path: '/hang', timeoutMs: 5000 }), ac.signal);
    setTimeout(() => ac.abort(), 20);
    assert.deepEqual(await p, { ok: false, reason: 'aborted', timeout: false });
  });
});

describe('tcp probe', () => {
  it('passes when a connection is accepted, fails when refused', async () => {
    const server = createTcp((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, HOST, r));
    const { port } = server.address() as AddressInfo;
    assert.deepEqual(await tcpProbe(target(port), check({ type: 'tcp' }), signal()), { ok: true });
    await new Promise<void>((r) => server.close(() => r()));
    const r = await tcpProbe(target(port), check({ type: 'tcp' }), signal());
    assert.deepEqual(r, { ok: false, reason: 'ECONNREFUSED', timeout: false });
  });
});

describe('udp probe', () => {
  let server: UdpSocket;
  let port: number;
  const got: Buffer[] = [];
  before(async () => {
    server = createSocket('udp4');
    server.on('message', (msg, rinfo) => {
      got.push(msg);
      if (msg.toString() === 'silent') return;
      server.send(Buffer.concat([Buffer.from('pong:'), msg]), rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => server.bind(0, HOST, r));
    port = server.address().port;
  });
  after(() => server.close());

  it('sends the payload; a reply containing `expect` passes', async () => {
    assert.deepEqual(await udpProbe(target(port), check({ type: 'udp', payload: 'ping', expect: 'pong:ping' }), signal()), { ok: true });
    assert.equal(got.at(-1)!.toString(), 'ping');
    assert.deepEqual(await udpProbe(target(port), check({ type: 'udp', payload: 'hex:0001ff', expect: 'hex:01ff' }), signal()), { ok: true });
    assert.deepEqual(got.at(-1), Buffer.from([0, 1, 255]));
  });

  it('without `expect` any reply passes; without payload an empty datagram is sent', async () => {
    assert.deepEqual(await udpProbe(target(port), check({ type: 'udp' }), signal()), { ok: true });
    assert.equal(got.at(-1)!.length, 0);
  });

  it('a reply without `expect` fails', async () => {
    const r = await udpProbe(target(port), check({ type: 'udp', payload: 'ping', expect: 'PONG' }), signal());
    assert.equal(r.ok, false);
  });

  it('no reply within timeoutMs fails as a timeout', async () => {
    const r = await udpProbe(target(port), check({ type: 'udp', payload: 'silent', timeoutMs: 80 }), signal());
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.timeout, true);
  });

  it('a closed port fails (ICMP unreachable on loopback → ECONNREFUSED, or the timeout)', async () => {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, HOST, r));
    const closed = s.address().port;
    s.close();
    const r = await udpProbe(target(closed), check({ type: 'udp', payload: 'ping', timeoutMs: 300 }), signal());
    assert.equal(r.ok, false);
  });
});
