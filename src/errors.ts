/**
 * One error base for the whole project, in the manner of undici's `UndiciError`: callers branch on
 * the stable `code`, never on the message, which is for humans and may change.
 */
export const ErrorCodes = {
  CONFIG_INVALID: 'TANDEM_CONFIG_INVALID',
  CONFIG_NOT_FOUND: 'TANDEM_CONFIG_NOT_FOUND',
  CONFIG_NOT_YAML: 'TANDEM_CONFIG_NOT_YAML',
  CONFIG_EMPTY: 'TANDEM_CONFIG_EMPTY',
  UNKNOWN_NODE: 'TANDEM_UNKNOWN_NODE',
  NO_ALIVE_NODE: 'TANDEM_NO_ALIVE_NODE',
  FRAME_MALFORMED: 'TANDEM_FRAME_MALFORMED',
  FRAME_TOO_LARGE: 'TANDEM_FRAME_TOO_LARGE',
  AUTH_FAILED: 'TANDEM_AUTH_FAILED',
  PEER_UNAVAILABLE: 'TANDEM_PEER_UNAVAILABLE',
  NO_BACKEND: 'TANDEM_NO_BACKEND',
  BACKEND_FAILED: 'TANDEM_BACKEND_FAILED',
  BACKEND_TIMEOUT: 'TANDEM_BACKEND_TIMEOUT',
  BAD_REQUEST: 'TANDEM_BAD_REQUEST',
  LIMIT_EXCEEDED: 'TANDEM_LIMIT_EXCEEDED',
  FLOW_KEY: 'TANDEM_FLOW_KEY',
  /** A TLS certificate or key that cannot be served (unreadable, unparsable, mismatched, expired). */
  TLS_CERTIFICATE: 'TANDEM_TLS_CERTIFICATE',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class TandemError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TandemError';
    this.code = code;
  }
}

export function isTandemError(err: unknown, code?: ErrorCode): err is TandemError {
  return err instanceof TandemError && (code === undefined || err.code === code);
}
