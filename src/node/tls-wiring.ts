/**
 * The node's TLS and ACME parts (docs/tls.md): the cluster's session-ticket keys, this node's own,
 * the ACME manager with its HTTP-01 listeners, and the TlsContext the http services get. Made
 * once by the composition root (node.ts), applied at start and at every reload.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config, NodeConfig } from '../config/schema.js';
import type { Cluster } from '../cluster/cluster.js';
import type { TlsContext } from '../proxy/context.js';
import { TicketKeyShare } from '../cluster/ticket-key-share.js';
import { LocalEpochSecrets } from '../tls/ticket-keys.js';
import { AcmeManager } from '../acme/manager.js';
import { ChallengeServer } from '../acme/challenge-server.js';

export interface NodeTlsOptions {
  readonly plane: Cluster;
  readonly config: Config;
  readonly self: NodeConfig;
  readonly logger: Logger;
  readonly registry: Registry;
}

export class NodeTls {
  /** The cluster's TLS session-ticket keys, for services with `sessionTickets: cluster`. */
  readonly ticketKeys: TicketKeyShare;
  /** `sessionTickets: node`: this node's own ticket-key epochs, never shared. */
  readonly localTicketKeys = new LocalEpochSecrets();
  /** ACME certificates for the whole tier (docs/tls.md, "ACME"); the HTTP engine calls acme.challengeResponse(path). */
  readonly acme: AcmeManager;
  /** What an http service with `tls:` gets from its node. */
  readonly context: TlsContext;
  readonly #host: string;
  readonly #logger: Logger;
  readonly #challengeServers = new Map<number, ChallengeServer>();

  constructor(o: NodeTlsOptions) {
    const { cluster } = o.config;
    this.#host = o.self.host;
    this.#logger = o.logger;
    // Always receiving; it makes and sends keys only once a service needs them (applyTicketKeys).
    this.ticketKeys = new TicketKeyShare({
      plane: o.plane,
      clusterName: cluster.name,
      secret: cluster.secret,
      logger: o.logger.child({ component: 'tls-tickets' }),
      registry: o.registry,
    });
    // Loads the certificates kept in the state directory now, before any peer is reachable.
    this.acme = new AcmeManager({
      plane: o.plane,
      clusterName: cluster.name,
      secret: cluster.secret,
      stateDir: cluster.stateDir ?? null,
      logger: o.logger.child({ component: 'acme' }),
      registry: o.registry,
    });
    const acme = this.acme;
    this.context = {
      clusterName: cluster.name,
      clusterTickets: this.ticketKeys,
      nodeTickets: this.localTicketKeys,
      acme: { pemFor: (s) => acme.pemFor(s), attach: (s, store) => acme.attach(s, store), detach: (store) => acme.detach(store), challengeResponse: (path) => acme.challengeResponse(path) },
    };
  }

  /** Cluster ticket keys are made and sent only while some service uses them (docs/protocol.md §10). */
  applyTicketKeys(config: Config): void {
    if (config.services.some((s) => s.tls?.sessionTickets === 'cluster')) this.ticketKeys.enable();
    if (config.services.some((s) => s.tls?.sessionTickets === 'node')) this.localTicketKeys.start();
  }

  /**
   * ACME certificates, and an HTTP-01 listener on each challenge port where no http service of
   * this node listens (an http service answers challenges itself, docs/tls.md "ACME").
   */
  async applyAcme(config: Config): Promise<void> {
    await this.acme.apply(config);
    const httpPorts = new Set(config.services.filter((s) => s.protocol === 'http' && !s.tls).map((s) => s.port));
    const want = new Set(this.acme.challengePorts().filter((p) => !httpPorts.has(p)));
    for (const [port, c] of this.#challengeServers) {
      if (want.has(port)) continue;
      await c.close();
      this.#challengeServers.delete(port);
    }
    for (const port of want) {
      if (this.#challengeServers.has(port)) continue;
      const c = new ChallengeServer((path) => this.acme.challengeResponse(path));
      try {
        await c.listen(this.#host, port);
        this.#challengeServers.set(port, c);
      } catch (err) {
        this.#logger.error({ port, err: (err as Error).message }, 'cannot listen for ACME HTTP-01 challenges');
      }
    }
  }

  async stop(): Promise<void> {
    this.ticketKeys.stop();
    this.localTicketKeys.stop();
    this.acme.stop();
    for (const c of this.#challengeServers.values()) await c.close();
    this.#challengeServers.clear();
  }
}
