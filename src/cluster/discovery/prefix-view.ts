/**
 * What a node knows of its cluster's etcd prefix (records.ts for the keys): the valid member
 * records, the config statuses and the pushed config, built from a full read and kept current
 * from watch events. No I/O: the session (etcd-discovery.ts) feeds it, and it reports changes
 * through callbacks. A value that does not decode is refused and reported; the key then counts as
 * absent (a member) or leaves the last good value in force (the config).
 */
import { decodeConfig, decodeMember, decodeStatus, type ConfigDoc, type ConfigStatus, type Keys, type MemberRecord } from './records.js';
import type { RecordKind } from './metrics.js';

/** The parts of an etcd key-value the view reads (etcd3's IKeyValue has them). */
export interface KeyValue {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly mod_revision: string;
}

export interface WatchEvent {
  readonly type: 'Put' | 'Delete';
  readonly kv: KeyValue;
}

export interface PrefixViewOptions {
  readonly keys: Keys;
  readonly cluster: string;
  readonly selfId: string;
  readonly onMembers: (records: ReadonlyMap<string, MemberRecord>) => void;
  readonly onConfig: (doc: ConfigDoc | null) => void;
  readonly onStatuses: (statuses: ReadonlyMap<string, ConfigStatus>) => void;
  readonly onBad: (kind: RecordKind, problem: string) => void;
}

/** What happened to this node's own keys in a batch of events (the session may need to write them again). */
export interface OwnKeys {
  /** undefined: untouched; null: deleted (or made invalid); else what is there now. */
  readonly record: MemberRecord | null | undefined;
  readonly statusDeleted: boolean;
}

export class PrefixView {
  readonly #o: PrefixViewOptions;
  #members = new Map<string, MemberRecord>();
  #statuses = new Map<string, ConfigStatus>();
  /** mod_revision of the config key last reported ('' = none). */
  #configRevision = '';

  constructor(o: PrefixViewOptions) {
    this.#o = o;
  }

  members(): ReadonlyMap<string, MemberRecord> {
    return this.#members;
  }

  statuses(): ReadonlyMap<string, ConfigStatus> {
    return this.#statuses;
  }

  /** A full read of the prefix: replaces the whole view and reports it. */
  load(kvs: readonly KeyValue[]): void {
    const k = this.#o.keys;
    const members = new Map<string, MemberRecord>();
    const statuses = new Map<string, ConfigStatus>();
    let config: KeyValue | null = null;
    for (const kv of kvs) {
      const key = kv.key.toString();
      if (key === k.config) config = kv;
      else if (key.startsWith(k.members)) {
        const r = this.#member(key.slice(k.members.length), kv.value.toString());
        if (r !== null) members.set(r.id, r);
      } else if (key.startsWith(k.statuses)) {
        const st = this.#status(key.slice(k.statuses.length), kv.value.toString());
        if (st !== null) statuses.set(st.node, st);
      }
    }
    this.#members = members;
    this.#statuses = statuses;
    this.#o.onMembers(members);
    this.#o.onStatuses(statuses);
    this.#config(config);
  }

  /** One watch response's events, in order; each kind of change is reported once. */
  apply(events: readonly WatchEvent[]): OwnKeys {
    const k = this.#o.keys;
    let membersChanged = false;
    let statusesChanged = false;
    let record: MemberRecord | null | undefined;
    let statusDeleted = false;
    for (const ev of events) {
      const key = ev.kv.key.toString();
      const put = ev.type === 'Put';
      if (key === k.config) {
        this.#config(put ? ev.kv : null);
      } else if (key.startsWith(k.members)) {
        const id = key.slice(k.members.length);
        const rec = put ? this.#member(id, ev.kv.value.toString()) : null;
        if (id === this.#o.selfId) record = rec;
        if (rec !== null) this.#members.set(id, rec);
        else this.#members.delete(id);
        membersChanged = true;
      } else if (key.startsWith(k.statuses)) {
        const id = key.slice(k.statuses.length);
        const st = put ? this.#status(id, ev.kv.value.toString()) : null;
        if (st !== null) this.#statuses.set(id, st);
        else this.#statuses.delete(id);
        if (!put && id === this.#o.selfId) statusDeleted = true;
        statusesChanged = true;
      }
    }
    if (membersChanged) this.#o.onMembers(this.#members);
    if (statusesChanged) this.#o.onStatuses(this.#statuses);
    return { record, statusDeleted };
  }

  #config(kv: KeyValue | null): void {
    const rev = kv === null ? '' : kv.mod_revision;
    if (rev === this.#configRevision) return;
    this.#configRevision = rev;
    if (kv === null) return this.#o.onConfig(null);
    const d = decodeConfig(kv.value.toString());
    if (!d.ok) return this.#o.onBad('config', d.problem);
    this.#o.onConfig(d.value);
  }

  #member(id: string, text: string): MemberRecord | null {
    const d = decodeMember(id, text, this.#o.cluster);
    if (d.ok) return d.value;
    this.#o.onBad('member', d.problem);
    return null;
  }

  #status(id: string, text: string): ConfigStatus | null {
    const d = decodeStatus(id, text);
    if (d.ok) return d.value;
    this.#o.onBad('status', d.problem);
    return null;
  }
}
