/**
 * `tandem config push --config FILE [--wait MS]`: validate FILE whole (as `tandem validate` does),
 * then store its services in etcd under `<prefix>config` with the next revision (a compare-and-swap
 * on the key, so two pushes at once cannot both claim one revision). Every node validates the
 * services again against its own cluster section and reloads them, or refuses them whole and says
 * why in its status key; this command waits up to --wait ms (default 5000, 0: not at all) for every
 * member to answer and prints what each did.
 *
 * Exit codes: 0 every member runs the new revision; 1 the file is invalid, etcd refused the write,
 * or a member refused the config; 3 some members did not answer within --wait.
 *
 * `tandem config status --config FILE`: the stored revision and what each member runs.
 */
import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { loadConfigFile, ConfigError, formatIssue } from '../config/load.js';
import { rawServices } from '../config/layers.js';
import type { Config, EtcdConfig } from '../config/schema.js';
import { createEtcdClient } from '../cluster/discovery/etcd-client.js';
import { decodeConfig, decodeMember, decodeStatus, encodeConfig, keysFor, type ConfigDoc, type ConfigStatus, type Keys } from '../cluster/discovery/records.js';
import type { Io } from './validate.js';

const CAS_ATTEMPTS = 5;

function load(file: string, io: Io): { config: Config; raw: unknown; etcd: EtcdConfig } | null {
  let raw: unknown = null;
  let config: Config;
  try {
    config = loadConfigFile(file, (r) => (raw = r));
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const i of err.issues) io.err(formatIssue(i));
      return null;
    }
    throw err;
  }
  const etcd = config.cluster.discovery?.etcd;
  if (etcd === undefined) {
    io.err('cluster.discovery.etcd: is required to push a config (where is etcd?)');
    return null;
  }
  return { config, raw, etcd };
}

function who(file: string): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    /* no passwd entry */
  }
  return `${user}@${hostname()} ${resolve(file)}`;
}

async function readDoc(client: Etcd3, keys: Keys): Promise<{ doc: ConfigDoc | null; modRevision: string }> {
  const r = await client.get(keys.config).exec();
  const kv = r.kvs[0];
  if (kv === undefined) return { doc: null, modRevision: '0' };
  const d = decodeConfig(kv.value.toString());
  return { doc: d.ok ? d.value : null, modRevision: kv.mod_revision };
}

/** The member ids in etcd and their config statuses. */
async function readMembers(client: Etcd3, keys: Keys, cluster: string): Promise<{ members: string[]; statuses: Map<string, ConfigStatus> }> {
  const [m, s] = await Promise.all([client.getAll().prefix(keys.members).exec(), client.getAll().prefix(keys.statuses).exec()]);
  const members: string[] = [];
  for (const kv of m.kvs) {
    const id = kv.key.toString().slice(keys.members.length);
    if (decodeMember(id, kv.value.toString(), cluster).ok) members.push(id);
  }
  const statuses = new Map<string, ConfigStatus>();
  for (const kv of s.kvs) {
    const id = kv.key.toString().slice(keys.statuses.length);
    const d = decodeStatus(id, kv.value.toString());
    if (d.ok) statuses.set(id, d.value);
  }
  members.sort(new Intl.Collator('en', { numeric: true }).compare);
  return { members, statuses };
}

export async function configPushCommand(args: { config: string; waitMs: number }, io: Io): Promise<number> {
  const loaded = load(args.config, io);
  if (loaded === null) return 1;
  const { config, raw, etcd } = loaded;
  const keys = keysFor(etcd.prefix);
  const services = rawServices(raw);
  const client = await createEtcdClient(etcd);
  try {
    let revision = 0;
    for (let attempt = 0; ; attempt++) {
      const cur = await readDoc(client, keys);
      revision = (cur.doc?.revision ?? 0) + 1;
      const doc: ConfigDoc = { revision, services, pushedAt: new Date().toISOString(), by: who(args.config) };
      const r = await client.if(keys.config, 'Mod', '==', cur.modRevision).then(client.put(keys.config).value(encodeConfig(doc))).commit();
      if (r.succeeded) break;
      if (attempt + 1 >= CAS_ATTEMPTS) {
        io.err(`tandem: ${keys.config} keeps changing under this push (${CAS_ATTEMPTS} attempts); try again`);
        return 1;
      }
    }
    io.out(`pushed revision ${revision}: ${services.length} services of ${args.config} (cluster ${config.cluster.name}, ${keys.config})`);
    if (args.waitMs === 0) return 0;
    return await waitForNodes(client, keys, config.cluster.name, revision, args.waitMs, io);
  } catch (err) {
    io.err(`tandem: etcd at ${etcd.endpoints.join(', ')}: ${(err as Error).message}`);
    return 1;
  } finally {
    client.close();
  }
}

async function waitForNodes(client: Etcd3, keys: Keys, cluster: string, revision: number, waitMs: number, io: Io): Promise<number> {
  const deadline = Date.now() + waitMs;
  let view = await readMembers(client, keys, cluster);
  const answered = (s: ConfigStatus | undefined): boolean => s !== undefined && (s.applied === revision || s.refused?.revision === revision);
  while (Date.now() < deadline && !view.members.every((id) => answered(view.statuses.get(id)))) {
    await new Promise((r) => setTimeout(r, 100));
    view = await readMembers(client, keys, cluster);
  }
  let refused = 0;
  let silent = 0;
  for (const id of view.members) {
    const s = view.statuses.get(id);
    if (s?.applied === revision) io.out(`${id}: runs revision ${revision}`);
    else if (s?.refused?.revision === revision) {
      refused++;
      io.err(`${id}: refused revision ${revision}; it keeps ${s.applied === null ? 'the services of its file' : `revision ${s.applied}`}:`);
      for (const p of s.refused.problems) io.err(`  ${p}`);
    } else {
      silent++;
      io.err(`${id}: no answer within ${waitMs} ms (runs ${s?.applied ? `revision ${s.applied}` : 'the services of its file'})`);
    }
  }
  if (view.members.length === 0) io.err('no node is registered in etcd: the config applies as nodes start');
  return refused > 0 ? 1 : silent > 0 ? 3 : 0;
}

export async function configStatusCommand(args: { config: string }, io: Io): Promise<number> {
  const loaded = load(args.config, io);
  if (loaded === null) return 1;
  const { config, etcd } = loaded;
  const keys = keysFor(etcd.prefix);
  const client = await createEtcdClient(etcd);
  try {
    const { doc } = await readDoc(client, keys);
    io.out(doc === null ? `no pushed config under ${keys.config}: nodes run the services of their files` : `revision ${doc.revision}: ${doc.services.length} services, pushed ${doc.pushedAt} by ${doc.by}`);
    const view = await readMembers(client, keys, config.cluster.name);
    for (const id of view.members) {
      const s = view.statuses.get(id);
      const runs = s?.applied ? `revision ${s.applied}` : 'the services of its file';
      io.out(`${id}: runs ${runs}${s?.refused ? `; refused revision ${s.refused.revision}: ${s.refused.problems.join('; ')}` : ''}`);
    }
    return 0;
  } catch (err) {
    io.err(`tandem: etcd at ${etcd.endpoints.join(', ')}: ${(err as Error).message}`);
    return 1;
  } finally {
    client.close();
  }
}
