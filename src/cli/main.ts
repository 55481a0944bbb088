/**
 * The `tandem` command. Each subcommand lives in its own module and is imported lazily, so that
 * `tandem validate` does not load the proxy stack.
 */
import { parseArgs } from 'node:util';
import type { Io } from './validate.js';

const USAGE = `usage:
  tandem demo [--config FILE]                 run a 3-node demo cluster on 127.0.0.1-3 (or write its config to FILE)
  tandem start --config FILE --node ID        run one node (SIGTERM drains and exits, SIGHUP reloads)
  tandem announce --config FILE --node ID [--metrics HOST:PORT]
                                              the node's route watchdog: runs cluster.announce's up/down on /readyz
  tandem validate --config FILE               check a config: "ok" or one line per problem
  tandem status [--admin HOST:PORT] [--json]  the cluster and its backends
  tandem flow --service S --key K [--admin HOST:PORT] [--json]
                                              where a flow lives and where a new one would go`;

const stdio: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

export async function main(argv: readonly string[], io: Io = stdio): Promise<number> {
  const [command, ...rest] = argv;
  let args;
  try {
    args = parseArgs({
      args: [...rest],
      options: {
        config: { type: 'string', short: 'c' },
        node: { type: 'string', short: 'n' },
        admin: { type: 'string' },
        service: { type: 'string' },
        key: { type: 'string' },
        json: { type: 'boolean' },
        token: { type: 'string' },
        'log-level': { type: 'string' },
        metrics: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    io.err(`tandem: ${(err as Error).message}`);
    io.err(USAGE);
    return 2;
  }
  if (!command || command === 'help' || command === '--help' || command === '-h' || args.help) {
    io.out(USAGE);
    return command ? 0 : 2;
  }
  switch (command) {
    case 'validate': {
      if (!args.config) return usageError(io, 'validate needs --config FILE');
      const { validateCommand } = await import('./validate.js');
      return validateCommand(args.config, io);
    }
    case 'start': {
      if (!args.config || !args.node) return usageError(io, 'start needs --config FILE and --node ID');
      const { startCommand } = await import('./start.js');
      return startCommand({ config: args.config, node: args.node, logLevel: args['log-level'] }, io);
    }
    case 'announce': {
      if (!args.config || !args.node) return usageError(io, 'announce needs --config FILE and --node ID');
      const { announceCommand } = await import('./announce.js');
      return announceCommand({ config: args.config, node: args.node, metrics: args.metrics, logLevel: args['log-level'] }, io);
    }
    case 'status': {
      const { statusCommand } = await import('./status.js');
      return statusCommand({ admin: args.admin, json: args.json }, io);
    }
    case 'flow': {
      const { flowCommand } = await import('./status.js');
      return flowCommand({ admin: args.admin, service: args.service, key: args.key, json: args.json }, io);
    }
    case 'demo': {
      const { demoCommand } = await import('./demo.js');
      return demoCommand({ config: args.config }, io);
    }
    default:
      return usageError(io, `unknown command "${command}"`);
  }
}

function usageError(io: Io, message: string): number {
  io.err(`tandem: ${message}`);
  io.err(USAGE);
  return 2;
}
