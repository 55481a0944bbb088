/**
 * A config problem as every part of validation reports it: `<path>: <problem>`, and the error that
 * refuses a config whole with all of them.
 */
import { TandemError, type ErrorCode } from '../errors.js';

export interface ConfigIssue {
  readonly path: string;
  readonly message: string;
}

export class ConfigError extends TandemError {
  readonly issues: readonly ConfigIssue[];
  constructor(code: ErrorCode, issues: readonly ConfigIssue[]) {
    super(code, issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export function formatIssue(issue: ConfigIssue): string {
  return `${issue.path}: ${issue.message}`;
}

/** ['services', 0, 'port'] → "services[0].port"; [] → "(root)". */
export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${p}` : p;
  return out || '(root)';
}
