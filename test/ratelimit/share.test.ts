import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import pino from 'pino';
import { RateLimitShare, type RateSharePlane } from '../../src/ratelimit/share.js';
import { FrameType, FRAME_HEADER_BYTES } from '../../src/cluster/frame.js';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';

class Plane implements RateSharePlane {
  readonly handlers = new Map<number, (peer: string, payload: Buffer) => void>();
  readonly sent: Array<{ peer: string; frame: Buffer }> = [];
  constructor(readonly selfId: string, readonly nodeIds: readonly string[]) {}
  alive(): ReadonlySet<string> {
    return new Set(this.nodeIds);
  }
  onControlFrame(type: number, h: (peer: string, payload: Buffer) => void): void {
    this.handlers.set(type, h);
  }
  sendControl(peer: string, frame: Buffer): boolean {
    this.sent.push({ peer, frame });
    return true;
  }
}

function config(rps: number): Config {
  return validateConfig({
    cluster: { name: 't', secret: 'integration-test-secret-0123456789', nodes: [{ id: 'a', host: '127.0.0.1', peerPort: 28900, adminPort: 28901 }] },
    services: [
      {
        name: 'web',
        protocol: 'http',
        port: 28902,
        backends: [{ address: '127.0.0.1:28903' }],
        rateLimit: { requestsPerSecond: rps, burst: 5 },
        routes: [{ name: 'api', match: { pathPrefix: '/v1/' }, backends: [{ address: '127.0.0.1:28904' }], rateLimit: { requestsPerSecond: 10, burst: 2 } }],
      },
    ],
  });
}

const payloadOf = (frame: Buffer): Buffer => {
  assert.equal(frame[5], FrameType.RATE_COUNTS);
  assert.equal(frame.readUInt32BE(0), frame.length - 4);
  return frame.subarray(FRAME_HEADER_BYTES);
};

test('limiters per service and route; counts go to every peer in one RATE_COUNTS frame; the peer applies them', async () => {
  const pa = new Plane('a', ['a', 'b']);
  const pb = new Plane('b', ['a', 'b']);
  const a = new RateLimitShare({ plane: pa, registry: new Registry(), logger: pino({ level: 'silent' }), syncMs: 10 });
  const b = new RateLimitShare({ plane: pb, registry: new Registry(), logger: pino({ level: 'silent' }), syncMs: 10 });
  a.apply(config(100));
  b.apply(config(100));
  assert.ok(a.limiter('web') !== undefined && a.limiter('web/api') !== undefined);
  const kept = a.limiter('web/api');
  for (let i = 0; i < 5; i++) assert.equal(a.limiter('web/api')!.take('k', Date.now()).ok, i < 2);
  await new Promise((r) => setTimeout(r, 40));
  assert.ok(pa.sent.length > 0 && pa.sent.every((s) => s.peer === 'b'));
  pb.handlers.get(FrameType.RATE_COUNTS)!('a', payloadOf(pa.sent[0].frame));
  // b saw a spend the burst: its own view of the tier's bucket for "k" is empty.
  assert.equal(b.limiter('web/api')!.take('k', Date.now()).ok, false);
  // A reload with the route's limit unchanged keeps its limiter; a changed one is new.
  a.apply(config(200));
  assert.equal(a.limiter('web/api'), kept);
  a.stop();
  b.stop();
});

test('a malformed counts frame is refused and counted; nothing thrown (the link stays)', async () => {
  const p = new Plane('a', ['a', 'b']);
  const reg = new Registry();
  const s = new RateLimitShare({ plane: p, registry: reg, logger: pino({ level: 'silent' }) });
  s.apply(config(100));
  assert.doesNotThrow(() => p.handlers.get(FrameType.RATE_COUNTS)!('b', Buffer.from([0xff, 0xff, 1])));
  const m = await reg.getSingleMetricAsString('tandem_ratelimit_frames_total');
  assert.match(m, /result="refused"\} 1/);
  s.stop();
});
