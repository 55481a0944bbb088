/**
 * Policy names to selector factories. Each service asks for its own selector instance, because
 * some policies keep per-service state (round-robin positions, a Maglev table). Importing
 * src/balancer/index.ts registers the built-in policies; register extra ones before config load.
 */
import { TandemError, ErrorCodes } from '../errors.js';
import type { Selector, SelectorFactory } from './selector.js';

const factories = new Map<string, SelectorFactory>();

/** Adds a policy. Names are unique: registering one twice is a programming error and throws. */
export function registerPolicy(name: string, factory: SelectorFactory): void {
  if (typeof name !== 'string' || !/^[a-z0-9][a-z0-9-]*$/.test(name)) {
    throw new TandemError(ErrorCodes.CONFIG_INVALID, `policy name ${JSON.stringify(name)} must be lower-case letters, digits and '-'`);
  }
  if (factories.has(name)) {
    throw new TandemError(ErrorCodes.CONFIG_INVALID, `policy "${name}" is already registered`);
  }
  factories.set(name, factory);
}

/** A fresh selector for `name`; throws TandemError(CONFIG_INVALID) naming the known policies. */
export function createSelector(name: string): Selector {
  const factory = factories.get(name);
  if (!factory) {
    throw new TandemError(
      ErrorCodes.CONFIG_INVALID,
      `unknown policy ${JSON.stringify(name)}; expected one of ${policyNames().join(', ')}`,
    );
  }
  return factory();
}

/** Registered policy names, in registration order. */
export function policyNames(): string[] {
  return [...factories.keys()];
}

/** Whether `name` is a registered policy. */
export function isPolicyName(name: string): boolean {
  return factories.has(name);
}
