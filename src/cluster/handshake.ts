/**
 * Mutual challenge–response authentication of a peer connection from the cluster secret
 * (docs/design.md §5; docs/protocol.md, "Handshake"). The secret never crosses the wire:
 *
 *   authKey    = HKDF-SHA256(ikm = secret (UTF-8), salt = "tandem", info = "tandem/auth/v1", 32)
 *   dialer     → HELLO       { magic "TNDM", version, channel, cluster, dialer id, target id, nonceA }
 *   responder  → HELLO_REPLY { responder id, nonceB, proofB = HMAC-SHA256(authKey, "resp" | T) }
 *   dialer     → HELLO_PROOF { proofA = HMAC-SHA256(authKey, "init" | T) }
 *   sessionKey = HKDF-SHA256(ikm = authKey, salt = SHA-256(T), info = "tandem/session/v1", 32)
 *
 * T (transcript) binds everything either side relied on: cluster name, both ids, channel type
 * and both nonces, each length-prefixed so that no two transcripts can share bytes by shifting a
 * boundary. Distinct "init"/"resp" labels stop a reflection (sending a node its own proof back);
 * fresh random nonces on both sides stop replays. The dialer proves itself only after the
 * responder did, so an impostor posing as a node learns nothing it could replay elsewhere.
 * Comparisons use crypto.timingSafeEqual.
 */
import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { ErrorCodes, TandemError, isTandemError } from '../errors.js';
import { CHANNEL_TYPES, type ChannelType } from './cluster-options.js';
import { ByteReader, ByteWriter, FrameDecoder, FrameType, HANDSHAKE_FRAME_TYPES, PROTOCOL_VERSION, type Frame } from './frame.js';

export const HANDSHAKE_MAGIC = Buffer.from('TNDM', 'latin1');
export const NONCE_BYTES = 24;
export const MIN_NONCE_BYTES = 16;
export const MAX_NONCE_BYTES = 32;
export const PROOF_BYTES = 32;
/** Handshake frames are tiny; a peer announcing more before authenticating is garbage. */
export const HANDSHAKE_MAX_FRAME_BYTES = 1024;
const MAX_ID_BYTES = 255;

export type AuthFailureReason =
  | 'garbage'
  | 'oversized'
  | 'bad-hello'
  | 'protocol-version'
  | 'wrong-cluster'
  | 'unknown-node'
  | 'wrong-target'
  | 'bad-proof'
  | 'timeout'
  | 'closed'
  | 'tls'
  | 'busy'
  | 'no-handler';

/** An AUTH_FAILED TandemError with a metric-friendly reason. */
export class HandshakeError extends TandemError {
  readonly reason: AuthFailureReason;
  constructor(reason: AuthFailureReason, message: string, options?: { cause?: unknown }) {
    super(ErrorCodes.AUTH_FAILED, message, options);
    this.name = 'HandshakeError';
    this.reason = reason;
  }
}

/** HKDF-SHA256(secret, salt "tandem", info) — also for other keys derived from the secret. */
export function deriveClusterKey(secret: string | Buffer, info: string, length = 32): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'tandem', info, length));
}

export function deriveAuthKey(secret: string | Buffer): Buffer {
  return deriveClusterKey(secret, 'tandem/auth/v1');
}

export interface Session {
  /** 32 bytes known only to the two ends of this connection; for MACs on data channels. */
  readonly key: Buffer;
}

export interface HandshakeResult {
  readonly peerId: string;
  readonly channel: ChannelType;
  readonly session: Session;
}

export interface Hello {
  readonly version: number;
  readonly channel: ChannelType;
  readonly cluster: string;
  readonly from: string;
  readonly to: string;
  readonly nonce: Buffer;
}

export function encodeHello(h: Omit<Hello, 'version'> & { version?: number }): Buffer {
  const w = ByteWriter.frame(FrameType.HELLO, 128);
  w.bytes(HANDSHAKE_MAGIC);
  w.u8(h.version ?? PROTOCOL_VERSION);
  w.u8(CHANNEL_TYPES.indexOf(h.channel));
  w.str(h.cluster);
  w.str(h.from);
  w.str(h.to);
  w.u8(h.nonce.length);
  w.bytes(h.nonce);
  return w.finish();
}

/** Throws HandshakeError('garbage' | 'bad-hello'). The version is returned, not checked. */
export function decodeHello(payload: Buffer): Hello {
  const r = new ByteReader(payload);
  try {
    const magic = r.bytes(4, 'magic');
    if (!magic.equals(HANDSHAKE_MAGIC)) throw new HandshakeError('garbage', 'bad magic in HELLO');
    const version = r.u8('version');
    const channel = CHANNEL_TYPES[r.u8('channel')];
    const cluster = r.str(MAX_ID_BYTES, 'cluster name');
    const from = r.str(MAX_ID_BYTES, 'dialer id');
    const to = r.str(MAX_ID_BYTES, 'target id');
    const nonce = Buffer.from(r.bytes(r.u8('nonce length'), 'nonce'));
    r.end('HELLO');
    if (channel === undefined) throw new HandshakeError('bad-hello', 'unknown channel type in HELLO');
    if (nonce.length < MIN_NONCE_BYTES || nonce.length > MAX_NONCE_BYTES) throw new HandshakeError('bad-hello', `nonce of ${nonce.length} bytes`);
    return { version, channel, cluster, from, to, nonce };
  } catch (err) {
    if (err instanceof HandshakeError) throw err;
    throw new HandshakeError('bad-hello', `malformed HELLO: ${(err as Error).message}`, { cause: err });
  }
}

export function encodeReply(id: string, nonce: Buffer, proof: Buffer): Buffer {
  const w = ByteWriter.frame(FrameType.HELLO_REPLY, 96);
  w.str(id);
  w.u8(nonce.length);
  w.bytes(nonce);
  w.bytes(proof);
  return w.finish();
}

export function decodeReply(payload: Buffer): { id: string; nonce: Buffer; proof: Buffer } {
  const r = new ByteReader(payload);
  try {
    const id = r.str(MAX_ID_BYTES, 'responder id');
    const nonce = Buffer.from(r.bytes(r.u8('nonce length'), 'nonce'));
    const proof = Buffer.from(r.bytes(PROOF_BYTES, 'proof'));
    r.end('HELLO_REPLY');
    if (nonce.length < MIN_NONCE_BYTES || nonce.length > MAX_NONCE_BYTES) throw new HandshakeError('bad-hello', `nonce of ${nonce.length} bytes`);
    return { id, nonce, proof };
  } catch (err) {
    if (err instanceof HandshakeError) throw err;
    throw new HandshakeError('bad-hello', `malformed HELLO_REPLY: ${(err as Error).message}`, { cause: err });
  }
}

function lp(w: ByteWriter, b: Buffer | string): void {
  const bytes = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
  w.u16(bytes.length);
  w.bytes(bytes);
}

/** The transcript T that both proofs and the session key cover (docs/protocol.md). */
export function transcript(t: { cluster: string; initiator: string; responder: string; channel: ChannelType; nonceA: Buffer; nonceB: Buffer }): Buffer {
  const w = new ByteWriter(160);
  lp(w, 'tandem-handshake');
  w.u8(PROTOCOL_VERSION);
  lp(w, t.cluster);
  lp(w, t.initiator);
  lp(w, t.responder);
  w.u8(CHANNEL_TYPES.indexOf(t.channel));
  lp(w, t.nonceA);
  lp(w, t.nonceB);
  return Buffer.from(w.view());
}

export function computeProof(authKey: Buffer, role: 'init' | 'resp', t: Buffer): Buffer {
  return createHmac('sha256', authKey).update(role, 'latin1').update(t).digest();
}

export function deriveSessionKey(authKey: Buffer, t: Buffer): Buffer {
  const salt = createHash('sha256').update(t).digest();
  return Buffer.from(hkdfSync('sha256', authKey, salt, 'tandem/session/v1', 32));
}

function proofMatches(expected: Buffer, got: Buffer): boolean {
  return got.length === expected.length && timingSafeEqual(expected, got);
}

function asHandshakeError(err: unknown): HandshakeError {
  if (err instanceof HandshakeError) return err;
  if (isTandemError(err, ErrorCodes.FRAME_TOO_LARGE)) return new HandshakeError('oversized', err.message, { cause: err });
  if (isTandemError(err)) return new HandshakeError('garbage', err.message, { cause: err });
  return new HandshakeError('garbage', String((err as Error)?.message ?? err), { cause: err });
}

/**
 * Feed the socket's frames to `step` until it returns true, then stop reading. The socket is read
 * in paused mode ('readable' + read()), not with a 'data' listener: removing the last 'readable'
 * listener puts the stream back to its initial state (readableFlowing null), so the next owner
 * uses it like a fresh socket — a 'data' listener or pipe() starts the flow. Bytes past the last
 * handshake frame are unshifted back, so that owner reads exactly what the peer sent after the
 * handshake.
 */
function drive(socket: Socket, timeoutMs: number, step: (f: Frame) => boolean): Promise<void> {
  const decoder = new FrameDecoder({ maxFrameBytes: HANDSHAKE_MAX_FRAME_BYTES, types: HANDSHAKE_FRAME_TYPES });
  return new Promise<void>((resolve, reject) => {
    let done = false;
    const finish = (err: HandshakeError | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.removeListener('readable', onReadable);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onEnd);
      socket.removeListener('error', onError);
      if (err !== null) {
        reject(err);
        return;
      }
      const rest = decoder.remaining();
      if (rest.length > 0) socket.unshift(rest);
      resolve();
    };
    const onReadable = (): void => {
      try {
        let chunk: Buffer | null;
        while (!done && (chunk = socket.read() as Buffer | null) !== null) {
          decoder.push(chunk);
          for (;;) {
            const f = decoder.next();
            if (f === null) break;
            if (step(f)) return finish(null);
          }
        }
      } catch (err) {
        finish(asHandshakeError(err));
      }
    };
    const onEnd = (): void => finish(new HandshakeError('closed', 'connection closed during the handshake'));
    const onError = (err: Error): void => finish(new HandshakeError('closed', `connection error during the handshake: ${err.message}`, { cause: err }));
    const timer = setTimeout(() => finish(new HandshakeError('timeout', `handshake not completed within ${timeoutMs} ms`)), timeoutMs);
    socket.on('readable', onReadable);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', onError);
  });
}

export interface InitiatorOptions {
  readonly authKey: Buffer;
  readonly cluster: string;
  readonly selfId: string;
  readonly peerId: string;
  readonly channel: ChannelType;
  readonly timeoutMs: number;
}

/** Run the dialer's side on a connected socket. Rejects with HandshakeError. */
export async function initiateHandshake(socket: Socket, o: InitiatorOptions): Promise<HandshakeResult> {
  const nonceA = randomBytes(NONCE_BYTES);
  let session: Session | null = null;
  const done = drive(socket, o.timeoutMs, (f) => {
    if (f.type !== FrameType.HELLO_REPLY) throw new HandshakeError('bad-hello', `expected HELLO_REPLY, got type 0x${f.type.toString(16)}`);
    const reply = decodeReply(f.payload);
    if (reply.id !== o.peerId) throw new HandshakeError('wrong-target', `dialled ${o.peerId} but ${reply.id} answered`);
    const t = transcript({ cluster: o.cluster, initiator: o.selfId, responder: o.peerId, channel: o.channel, nonceA, nonceB: reply.nonce });
    if (!proofMatches(computeProof(o.authKey, 'resp', t), reply.proof)) {
      throw new HandshakeError('bad-proof', `${o.peerId} could not prove the cluster secret (secrets differ?)`);
    }
    const proofFrame = ByteWriter.frame(FrameType.HELLO_PROOF, 40);
    proofFrame.bytes(computeProof(o.authKey, 'init', t));
    socket.write(proofFrame.finish());
    session = { key: deriveSessionKey(o.authKey, t) };
    return true;
  });
  socket.write(encodeHello({ channel: o.channel, cluster: o.cluster, from: o.selfId, to: o.peerId, nonce: nonceA }));
  try {
    await done;
  } catch (err) {
    if (err instanceof HandshakeError && err.reason === 'closed') {
      throw new HandshakeError('closed', `${o.peerId} closed the connection during the handshake (cluster name, node id or protocol version refused: see its log)`, { cause: err });
    }
    throw err;
  }
  return { peerId: o.peerId, channel: o.channel, session: session! };
}

export interface ResponderOptions {
  readonly authKey: Buffer;
  readonly cluster: string;
  readonly selfId: string;
  /** Every configured node id (self included). */
  readonly nodeIds: ReadonlySet<string>;
  readonly timeoutMs: number;
}

/** Run the accepting side on a fresh socket. Rejects with HandshakeError. */
export async function respondHandshake(socket: Socket, o: ResponderOptions): Promise<HandshakeResult> {
  let hello: Hello | null = null;
  let t: Buffer | null = null;
  await drive(socket, o.timeoutMs, (f) => {
    if (hello === null) {
      if (f.type !== FrameType.HELLO) throw new HandshakeError('bad-hello', `expected HELLO, got type 0x${f.type.toString(16)}`);
      const h = decodeHello(f.payload);
      if (h.version !== PROTOCOL_VERSION) throw new HandshakeError('protocol-version', `peer speaks protocol ${h.version}, this node ${PROTOCOL_VERSION}`);
      if (h.cluster !== o.cluster) throw new HandshakeError('wrong-cluster', `HELLO for cluster "${h.cluster}"`);
      if (!o.nodeIds.has(h.from) || h.from === o.selfId) throw new HandshakeError('unknown-node', `HELLO from unknown node "${h.from}"`);
      if (h.to !== o.selfId) throw new HandshakeError('wrong-target', `HELLO for node "${h.to}"`);
      const nonceB = randomBytes(NONCE_BYTES);
      t = transcript({ cluster: o.cluster, initiator: h.from, responder: o.selfId, channel: h.channel, nonceA: h.nonce, nonceB });
      socket.write(encodeReply(o.selfId, nonceB, computeProof(o.authKey, 'resp', t)));
      hello = h;
      return false;
    }
    if (f.type !== FrameType.HELLO_PROOF) throw new HandshakeError('bad-hello', `expected HELLO_PROOF, got type 0x${f.type.toString(16)}`);
    if (!proofMatches(computeProof(o.authKey, 'init', t!), f.payload)) throw new HandshakeError('bad-proof', `"${hello.from}" could not prove the cluster secret`);
    return true;
  });
  const h = hello as Hello | null;
  if (h === null || t === null) throw new HandshakeError('garbage', 'handshake ended early');
  return { peerId: h.from, channel: h.channel, session: { key: deriveSessionKey(o.authKey, t) } };
}
