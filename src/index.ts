/**
 * tandem's public API, for embedding a node or reusing its pure parts. The CLI (`bin/tandem.js`)
 * is built on the same exports.
 */
export { TandemError, ErrorCodes, isTandemError } from './errors.js';
export type { ErrorCode } from './errors.js';

export { loadConfigFile, parseConfigText, validateConfig, ConfigError, formatIssue } from './config/load.js';
export type { ConfigIssue } from './config/load.js';
export type { Config, ClusterConfig, NodeConfig, ServiceConfig, BackendConfig, HealthCheckConfig, Protocol, PolicyName } from './config/schema.js';

export { TandemNode } from './node/node.js';
export type { NodeOptions } from './node/node.js';
export type { NodeEvent, NodeEventKind } from './node/events.js';

export { Rendezvous, deriveRendezvousKey } from './cluster/rendezvous.js';
export type { RendezvousNode, NodeScore } from './cluster/rendezvous.js';
export { FlowTable } from './cluster/flow-table.js';
export type { FlowTableLimits, FlowTableOptions } from './cluster/flow-table.js';
export { Hlc } from './cluster/hlc.js';
export { reprotect, reprotectAll } from './cluster/reprotect.js';
export type { FlowEntry } from './cluster/flow-entry.js';
export { compareVersion } from './cluster/flow-entry.js';
export { FlowRouter } from './cluster/router.js';
export type { Hop, RouterDeps } from './cluster/router.js';
export { Cluster } from './cluster/cluster.js';
export type { PeerState } from './cluster/cluster-options.js';

export { createSelector, registerPolicy, policyNames } from './balancer/index.js';
export type { Selector, BackendView, PickContext, SelectorFactory } from './balancer/index.js';
export { UpstreamPool, BackendState } from './upstream/pool.js';
export { HealthChecker } from './upstream/health.js';
export { HealthMetrics } from './upstream/health-metrics.js';

export { parseFlowKeySpec, httpFlowKey, tcpFlowKey, udpFlowKey, quicDestinationCid } from './flowkey/index.js';
export type { FlowKeySpec } from './flowkey/index.js';
