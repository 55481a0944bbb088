export { TandemError, ErrorCodes, isTandemError } from './errors.js';
export type { ErrorCode } from './errors.js';
