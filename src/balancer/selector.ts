/**
 * The one interface every backend-selection policy implements (docs/design.md §6, `policy`),
 * modelled on Caddy's reverseproxy `Selector` (modules/caddyhttp/reverseproxy/selectionpolicies.go):
 * a policy sees the candidate list and the request, and answers with one of them. Policies are
 * pure and synchronous: health, draining, slow start and connection counting live elsewhere and
 * reach a policy only through `BackendView`, so a policy can be tested without a socket.
 */

/** What a policy may see of a backend (runtime state is kept elsewhere). */
export interface BackendView {
  /** 'host:port', stable identity; policies key any state they keep by it. */
  readonly address: string;
  /** Effective weight (slow start already applied); 0 = never pick. */
  readonly weight: number;
  /** Active connections/requests through this node. */
  readonly active: number;
  /** healthy && !draining && !ejected && !full */
  readonly available: boolean;
}

/** What a policy may see of the communication being placed. */
export interface PickContext {
  /** The flow key (already validated, see src/flowkey/validate.ts). */
  readonly key: string;
  /** Uniform in [0, 1); injected so that tests are reproducible. */
  readonly random: () => number;
}

export interface Selector {
  readonly name: string;
  /** Index of the chosen backend in `backends`, or -1 when none is available. */
  pick(backends: readonly BackendView[], ctx: PickContext): number;
}

export type SelectorFactory = () => Selector;

/**
 * Whether a policy may return this backend. Non-finite or negative weights count as 0, so that a
 * bad weight from elsewhere can never make a policy divide by zero or loop.
 */
export function isPickable(b: BackendView): boolean {
  return b.available && b.weight > 0 && Number.isFinite(b.weight);
}
