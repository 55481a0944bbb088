/**
 * A test client that speaks the real peer protocol (docs/protocol.md) to a live node: raw
 * connections for unauthenticated fuzzing, and authenticated connections that pose as a node id
 * that is configured but not running. The handshake is src/cluster/handshake.ts itself, so a
 * test peer is exactly as authenticated as a real node.
 */
import net, { type Socket } from 'node:net';
import { once } from 'node:events';
import { deriveAuthKey, initiateHandshake } from '../../../src/cluster/handshake.js';
import { ByteWriter, FrameType } from '../../../src/cluster/frame.js';
import { EntryBatchEncoder } from '../../../src/cluster/entry-codec.js';
import { encodeOpen } from '../../../src/cluster/replication.js';
import type { FlowEntry } from '../../../src/cluster/flow-entry.js';
import type { ChannelType } from '../../../src/cluster/cluster-options.js';
import { TEST_SECRET } from '../../helpers/cluster.js';

export interface PeerTarget {
  readonly host: string;
  readonly port: number;
  /** The node id that listens there. */
  readonly id: string;
}

/** A plain TCP connection; errors are swallowed (the node is expected to cut us off). */
export async function rawConnect(host: string, port: number, localAddress?: string, timeoutMs = 10_000): Promise<Socket> {
  const s = net.connect({ host, port, ...(localAddress ? { localAddress } : {}) });
  // Rejects on a failed connect (once() does on 'error'), never hangs: bounded tests.
  const timer = setTimeout(() => s.destroy(new Error(`connect to ${host}:${port} timed out`)), timeoutMs);
  try {
    await once(s, 'connect');
  } finally {
    clearTimeout(timer);
  }
  s.on('error', () => undefined);
  return s;
}

/** Connects and completes the mutual handshake as `as` (a configured node id). */
export async function authConnect(
  target: PeerTarget,
  as: string,
  channel: ChannelType,
  opts: { secret?: string; cluster?: string; localAddress?: string } = {},
): Promise<Socket> {
  const s = await rawConnect(target.host, target.port, opts.localAddress);
  try {
    await initiateHandshake(s, {
      authKey: deriveAuthKey(opts.secret ?? TEST_SECRET),
      cluster: opts.cluster ?? 'test',
      selfId: as,
      peerId: target.id,
      channel,
      timeoutMs: 2000,
    });
  } catch (err) {
    s.destroy();
    throw err;
  }
  return s;
}

/** Resolves when the socket is closed (by either side), or after `ms`; true if it closed. */
export function closed(s: Socket, ms: number): Promise<boolean> {
  if (s.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      s.off('close', onClose);
      resolve(false);
    }, ms);
    const onClose = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    s.once('close', onClose);
  });
}

/** Sends `bytes`, half-closes, and waits for the node to close its side (patience: at most `ms`). */
export async function sendAndFinish(s: Socket, bytes: Buffer | readonly Buffer[], ms = 20_000): Promise<boolean> {
  s.resume(); // whatever the node sends back is not the point here
  for (const b of Array.isArray(bytes) ? bytes : [bytes]) if (b.length > 0) s.write(b);
  s.end();
  const ok = await closed(s, ms);
  s.destroy();
  return ok;
}

/** An entry batch frame: ENTRIES with a sequence number, or SNAPSHOT_CHUNK when seq is null. */
export function batchFrame(seq: number | null, entries: readonly FlowEntry[]): Buffer {
  const w = ByteWriter.frame(seq === null ? FrameType.SNAPSHOT_CHUNK : FrameType.ENTRIES, 256);
  if (seq !== null) w.u64(seq);
  const enc = new EntryBatchEncoder(w);
  for (const e of entries) enc.add(e);
  enc.finish();
  return Buffer.from(w.finish());
}

/** A well-formed entry as a peer would replicate it. */
export function entry(service: string, key: string, fields: Partial<FlowEntry> = {}): FlowEntry {
  const now = Date.now();
  return { service, key, primary: 'lb1', backup: 'lb2', backend: null, version: now * 1024, writer: 'lb3', lastActive: now, ended: false, ...fields };
}

/** Binds a UDP socket; rejects on an error (port in use) instead of waiting forever. */
export function bindUdp(socket: import('node:dgram').Socket, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    socket.once('error', onError);
    socket.bind(port, host, () => {
      socket.off('error', onError);
      socket.on('error', () => undefined);
      resolve();
    });
  });
}

/**
 * Plays node `as` on an authenticated control link just long enough to exchange OPENs: the node
 * learns `incarnation` as `as`'s (what its UDP data plane binds datagrams from `as` to) and we
 * learn the node's. Resolves once the node has acted on our OPEN (its RESYNC_BEGIN arrived), then
 * closes the link.
 */
export async function announce(target: PeerTarget, as: string, incarnation: Buffer): Promise<{ theirs: Buffer }> {
  const s = await authConnect(target, as, 'control');
  try {
    let buf = Buffer.alloc(0);
    let theirs: Buffer | null = null;
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no OPEN/RESYNC_BEGIN from ${target.id}`)), 20_000);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 6 && buf.length >= 4 + buf.readUInt32BE(0)) {
          const len = buf.readUInt32BE(0);
          if (buf[5] === FrameType.OPEN) theirs = Buffer.from(buf.subarray(6, 14));
          if (buf[5] === FrameType.RESYNC_BEGIN && theirs !== null) {
            clearTimeout(timer);
            resolve();
          }
          buf = buf.subarray(4 + len);
        }
      });
      s.once('close', () => reject(new Error(`${target.id} closed the control link`)));
    });
    s.write(Buffer.from(encodeOpen(incarnation, true, null, 0)));
    await done;
    return { theirs: theirs! };
  } finally {
    s.destroy();
  }
}
