/**
 * Where a node keeps what must outlive its process (`cluster.stateDir`). Nodes may share one
 * file system (several nodes on one machine, a shared volume), so each node has its own
 * subdirectory named by its id; node ids are limited to letters, digits, ".", "_" and "-", and
 * "." / ".." are refused here, so the name never leaves `stateDir`.
 */
import { join } from 'node:path';
import type { ClusterConfig } from './schema.js';

/** The node's own state directory, or null when the config sets no `cluster.stateDir`. */
export function nodeStateDir(cluster: Pick<ClusterConfig, 'stateDir'>, nodeId: string): string | null {
  if (cluster.stateDir === null) return null;
  if (nodeId === '.' || nodeId === '..' || /[/\\]/.test(nodeId)) throw new RangeError(`node id "${nodeId}" cannot name a directory`);
  return join(cluster.stateDir, nodeId);
}
