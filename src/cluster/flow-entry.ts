/**
 * One row of the replicated flow table (docs/design.md §3.1). Entries are immutable: every change
 * makes a new object with a higher version, so an entry can be shared between the table, the
 * replication queue and a request in flight without copying.
 */
export interface FlowEntry {
  readonly service: string;
  readonly key: string;
  readonly primary: string;
  /** null only while a single node is alive. */
  readonly backup: string | null;
  /** "host:port" once the acting owner chose it. */
  readonly backend: string | null;
  /** Packed hybrid logical clock (see hlc.ts); merge keeps the highest (version, writer). */
  readonly version: number;
  /** Node id that wrote this version; breaks ties between equal versions. */
  readonly writer: string;
  /** Wall-clock ms of the last activity the writer knew of. */
  readonly lastActive: number;
  /** A tombstone: the flow ended. Kept briefly so that an older live version cannot resurrect it. */
  readonly ended: boolean;
}

/** Total order on versions: (version, writer). Positive when a is newer than b. */
export function compareVersion(a: Pick<FlowEntry, 'version' | 'writer'>, b: Pick<FlowEntry, 'version' | 'writer'>): number {
  if (a.version !== b.version) return a.version > b.version ? 1 : -1;
  if (a.writer === b.writer) return 0;
  return a.writer > b.writer ? 1 : -1;
}
