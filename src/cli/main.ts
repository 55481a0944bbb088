/**
 * The `tandem` command. Each subcommand lives in its own module and is imported lazily, so that
 * `tandem validate` does not load the proxy stack.
 */
import { parseArgs } from 'node:util';
import type { Io } from './validate.js';

const USAGE = `usage:
  tandem demo [--config FILE]                 run a 3-node demo cluster on 127.0.0.1-3 (or write its config to FILE)
  tandem start --config FILE --node ID [--host HOST] [--peer-port P] [--admin-port P] [--weight W]
                                              run one node (SIGTERM drains and exits, SIGHUP reloads);
                                              --host starts a node the file does not list (discovery)
  tandem announce --config FILE --node ID [--metrics HOST:PORT] [--host HOST] [--admin-port P]
                                              the node's route watchdog: runs cluster.announce's up/down on /readyz
  tandem validate --config FILE               check a config: "ok" or one line per problem
  tandem config push --config FILE [--wait MS]
                                              validate FILE and store its services in etcd; every node
                                              validates and reloads them (or refuses them whole)
  tandem config status --config FILE          the pushed revision and which node runs which
  tandem status [--admin HOST:PORT] [--json]  the cluster and its backends
  tandem flow --service S --key K [--admin HOST:PORT] [--json]
                                              where a flow lives and where a new one would go`;

const stdio: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

export async function main(argv: readonly string[], io: Io = stdio): Promise<number> {
  const [command, ...more] = argv;
  // `tandem config push …`: the subcommand is the first word after "config".
  const sub = command === 'config' && more[0] !== undefined && !more[0].startsWith('-') ? more[0] : undefined;
  const rest = sub === undefined ? more : more.slice(1);
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
        host: { type: 'string' },
        'peer-port': { type: 'string' },
        'admin-port': { type: 'string' },
        weight: { type: 'string' },
        wait: { type: 'string' },
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
      const { startCommand, parseSelfFlags } = await import('./start.js');
      const self = parseSelfFlags(args.node, { host: args.host, peerPort: args['peer-port'], adminPort: args['admin-port'], weight: args.weight });
      if (typeof self === 'string') return usageError(io, self);
      return startCommand({ config: args.config, node: args.node, logLevel: args['log-level'], self }, io);
    }
    case 'config': {
      if (sub !== 'push' && sub !== 'status') return usageError(io, 'config needs a subcommand: push or status');
      if (!args.config) return usageError(io, `config ${sub} needs --config FILE`);
      const wait = args.wait === undefined ? 5000 : Number(args.wait);
      if (!Number.isInteger(wait) || wait < 0 || wait > 600_000) return usageError(io, '--wait must be a number of milliseconds from 0 to 600000');
      const { configPushCommand, configStatusCommand } = await import('./config-push.js');
      return sub === 'push' ? configPushCommand({ config: args.config, waitMs: wait }, io) : configStatusCommand({ config: args.config }, io);
    }
    case 'announce': {
      if (!args.config || !args.node) return usageError(io, 'announce needs --config FILE and --node ID');
      const { parseSelfFlags } = await import('./start.js');
      const self = parseSelfFlags(args.node, { host: args.host, peerPort: args['peer-port'], adminPort: args['admin-port'], weight: args.weight });
      if (typeof self === 'string') return usageError(io, self);
      const { announceCommand } = await import('./announce.js');
      return announceCommand({ config: args.config, node: args.node, metrics: args.metrics, logLevel: args['log-level'], self }, io);
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
