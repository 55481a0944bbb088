/**
 * `tandem announce --config FILE --node ID [--metrics HOST:PORT] [--host HOST] [--admin-port P]`:
 * the route watchdog of one node (src/announce, docs/deploy-ecmp.md), a process of its own beside
 * `tandem start`. `--host` and `--admin-port` name a node the file does not list, as for `start`.
 * SIGTERM and SIGINT run `down` once more and exit (no watchdog, no announcement: nothing would
 * withdraw the route if the node died); SIGHUP re-reads the announce settings, refusing an invalid
 * file whole. `--metrics` serves the watchdog's counters at /metrics and its state at /status.
 */
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { loadConfigFile, ConfigError, formatIssue } from '../config/load.js';
import { parseHostPort } from '../config/address.js';
import type { Config } from '../config/schema.js';
import { applyLayers, type SelfLayer } from '../config/layers.js';
import { AdminServer } from '../admin/server.js';
import { Watchdog, type WatchdogTarget } from '../announce/watchdog.js';
import type { Io } from './validate.js';

export interface AnnounceArgs {
  readonly config: string;
  readonly node: string;
  readonly metrics?: string;
  readonly logLevel?: string;
  /** The node's own address flags, laid over the file as `tandem start` does. */
  readonly self?: SelfLayer;
}

function layer(args: AnnounceArgs): ((raw: unknown) => unknown) | undefined {
  const self = args.self;
  return self ? (raw) => applyLayers(raw, { self }) : undefined;
}

function targetOf(config: Config, nodeId: string): WatchdogTarget | null {
  const n = config.cluster.nodes.find((x) => x.id === nodeId);
  if (!n) return null;
  const vips = [...new Set(config.services.flatMap((s) => (s.vip === undefined ? [] : [s.vip])))];
  return { node: n.id, host: n.host, adminPort: n.adminPort, vips };
}

export async function announceCommand(args: AnnounceArgs, io: Io): Promise<number> {
  let config: Config;
  try {
    config = loadConfigFile(args.config, layer(args));
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const i of err.issues) io.err(formatIssue(i));
      return 1;
    }
    throw err;
  }
  const target = targetOf(config, args.node);
  if (!target) {
    io.err(`tandem: node "${args.node}" is not in the config (nodes: ${config.cluster.nodes.map((n) => n.id).join(', ')})`);
    return 1;
  }
  const announce = config.cluster.announce;
  if (!announce) {
    io.err(`tandem: ${args.config} sets no cluster.announce (the up and down commands)`);
    return 1;
  }
  const metricsAt = args.metrics === undefined ? null : parseHostPort(args.metrics);
  if (args.metrics !== undefined && !metricsAt) {
    io.err(`tandem: --metrics "${args.metrics}" is not HOST:PORT`);
    return 1;
  }
  const logger = pino({ level: args.logLevel ?? config.cluster.logLevel, base: { node: args.node, component: 'announce' } });
  const registry = new Registry();
  const watchdog = new Watchdog(target, announce, { logger, registry });
  let server: AdminServer | null = null;
  if (metricsAt) {
    server = new AdminServer({ host: metricsAt.host, port: metricsAt.port, token: null, logger });
    server.get('/metrics', async () => ({ status: 200, text: await registry.metrics(), contentType: registry.contentType }));
    server.get('/status', () => ({ status: 200, json: watchdog.status() }));
    try {
      await server.start();
    } catch (err) {
      io.err(`tandem: cannot listen on ${args.metrics}: ${(err as Error).message}`);
      return 1;
    }
  }
  watchdog.start();
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'stopping: withdrawing the route');
      void watchdog.stop(true).then(async (r) => {
        if (r && !r.ok) logger.error({ code: r.code, timedOut: r.timedOut, output: r.output }, 'down command failed on exit');
        await server?.stop();
        resolve(r && !r.ok ? 1 : 0);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      try {
        const next = loadConfigFile(args.config, layer(args)).cluster.announce;
        if (!next) throw new Error('cluster.announce is no longer set: keeping the running settings');
        watchdog.update(next);
        logger.info('announce settings reloaded');
      } catch (err) {
        const problems = err instanceof ConfigError ? err.issues.map(formatIssue) : [(err as Error).message];
        logger.error({ problems }, 'reload refused: the running settings stay');
      }
    });
    process.on('uncaughtException', (err) => {
      // The watchdog is what withdraws a dead node: it must outlive a bug in one check.
      logger.error({ err }, 'uncaught exception');
    });
  });
}
