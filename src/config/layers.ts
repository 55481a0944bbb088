/**
 * What a node lays over its config file before validating it (load.ts, `RawTransform`):
 *   - `self`: `tandem start --node ID --host HOST [--peer-port] [--admin-port] [--weight]`, a node
 *     the file does not list (or whose listed values the flags override);
 *   - `services`: the services part pushed through etcd (`tandem config push`), replacing the
 *     file's.
 * The result is validated whole like any file, so a layer can never produce a config that the
 * file alone could not have been: the same schema, the same cross-checks, the same
 * `<path>: <problem>` lines.
 */

/** A node given on the command line. Unset fields keep the file's value or the schema default. */
export interface SelfLayer {
  readonly id: string;
  readonly host?: string;
  readonly peerPort?: number;
  readonly adminPort?: number;
  readonly weight?: number;
}

export interface ConfigLayers {
  readonly self?: SelfLayer;
  /** The raw (unvalidated) `services` list to use instead of the file's. */
  readonly services?: unknown;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** A transformed copy of the parsed document; the input is not modified. */
export function applyLayers(raw: unknown, layers: ConfigLayers): unknown {
  if (!isObj(raw)) return raw;
  const out: Obj = { ...raw };
  if (layers.services !== undefined) out.services = structuredClone(layers.services);
  const self = layers.self;
  if (self !== undefined && isObj(raw.cluster)) {
    const cluster: Obj = { ...raw.cluster };
    const nodes = Array.isArray(cluster.nodes) ? [...(cluster.nodes as unknown[])] : [];
    const given: Obj = {};
    if (self.host !== undefined) given.host = self.host;
    if (self.peerPort !== undefined) given.peerPort = self.peerPort;
    if (self.adminPort !== undefined) given.adminPort = self.adminPort;
    if (self.weight !== undefined) given.weight = self.weight;
    const i = nodes.findIndex((n) => isObj(n) && n.id === self.id);
    if (i >= 0) nodes[i] = { ...(nodes[i] as Obj), ...given };
    else if (self.host !== undefined) nodes.push({ id: self.id, ...given });
    cluster.nodes = nodes;
    out.cluster = cluster;
  }
  return out;
}

/** The raw services of a parsed document (what `tandem config push` stores). */
export function rawServices(raw: unknown): unknown[] {
  return isObj(raw) && Array.isArray(raw.services) ? (raw.services as unknown[]) : [];
}

/**
 * The config with another member list (the node's live member set: the file's nodes, self and the
 * nodes found through discovery). Everything else is shared with `config`; the result is frozen.
 */
export function withNodes<C extends { readonly cluster: { readonly nodes: readonly N[] } }, N>(config: C, nodes: readonly N[]): C {
  if (config.cluster.nodes === nodes) return config;
  return Object.freeze({ ...config, cluster: Object.freeze({ ...config.cluster, nodes: Object.freeze([...nodes]) }) });
}
