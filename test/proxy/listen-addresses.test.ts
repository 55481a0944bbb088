/**
 * Listening on the host and the vip (src/proxy/listen-addresses.ts): both addresses accept, the
 * main socket's options and close() cover the sibling, replies leave from the address the client
 * sent to, and a failure on either address is reported and leaves nothing bound.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createServer as createHttp, request, Agent } from 'node:http';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { bindDatagram, listenStream } from '../../src/proxy/listen-addresses.js';

const HOST = '127.0.0.1';
const VIP = '127.0.0.61';

function listen(server: Server, addresses: string[], port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    listenStream(server, addresses, port, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function dial(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port }, () => resolve(s));
    s.once('error', reject);
  });
}

const closed = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

test('listenStream: both addresses reach the one server, with its accept options', async () => {
  const seen: Array<{ local: string; paused: boolean; halfOpen: boolean }> = [];
  const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => {
    seen.push({ local: s.localAddress ?? '', paused: s.readableFlowing === false, halfOpen: s.allowHalfOpen });
    s.resume();
    s.end('hi');
  });
  await listen(server, [HOST, VIP], 23301);
  for (const h of [HOST, VIP]) {
    const c = await dial(h, 23301);
    c.resume();
    await new Promise((r) => c.once('end', r));
    c.destroy();
  }
  assert.deepEqual(seen.map((x) => x.local), [HOST, VIP]);
  for (const x of seen) assert.deepEqual([x.paused, x.halfOpen], [true, true], 'the sibling accepts like the server itself');
  assert.deepEqual(server.address(), { address: HOST, family: 'IPv4', port: 23301 });
  await closed(server);
  for (const h of [HOST, VIP]) await assert.rejects(dial(h, 23301), { code: 'ECONNREFUSED' }, `${h} closed`);
});

test('listenStream: close() waits for the connections the sibling accepted', async () => {
  const open = new Set<Socket>();
  const server = createServer((s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
  });
  await listen(server, [HOST, VIP], 23302);
  const c = await dial(VIP, 23302);
  while (open.size === 0) await new Promise((r) => setTimeout(r, 5));
  let done = false;
  const closing = closed(server).then(() => (done = true));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(done, false, 'a connection on the vip is still open');
  await assert.rejects(dial(VIP, 23302), { code: 'ECONNREFUSED' }, 'but the vip no longer accepts');
  c.destroy();
  await closing;
});

test('listenStream: an address in use is reported and leaves nothing listening', async () => {
  const squatter = createServer();
  await new Promise<void>((r) => squatter.listen(23303, VIP, () => r()));
  const server = createServer();
  await assert.rejects(listen(server, [HOST, VIP], 23303), { code: 'EADDRINUSE' });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(server.listening, false);
  await assert.rejects(dial(HOST, 23303), { code: 'ECONNREFUSED' });
  await closed(squatter);
});

test('listenStream: an http server serves both addresses and closes idle keep-alive connections of both', async () => {
  const server = createHttp((req, res) => res.end(req.socket.localAddress));
  server.keepAliveTimeout = 60_000;
  const sockets: Socket[] = [];
  const locals: string[] = [];
  server.on('connection', (s: Socket) => {
    sockets.push(s);
    locals.push(s.localAddress ?? '');
  });
  await listen(server, [HOST, VIP], 23304);
  const agent = new Agent({ keepAlive: true });
  const get = (h: string) =>
    new Promise<string>((resolve, reject) => {
      request({ host: h, port: 23304, agent }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => resolve(b));
      })
        .on('error', reject)
        .end();
    });
  assert.equal(await get(HOST), HOST);
  assert.equal(await get(VIP), VIP);
  // Only closeIdleConnections() can end these connections now (keep-alive for a minute).
  const ended = Promise.all(sockets.map((s) => new Promise((r) => (s.destroyed ? r(null) : s.once('close', r)))));
  server.closeIdleConnections();
  await ended;
  assert.deepEqual(locals, [HOST, VIP], 'one keep-alive connection on each address, both closed');
  await closed(server);
  agent.destroy();
});

test('bindDatagram: datagrams from both addresses, each answered from the address it was sent to', async () => {
  const server = createSocket('udp4');
  server.on('message', (msg, rinfo) => server.send(msg, rinfo.port, rinfo.address));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    bindDatagram(server, [HOST, VIP], 23305, () => resolve());
  });
  const ask = async (to: string): Promise<string> => {
    const c: UdpSocket = createSocket('udp4');
    await new Promise<void>((r) => c.bind(0, HOST, () => r()));
    const from = new Promise<string>((r) => c.once('message', (_m, rinfo) => r(rinfo.address)));
    c.send('x', 23305, to);
    const a = await from;
    c.close();
    return a;
  };
  assert.equal(await ask(VIP), VIP);
  assert.equal(await ask(HOST), HOST);
  assert.equal(await ask(VIP), VIP);
  assert.deepEqual(server.address(), { address: HOST, family: 'IPv4', port: 23305 });
  await new Promise<void>((r) => server.close(() => r()));
  // Both addresses are free again.
  const again = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    again.once('error', reject);
    bindDatagram(again, [HOST, VIP], 23305, () => resolve());
  });
  again.close();
});

test('bindDatagram: an endpoint that moves from the vip to the host is answered from the host', async () => {
  const server = createSocket('udp4');
  server.on('message', (msg, rinfo) => server.send(msg, rinfo.port, rinfo.address));
  await new Promise<void>((resolve) => bindDatagram(server, [HOST, VIP], 23306, () => resolve()));
  const c = createSocket('udp4');
  await new Promise<void>((r) => c.bind(0, HOST, () => r()));
  const next = () => new Promise<string>((r) => c.once('message', (_m, rinfo) => r(rinfo.address)));
  let p = next();
  c.send('1', 23306, VIP);
  assert.equal(await p, VIP);
  p = next();
  c.send('2', 23306, HOST);
  assert.equal(await p, HOST);
  c.close();
  server.close();
});

test('bindDatagram: an address in use is reported as the socket error', async () => {
  const squatter = createSocket('udp4');
  await new Promise<void>((r) => squatter.bind(23307, VIP, () => r()));
  const s = createSocket('udp4');
  const err = await new Promise<NodeJS.ErrnoException>((resolve) => {
    s.once('error', resolve);
    bindDatagram(s, [HOST, VIP], 23307, () => resolve(new Error('bound')));
  });
  assert.equal(err.code, 'EADDRINUSE');
  s.close();
  squatter.close();
});

test('bindDatagram: the reply routes are bounded (the least recently heard endpoint is forgotten)', async () => {
  const server = createSocket('udp4');
  // Answers later, on demand, so that three endpoints are remembered before any reply.
  const heard: Array<{ port: number; address: string }> = [];
  server.on('message', (_m, rinfo) => heard.push({ port: rinfo.port, address: rinfo.address }));
  await new Promise<void>((resolve) => bindDatagram(server, [HOST, VIP], 23308, () => resolve(), { maxEndpoints: 2, idleMs: 60_000 }));
  const clients: UdpSocket[] = [];
  for (let i = 0; i < 3; i++) {
    const c = createSocket('udp4');
    await new Promise<void>((r) => c.bind(0, HOST, () => r()));
    clients.push(c);
    c.send('x', 23308, VIP);
    while (heard.length <= i) await new Promise((r) => setTimeout(r, 5));
  }
  const from = await Promise.all(
    clients.map((c, i) => {
      const p = new Promise<string>((r) => c.once('message', (_m, rinfo) => r(rinfo.address)));
      server.send('y', heard[i].port, heard[i].address);
      return p;
    }),
  );
  assert.deepEqual(from, [HOST, VIP, VIP], 'the first endpoint was forgotten: answered from the host address');
  for (const c of clients) c.close();
  server.close();
});
