import { startCluster, sleep } from '/work/main/test/helpers/cluster.js';
import { udpBackend } from '/work/main/test/helpers/backends.js';
import { client, waitFor } from '/work/main/test/proxy/udp/harness.js';
const HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
const backends = await Promise.all(['b1', 'b2', 'b3'].map((id) => udpBackend(id)));
const c = await startCluster({ basePort: 17440, logLevel: 'debug', services: [{ name: 'quic', protocol: 'udp', port: 17471, flowKey: 'quic-cid', backends: backends.map((b) => ({ address: b.address })), healthCheck: { type: 'none' } }] });
try {
  const quicLong = (dcid: Buffer, body: string) => Buffer.concat([Buffer.from([0xc3, 0, 0, 0, 1, dcid.length]), dcid, Buffer.from([4]), Buffer.from('scid'), Buffer.from(body.padEnd(40, '.'))]);
  const quicShort = (dcid: Buffer, body: string) => Buffer.concat([Buffer.from([0x41]), dcid, Buffer.from(body.padEnd(40, '.'))]);
  const cids = Array.from({ length: 10 }, (_, i) => Buffer.from(`qcid${String(i).padStart(4, '0')}`));
  const before = await Promise.all(cids.map(() => client()));
  const moved = await Promise.all(cids.map(() => client()));
  for (let round = 0; round < 3; round++) cids.forEach((cid, i) => before[i]!.send({ host: HOSTS[i % 3]!, port: 17471 }, quicLong(cid, `r${round}`)));
  await waitFor(() => before.every((f) => f.replies.length === 3), 3000, 'b');
  for (let i = 0; i < 10; i++) {
    const k = cids[i]!.toString('hex');
    const views = await Promise.all(['lb1','lb2','lb3'].map((id) => c.flow(id, 'quic', k)));
    console.log(i, JSON.stringify(before[i]!.replies.map((r) => r.text.slice(0, 2))), JSON.stringify(views.map((v) => v && `${v.primary}/${v.backup}/${v.backend}/${v.writer}`)));
  }
  for (let round = 0; round < 3; round++) cids.forEach((cid, i) => moved[i]!.send({ host: HOSTS[(i + 1) % 3]!, port: 17471 }, quicShort(cid, `m${round}`)));
  await waitFor(() => moved.every((f) => f.replies.length === 3), 3000, 'm');
  for (let i = 0; i < 10; i++) console.log(i, JSON.stringify(moved[i]!.replies.map((r) => r.text.slice(0, 2))));
  for (const b of backends) console.log(b.id, b.address);
} finally { await c.stop(); for (const b of backends) await b.close(); }
process.exit(0);
