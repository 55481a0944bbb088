/**
 * What tandem keeps in etcd, under the cluster's prefix (docs/operations.md, "Membership through
 * etcd"), and the checks every value passes before a node uses it. Values are JSON; anything that
 * does not parse or does not match is refused whole, counted and logged by the caller: whoever can
 * write to the prefix must not be able to crash a node or smuggle a malformed member in.
 *
 *   <prefix>members/<id>  one per running node, under the node's lease: where it listens, its
 *                         weight and its phase (joining → serving → leaving)
 *   <prefix>config        the services part pushed by `tandem config push`, with its revision
 *   <prefix>status/<id>   per node, under its lease: the config revision it runs, or why it
 *                         refused the last one
 */
import { z } from 'zod';

/** Bumped on an incompatible change of any value below; a reader refuses other formats. */
export const RECORD_FORMAT = 1;

export type MemberPhase = 'joining' | 'serving' | 'leaving';
export const MEMBER_PHASES: readonly MemberPhase[] = ['joining', 'serving', 'leaving'];

export interface MemberRecord {
  readonly id: string;
  readonly cluster: string;
  readonly host: string;
  readonly peerPort: number;
  readonly adminPort: number;
  readonly weight: number;
  /** joining: linked and syncing, not yet ranked; serving: ranked; leaving: draining, not ranked. */
  readonly phase: MemberPhase;
  /** Random per process start: tells a restarted node from the one before it. */
  readonly incarnation: string;
  /** Wall-clock ms when the process started. */
  readonly startedAt: number;
  /** tandem's version (package.json). */
  readonly version: string;
}

export interface ConfigDoc {
  /** 1, 2, 3, … one per push (compare-and-swap on the key). */
  readonly revision: number;
  /** The raw `services` list, validated again by every node against its own cluster section. */
  readonly services: readonly unknown[];
  readonly pushedAt: string;
  /** Who pushed: user@host and the file. */
  readonly by: string;
}

export interface ConfigStatus {
  readonly node: string;
  /** The pushed revision this node runs; null while it runs its file's services. */
  readonly applied: number | null;
  /** The last pushed revision this node refused, and why (`<path>: <problem>` lines). */
  readonly refused: { readonly revision: number; readonly problems: readonly string[] } | null;
  readonly at: string;
}

export interface Keys {
  readonly prefix: string;
  readonly members: string;
  readonly config: string;
  readonly statuses: string;
  member(id: string): string;
  status(id: string): string;
}

export function keysFor(prefix: string): Keys {
  const p = prefix.endsWith('/') ? prefix : `${prefix}/`;
  return {
    prefix: p,
    members: `${p}members/`,
    config: `${p}config`,
    statuses: `${p}status/`,
    member: (id) => `${p}members/${id}`,
    status: (id) => `${p}status/${id}`,
  };
}

export type Decoded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: string };

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const port = z.number().int().min(1).max(65535);

const memberSchema = z
  .object({
    format: z.literal(RECORD_FORMAT),
    id: z.string().regex(ID),
    cluster: z.string().min(1).max(255),
    host: z.string().min(1).max(255),
    peerPort: port,
    adminPort: port,
    weight: z.number().min(0).max(1000),
    phase: z.enum(['joining', 'serving', 'leaving']),
    incarnation: z.string().regex(/^[0-9a-f]{8,64}$/),
    startedAt: z.number().nonnegative(),
    version: z.string().max(64),
  })
  .strict();

const configSchema = z
  .object({
    format: z.literal(RECORD_FORMAT),
    revision: z.number().int().positive(),
    services: z.array(z.unknown()),
    pushedAt: z.string().max(64),
    by: z.string().max(1024),
  })
  .strict();

const statusSchema = z
  .object({
    format: z.literal(RECORD_FORMAT),
    node: z.string().regex(ID),
    applied: z.number().int().positive().nullable(),
    refused: z.object({ revision: z.number().int().positive(), problems: z.array(z.string().max(4096)).max(1000) }).strict().nullable(),
    at: z.string().max(64),
  })
  .strict();

/** Values larger than this are refused unread: a member record is ~250 bytes, a config a few KiB. */
export const MAX_VALUE_BYTES = 1024 * 1024;

function parse<T>(schema: z.ZodType<T>, text: string, what: string): Decoded<T> {
  if (text.length > MAX_VALUE_BYTES) return { ok: false, problem: `${what} larger than ${MAX_VALUE_BYTES} bytes` };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, problem: `${what} is not JSON` };
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    return { ok: false, problem: `${what}: ${i.path.join('.') || '(root)'}: ${i.message}` };
  }
  return { ok: true, value: r.data };
}

export function encodeMember(r: MemberRecord): string {
  return JSON.stringify({ format: RECORD_FORMAT, ...r });
}

/** The record under `<prefix>members/<keyId>`; its id must be the key's. */
export function decodeMember(keyId: string, text: string, cluster: string): Decoded<MemberRecord> {
  const d = parse(memberSchema, text, `member record ${JSON.stringify(keyId)}`);
  if (!d.ok) return d;
  const { format: _format, ...r } = d.value;
  if (r.id !== keyId) return { ok: false, problem: `member record under "${keyId}" names node "${r.id}"` };
  if (r.cluster !== cluster) return { ok: false, problem: `member record "${keyId}" is for cluster "${r.cluster}", not "${cluster}"` };
  return { ok: true, value: r };
}

export function encodeConfig(d: ConfigDoc): string {
  return JSON.stringify({ format: RECORD_FORMAT, ...d });
}

export function decodeConfig(text: string): Decoded<ConfigDoc> {
  const d = parse(configSchema, text, 'pushed config');
  if (!d.ok) return d;
  const { format: _format, ...doc } = d.value;
  return { ok: true, value: doc };
}

export function encodeStatus(s: ConfigStatus): string {
  return JSON.stringify({ format: RECORD_FORMAT, ...s });
}

export function decodeStatus(keyId: string, text: string): Decoded<ConfigStatus> {
  const d = parse(statusSchema, text, `config status ${JSON.stringify(keyId)}`);
  if (!d.ok) return d;
  const { format: _format, ...s } = d.value;
  if (s.node !== keyId) return { ok: false, problem: `config status under "${keyId}" names node "${s.node}"` };
  return { ok: true, value: s };
}
