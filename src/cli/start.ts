/**
 * `tandem start --config FILE --node ID`: one node in the foreground.
 * SIGTERM (and SIGINT) drain and exit 0 — first turning not ready and serving on for
 * `cluster.announce.withdrawGraceMs` when a route watchdog announces the node (a second signal cuts
 * that short); SIGHUP reloads the config file, refusing an invalid one whole and keeping the
 * running config.
 */
import { loadConfigFile, ConfigError, formatIssue } from '../config/load.js';
import { TandemNode } from '../node/node.js';
import type { Io } from './validate.js';

export async function startCommand(args: { config: string; node: string; logLevel?: string }, io: Io): Promise<number> {
  let config;
  try {
    config = loadConfigFile(args.config);
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const i of err.issues) io.err(formatIssue(i));
      return 1;
    }
    throw err;
  }
  let node: TandemNode;
  try {
    node = new TandemNode(config, args.node, { logLevel: args.logLevel });
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
