// Temporary profiling harness (deleted after use).
import { TandemNode } from '../../../src/node/node.js';
import { validateConfig } from '../../../src/config/load.js';
import { tcpBackend } from '../../helpers/backends.js';
import net from 'node:net';
import { fork } from 'node:child_process';
function cfg(backend: string) {
  return validateConfig({
    cluster: { name: 'test', secret: 'integration-test-secret-0123456789', heartbeatMs: 100, failureTimeoutMs: 500, snapshotTimeoutMs: 300, logLevel: 'warn',
      nodes: [{ id: 'lb1', host: '127.0.0.1', peerPort: 17760, adminPort: 17810 }] },
    services: [{ name: 'raw', protocol: 'tcp', port: 17767, maxConnections: 2000, backends: [{ address: backend }], healthCheck: { type: 'none' }, timeouts: { idleMs: 3000, connectMs: 1000 } }],
  });
}
if (process.argv[2] === 'node') {
  const n = new TandemNode(cfg(process.argv[3]), 'lb1');
  await n.start();
  process.send?.('ready');
  process.on('message', async () => { await n.stop(); process.exit(0); });
} else {
  const b = await tcpBackend('t1');
  const kid = fork(new URL(import.meta.url).pathname, ['node', b.address], { execArgv: ['--import', 'tsx', '--cpu-prof', '--cpu-prof-dir=/tmp/prof4'] });
  await new Promise((r) => kid.once('message', r));
  const socks: net.Socket[] = []; const t0 = Date.now();
  for (let i = 0; i < 6000; i += 200) {
    await Promise.all(Array.from({ length: 200 }, () => new Promise<void>((resolve) => { const s = net.connect(17767, '127.0.0.1'); s.on('error', () => {}); s.once('connect', () => { socks.push(s); resolve(); }); s.once('close', () => resolve()); })));
  }
  console.log(`6000 connects in ${Date.now() - t0} ms`);
  for (const s of socks) s.destroy();
  kid.send('stop'); await new Promise((r) => kid.once('exit', r)); await b.close();
}
