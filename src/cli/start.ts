/**
 * `tandem start --config FILE --node ID [--host HOST] [--peer-port P] [--admin-port P] [--weight W]`:
 * one node in the foreground. The flags describe a node the file does not list (it joins through
 * cluster.discovery) or override the file's values for this node; they are laid over the file at
 * every reload too. SIGTERM (and SIGINT) drain and exit 0 — first turning not ready and serving on
 * for `cluster.announce.withdrawGraceMs` when a route watchdog announces the node (a second signal
 * cuts that short); SIGHUP reloads the config file, refusing an invalid one whole and keeping the
 * running config.
 */
import { loadConfigFile, ConfigError, formatIssue } from '../config/load.js';
import { applyLayers, type SelfLayer } from '../config/layers.js';
import { TandemNode } from '../node/node.js';
import type { Io } from './validate.js';

/** The node flags as a layer, or a usage problem. */
export function parseSelfFlags(
  id: string,
  flags: { host?: string; peerPort?: string; adminPort?: string; weight?: string },
): SelfLayer | undefined | string {
  const { host, peerPort, adminPort, weight } = flags;
  if (host === undefined && peerPort === undefined && adminPort === undefined && weight === undefined) return undefined;
  const port = (v: string | undefined, name: string): number | undefined | string => {
    if (v === undefined) return undefined;
    const n = Number(v);
    return Number.isInteger(n) && n >= 1 && n <= 65535 ? n : `--${name} must be an integer from 1 to 65535`;
  };
  const p = port(peerPort, 'peer-port');
  const a = port(adminPort, 'admin-port');
  if (typeof p === 'string') return p;
  if (typeof a === 'string') return a;
  let w: number | undefined;
  if (weight !== undefined) {
    w = Number(weight);
    if (!Number.isFinite(w) || w < 0 || w > 1000) return '--weight must be a number from 0 to 1000';
  }
  if (host !== undefined && host.trim() === '') return '--host must not be empty';
  return { id, host, peerPort: p, adminPort: a, weight: w };
}

export async function startCommand(args: { config: string; node: string; logLevel?: string; self?: SelfLayer }, io: Io): Promise<number> {
  let config;
  try {
    config = loadConfigFile(args.config, args.self ? (raw) => applyLayers(raw, { self: args.self }) : undefined);
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const i of err.issues) io.err(formatIssue(i));
      return 1;
    }
    throw err;
  }
  if (!config.cluster.nodes.some((n) => n.id === args.node)) {
    io.err(`tandem: node "${args.node}" is not in cluster.nodes of ${args.config}: give --host HOST (and --peer-port, --admin-port) to start a node the file does not list`);
    return 1;
  }
  let node: TandemNode;
  try {
    node = new TandemNode(config, args.node, { logLevel: args.logLevel, self: args.self });
  } catch (err) {
    io.err(`tandem: ${(err as Error).message}`);
    return 1;
  }
  try {
    await node.start();
  } catch (err) {
    node.logger.fatal({ err }, 'node failed to start');
    await node.stop().catch(() => undefined);
    return 1;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      // A second signal while the node waits for its route to be withdrawn: drain now.
      if (stopping) {
        if (node.endGrace()) node.logger.warn({ signal }, 'withdraw grace cut short');
        return;
      }
      stopping = true;
      node.logger.info({ signal }, 'stopping');
      node.shutdown().then(
        () => resolve(0),
        (err) => {
          node.logger.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      void node.reloadFromFile();
    });
    process.on('uncaughtException', (err) => {
      // One bad input must not take the node down for everyone else: log and go on.
      node.logger.error({ err }, 'uncaught exception');
    });
  });
}
