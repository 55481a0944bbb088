import { loadConfigFile, ConfigError, formatIssue } from '../config/load.js';

export interface Io {
  out(line: string): void;
  err(line: string): void;
}

/** `tandem validate --config FILE`: "ok" and 0, or one `<path>: <problem>` line per problem and 1. */
export function validateCommand(file: string, io: Io): number {
  try {
    loadConfigFile(file);
    io.out('ok');
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const issue of err.issues) io.err(formatIssue(issue));
      return 1;
    }
    throw err;
  }
}
