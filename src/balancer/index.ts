/**
 * Backend selection (docs/design.md §6, `policy`). Importing this module registers the built-in
 * policies; use createSelector(name) for one selector per service.
 */
import { registerPolicy } from './registry.js';
import { RoundRobinSelector } from './round-robin.js';
import { LeastConnectionsSelector } from './least-connections.js';
import { P2cSelector } from './p2c.js';
import { ConsistentHashSelector } from './consistent-hash.js';
import { RandomSelector } from './random.js';

export type { BackendView, PickContext, Selector, SelectorFactory } from './selector.js';
export { isPickable } from './selector.js';
export { registerPolicy, createSelector, policyNames, isPolicyName } from './registry.js';
export { RoundRobinSelector } from './round-robin.js';
export { LeastConnectionsSelector } from './least-connections.js';
export { P2cSelector } from './p2c.js';
export { ConsistentHashSelector } from './consistent-hash.js';
export type { ConsistentHashOptions } from './consistent-hash.js';
export { RandomSelector } from './random.js';
export { DEFAULT_TABLE_SIZE } from './maglev.js';

/** The built-in policies, in the order the config documentation lists them. */
export const BUILTIN_POLICIES = ['round-robin', 'least-connections', 'p2c', 'consistent-hash', 'random'] as const;
export type BuiltinPolicy = (typeof BUILTIN_POLICIES)[number];

registerPolicy('round-robin', () => new RoundRobinSelector());
registerPolicy('least-connections', () => new LeastConnectionsSelector());
registerPolicy('p2c', () => new P2cSelector());
registerPolicy('consistent-hash', () => new ConsistentHashSelector());
registerPolicy('random', () => new RandomSelector());
