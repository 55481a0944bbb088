/**
 * AcmeManager without an ACME server: certificates from peers (sealed frames) adopted by the
 * "issued later wins" rule whatever the order, passed on, kept in the state directory (0600) and
 * loaded by the next process before any peer; bad frames refused and counted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { AcmeManager, type AcmePlane } from '../../src/acme/manager.js';
import { AcmeSealer } from '../../src/acme/wire.js';
import { selfSigned } from '../../src/acme/self-signed.js';
import { CONTROL_FRAME_TYPES, FrameDecoder } from '../../src/cluster/frame.js';
import { ErrorCodes } from '../../src/errors.js';
import type { Config } from '../../src/config/schema.js';

const SECRET = 'unit-test-secret-0123456789';

class FakePlane implements AcmePlane {
  readonly nodeIds = ['lb1', 'lb2', 'lb3'];
  readonly ready = true;
  readonly sent: Array<{ peer: string; payload: Buffer }> = [];
  handler: ((peer: string, payload: Buffer) => void) | null = null;
  constructor(readonly selfId: string) {}
  alive(): ReadonlySet<string> {
    return new Set(this.nodeIds);
  }
  onControlFrame(_type: number, h: (peer: string, payload: Buffer) => void): void {
    this.handler = h;
  }
  onControlLinkUp(): void {}
  sendControl(peer: string, frame: Buffer): boolean {
    const d = new FrameDecoder({ types: CONTROL_FRAME_TYPES });
    d.push(frame);
    this.sent.push({ peer, payload: Buffer.from(d.next()!.payload) });
    return true;
  }
}

const config = (): Config => ({
  cluster: { name: 'test' },
  services: [{ name: 'web', tls: { acme: { directory: 'https://acme.test/dir', email: 'a@b.test', domains: ['shop.test'], caFile: null, challengePort: 80 } } }],
}) as unknown as Config;

function manager(plane: FakePlane, stateDir: string, registry = new Registry()): AcmeManager {
  return new AcmeManager({ plane, clusterName: 'test', secret: SECRET, stateDir, logger: pino({ level: 'silent' }), registry, tuning: { tickMs: 60_000 } });
}

test('the certificate issued later wins on every node, whatever the order; it is passed on and kept', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-acme-unit-'));
  const older = await selfSigned(['shop.test'], Date.now() - 3_600_000);
  const newer = await selfSigned(['shop.test'], Date.now());
  const from3 = new AcmeSealer(SECRET, 'test');
  const planes = [new FakePlane('lb1'), new FakePlane('lb2')];
  const ms = planes.map((p) => manager(p, dir));
  for (const m of ms) await m.apply(config());
  const id = ms[0].certificates()[0].id;
  assert.equal(ms[0].certificates()[0].state, 'self-signed');
  assert.deepEqual(ms[0].fallbacks(), ['web']);
  // lb1 hears older then newer, lb2 newer then older.
  const f = (pem: { cert: string; key: string }) => from3.frame({ kind: 'certificate', id, ...pem }, 'lb3');
  const payload = (b: Buffer) => {
    const d = new FrameDecoder({ types: CONTROL_FRAME_TYPES });
    d.push(b);
    return Buffer.from(d.next()!.payload);
  };
  planes[0].handler!('lb3', payload(f(older)));
  planes[0].handler!('lb3', payload(f(newer)));
  planes[1].handler!('lb3', payload(f(newer)));
  planes[1].handler!('lb3', payload(f(older)));
  const want = new X509Certificate(newer.cert).fingerprint256;
  for (const m of ms) assert.equal(m.certificates()[0].fingerprint, want);
  assert.deepEqual(ms[0].fallbacks(), []);
  assert.equal(ms[0].pemFor('web')?.cert, newer.cert);
  // Passed on to the peers other than the sender, once per change (lb1 changed twice, lb2 once).
  assert.deepEqual(planes[0].sent.map((s) => s.peer), ['lb2', 'lb2']);
  assert.deepEqual(planes[1].sent.map((s) => s.peer), ['lb1']);
  // Kept, 0600, and loaded by the next process before any peer.
  const kept = join(dir, 'lb1', 'acme');
  const file = readdirSync(kept).find((x) => x.endsWith('.json'))!;
  assert.equal(statSync(join(kept, file)).mode & 0o777, 0o600);
  const again = manager(new FakePlane('lb1'), dir);
  await again.apply(config());
  assert.equal(again.certificates()[0].fingerprint, want);
  assert.equal(again.certificates()[0].state, 'valid');
});

test('bad frames are refused and counted; the held certificate stays', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-acme-unit-'));
  const registry = new Registry();
  const plane = new FakePlane('lb1');
  const m = manager(plane, dir, registry);
  await m.apply(config());
  const id = m.certificates()[0].id;
  const a = await selfSigned(['shop.test']);
  const b = await selfSigned(['shop.test']);
  const s = new AcmeSealer(SECRET, 'test');
  const open = (frame: Buffer) => {
    const d = new FrameDecoder({ types: CONTROL_FRAME_TYPES });
    d.push(frame);
    return Buffer.from(d.next()!.payload);
  };
  // Sealed for another sender: does not open (the link drops that peer).
  assert.throws(() => plane.handler!('lb2', open(s.frame({ kind: 'renew', id }, 'lb3'))), { code: ErrorCodes.FRAME_MALFORMED });
  // A key that does not match its certificate: refused, nothing adopted.
  plane.handler!('lb3', open(s.frame({ kind: 'certificate', id, cert: a.cert, key: b.key }, 'lb3')));
  assert.equal(m.certificates()[0].fingerprint, null);
  const refused = (await registry.getSingleMetric('tandem_acme_frames_total')!.get()).values.find((v) => v.labels.result === 'refused');
  assert.equal(refused?.value, 2);
  assert.equal(m.challengeResponse('/.well-known/acme-challenge/nope'), null);
});
