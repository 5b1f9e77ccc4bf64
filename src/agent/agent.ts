/**
 * The agent daemon's lifecycle: data dir lock and node ID, gossip membership, the server role (or,
 * on a client, the RPC path to the servers gossip finds), the HTTP API, and registering its own
 * node in the catalog. Stopping reverses it; a restarted agent resumes from its data dir.
 *
 * Joining: `-join` (start_join) must succeed for the agent to start, as in Consul; `-retry-join`
 * keeps trying every `retry_interval` in the background. Both name gossip addresses, with this
 * agent's gossip port as the default port.
 */

import type { Logger } from 'pino';
import type { CatalogBackend } from './backend.ts';
import type { ResolvedConfig } from './config/load.ts';
import { lockDataDir, resolveNodeId, writePidFile } from './data-dir.ts';
import type { Member } from './gossip/core/types.ts';
import { Membership } from './gossip/membership.ts';
import { PeerSnapshotWriter, readPeerSnapshot } from './gossip/peer-snapshot.ts';
import { agentTags, asServer } from './gossip/tags.ts';
import { UserEvents } from './gossip/user-events.ts';
import { LocalAgent } from './local/local-agent.ts';
import { RemoteCatalog } from './remote-catalog.ts';
import { RpcClient } from './rpc/client.ts';
import type { CatalogServer } from './server/server.ts';

/** Consul's server RPC port, assumed when an address names none. */
const DEFAULT_SERVER_PORT = 8300;

/** "host", "host:port", "[v6]:port" → "host:port" with the server port as default. */
export function serverAddress(addr: string, defaultPort = DEFAULT_SERVER_PORT): string {
  if (/^\[.*\]:\d+$/.test(addr) || /^[^:]+:\d+$/.test(addr)) return addr;
  if (addr.includes(':') && !addr.startsWith('[')) return `[${addr}]:${defaultPort}`;
  return `${addr}:${defaultPort}`;
}

export interface AgentInit {
  config: ResolvedConfig;
  logger: Logger;
  /** Loads the configuration again from the same sources, for `/v1/agent/reload` and SIGHUP. */
  reloadConfig?: () => Promise<{ config: ResolvedConfig; warnings: string[] }>;
}

export class Agent {
  readonly config: ResolvedConfig;
  readonly logger: Logger;
  readonly nodeId: string;
  readonly catalog: CatalogBackend;
  readonly server: CatalogServer | undefined;
  /** The agent's own services and checks, metrics, leave and reload (`/v1/agent/*`). */
  readonly local: LocalAgent;
  readonly startedAt = Date.now();
  /** Gossip membership: who is in the cluster, and how failures and events spread. */
  readonly membership: Membership;
  readonly events: UserEvents;
  /** What `/v1/agent/members|join|force-leave` and `/v1/event/*` use. */
  readonly gossip: {
    members(): Member[];
    join(addrs: string[]): Promise<number>;
    forceLeave(name: string, prune: boolean): boolean;
    readonly left: boolean;
    readonly events: UserEvents;
  };
  readonly #cleanups: (() => Promise<void>)[];
  readonly #rpc: RpcClient | undefined;
  readonly #joinAbort = new AbortController();
  #stopping: Promise<void> | undefined;
  #registered = false;
  #registerTimer: NodeJS.Timeout | undefined;

  private constructor(
    init: AgentInit,
    nodeId: string,
    catalog: CatalogBackend,
    server: CatalogServer | undefined,
    rpc: RpcClient | undefined,
    membership: Membership,
    cleanups: (() => Promise<void>)[],
  ) {
    this.config = init.config;
    this.logger = init.logger;
    this.nodeId = nodeId;
    this.catalog = catalog;
    this.server = server;
    this.#rpc = rpc;
    this.membership = membership;
    this.#cleanups = cleanups;
    this.local = new LocalAgent({
      config: init.config,
      nodeId,
      catalog,
      server,
      logger: init.logger,
      reloadConfig: init.reloadConfig,
      leave: (opts) => this.leave(opts),
      ...(membership && {
        gossipStats: () => membership.stats(),
        clusterSize: () => membership.members().filter((m) => m.status === 'alive').length,
      }),
    });
    this.events = new UserEvents(
      {
        nodeName: () => init.config.nodeName,
        services: () =>
          this.local.state.services().map((v) => ({ name: v.service.Service, tags: v.service.Tags })),
      },
      (json) => membership.sendUserMessage(json),
    );
    membership.onUserMessage((json) => this.events.receive(json));
    // A server that joins (new, or back from failed or left) may have lost this node's entries or
    // never had them: anti-entropy syncs in full soon after (Consul's ServerUp trigger). A suspect
    // server that refutes ('alive') was never away.
    membership.on((e) => {
      if (
        e.type === 'join' &&
        e.member.name !== init.config.nodeName &&
        asServer(e.member, init.config.datacenter)
      )
        this.local.antiEntropy.serverUp();
    });
    const events = this.events;
    const serfLan = init.config.ports.serfLan;
    this.gossip = {
      members: () => membership.members(),
      join: (addrs) => membership.join(addrs, serfLan),
      forceLeave: (name, prune) => membership.forceLeave(name, prune),
      get left() {
        return membership.left;
      },
      events,
    };
  }

  /** Server RPC addresses gossip knows for this datacenter, alive ones first. */
  servers(): string[] {
    const dc = this.config.datacenter;
    const rank = (m: Member) => (m.status === 'alive' ? 0 : m.status === 'suspect' ? 1 : 2);
    return this.membership
      .members()
      .filter((m) => m.status !== 'left' && m.status !== 'failed')
      .sort((a, b) => rank(a) - rank(b))
      .map((m) => asServer(m, dc)?.rpcAddr)
      .filter((a): a is string => a !== undefined);
  }

  static async start(init: AgentInit): Promise<Agent> {
    const { config, logger } = init;
    const cleanups: (() => Promise<void>)[] = [];
    const undo = async (): Promise<void> => {
      for (const c of cleanups.reverse()) await c().catch(() => undefined);
    };
    try {
      const dataDir = config.devMode ? undefined : config.dataDir;
      if (dataDir) cleanups.push(await lockDataDir(dataDir));
      const nodeId = await resolveNodeId(dataDir, config.nodeId);
      if (config.pidFile) cleanups.push(await writePidFile(config.pidFile));
      const membership = await Membership.start({
        nodeName: config.nodeName,
        nodeId,
        datacenter: config.datacenter,
        bind: config.bindAddr,
        advertise: config.advertiseAddr,
        port: config.ports.serfLan,
        encrypt: config.encrypt,
        dataDir,
        tags: agentTags({
          nodeId,
          datacenter: config.datacenter,
          server: config.server,
          bootstrap: config.bootstrap,
          bootstrapExpect: config.bootstrapExpect,
          serverPort: config.ports.server,
        }),
        profile: config.gossip.profile,
        overrides: {
          ...(config.gossip.gossipNodes !== undefined && { gossipNodes: config.gossip.gossipNodes }),
          ...(config.gossip.gossipIntervalMs !== undefined && {
            gossipIntervalMs: config.gossip.gossipIntervalMs,
          }),
          ...(config.gossip.probeIntervalMs !== undefined && {
            probeIntervalMs: config.gossip.probeIntervalMs,
          }),
          ...(config.gossip.probeTimeoutMs !== undefined && {
            probeTimeoutMs: config.gossip.probeTimeoutMs,
          }),
          ...(config.gossip.retransmitMult !== undefined && {
            retransmitMult: config.gossip.retransmitMult,
          }),
          ...(config.gossip.suspicionMult !== undefined && { suspicionMult: config.gossip.suspicionMult }),
          reconnectTimeoutMs: config.reconnectTimeoutMs,
        },
        logger,
      });
      cleanups.push(() => membership.stop());
      if (dataDir) cleanups.push(await keepPeerSnapshot(membership, dataDir, config, logger));
      let agentRef: Agent | undefined;
      const servers = (): string[] => agentRef?.servers() ?? [];

      let server: CatalogServer | undefined;
      let rpc: RpcClient | undefined;
      let catalog: CatalogBackend;
      if (config.server) {
        // Loaded only here: client agents never carry Raft, its storage or the server RPC.
        const { CatalogServer } = await import('./server/server.ts');
        server = await CatalogServer.start({
          nodeId,
          nodeName: config.nodeName,
          datacenter: config.datacenter,
          rpcListen: `${config.bindAddr}:${config.ports.server}`,
          rpcAdvertise:
            config.ports.server === 0 ? undefined : serverAddress(config.advertiseAddr, config.ports.server),
          dataDir,
          bootstrap: config.bootstrap || config.devMode,
          bootstrapExpect: config.bootstrapExpect,
          join: servers,
          members: membership,
          retryIntervalMs: config.retryIntervalMs,
          autopilot: {
            cleanupDeadServers: config.autopilot.cleanupDeadServers,
            deadServerAfterMs: Math.max(10_000, config.autopilot.serverStabilizationTimeMs * 3),
          },
          logger,
          tickMs: config.devMode ? 50 : (100 * Math.max(1, config.performance.raftMultiplier)) / 5,
        });
        const s = server;
        cleanups.push(() => s.stop());
        catalog = server;
      } else {
        if (config.retryJoin.length === 0 && config.startJoin.length === 0)
          logger.warn('client agent without -join or -retry-join: it finds servers only once joined');
        const client = new RpcClient();
        rpc = client;
        cleanups.push(async () => client.close());
        catalog = new RemoteCatalog(client, servers, logger);
      }
      const agent = new Agent(init, nodeId, catalog, server, rpc, membership, cleanups);
      agentRef = agent;
      if (config.startJoin.length > 0) await membership.join(config.startJoin, config.ports.serfLan);
      if (config.retryJoin.length > 0) {
        void membership.retryJoin(
          config.retryJoin,
          config.ports.serfLan,
          config.retryIntervalMs,
          agent.#joinAbort.signal,
        );
      }
      // Local services and checks stop before the server (cleanups run in reverse).
      cleanups.push(() => agent.local.stop());
      agent.local.start(); // config-file services and checks; a bad one is a ConfigError
      agent.#registerNode();
      return agent;
    } catch (err) {
      await undo();
      throw err;
    }
  }

  get nodeName(): string {
    return this.config.nodeName;
  }

  get datacenter(): string {
    return this.config.datacenter;
  }

  /** Whether this agent's node row has reached the catalog. */
  get registered(): boolean {
    return this.#registered;
  }

  /** Registers (or refreshes) this agent's node in the catalog, retrying until it lands. */
  #registerNode(attempt = 0): void {
    const c = this.config;
    this.catalog
      .write({
        type: 'register',
        node: {
          ID: this.nodeId,
          Node: c.nodeName,
          Address: c.advertiseAddr,
          Datacenter: c.datacenter,
          TaggedAddresses: {
            lan: c.advertiseAddr,
            lan_ipv4: c.advertiseAddr,
            wan: c.advertiseAddr,
            wan_ipv4: c.advertiseAddr,
          },
          Meta: { 'consul-network-segment': '', ...c.nodeMeta },
        },
      })
      .then((reply) => {
        if (!reply.result.ok) throw new Error(reply.result.error);
        this.#registered = true;
        this.logger.info({ index: reply.index }, 'node registered in the catalog');
      })
      .catch((err: unknown) => {
        if (this.#stopping) return;
        const delay = Math.min(5_000, 100 * 2 ** Math.min(attempt, 6));
        this.logger.debug(
          { err: (err as Error).message, retryInMs: delay },
          'node registration failed; retrying',
        );
        this.#registerTimer = setTimeout(() => this.#registerNode(attempt + 1), delay);
        this.#registerTimer.unref();
      });
  }

  /** Registers a cleanup to run at stop (before the server stops), e.g. the HTTP listener. */
  onStop(fn: () => Promise<void>): void {
    this.#cleanups.push(fn);
  }

  readonly #leaveListeners: (() => void)[] = [];

  /** Called after a graceful leave (`/v1/agent/leave`), for the process to shut down. */
  onLeave(fn: () => void): void {
    this.#leaveListeners.push(fn);
  }

  /**
   * Graceful leave: a server leaves the Raft configuration; then the agent asks to be stopped,
   * once `beforeStop` (e.g. the HTTP answer to `/v1/agent/leave` being sent) has settled.
   */
  async leave(opts: { beforeStop?: Promise<unknown> } = {}): Promise<void> {
    await this.server?.leave();
    await this.membership.leave();
    void (opts.beforeStop ?? Promise.resolve()).finally(() => {
      for (const fn of this.#leaveListeners) fn();
    });
  }

  /**
   * Stops everything; with `leave`, first leaves gracefully (a server leaves Raft, then gossip),
   * which is what `leave_on_terminate` / `skip_leave_on_interrupt` decide for signals.
   */
  stop(opts: { leave?: boolean } = {}): Promise<void> {
    this.#stopping ??= (async () => {
      this.#joinAbort.abort();
      if (opts.leave) {
        await this.server?.leave().catch((err: unknown) => this.logger.warn({ err }, 'leaving Raft failed'));
        await this.membership.leave();
      }
      if (this.#registerTimer) clearTimeout(this.#registerTimer);
      for (const c of this.#cleanups.reverse()) {
        await c().catch((err: unknown) => this.logger.warn({ err }, 'error while stopping'));
      }
      this.#rpc?.close();
    })();
    return this.#stopping;
  }
}

/**
 * Keeps the peer snapshot up to date and, at start, rejoins the peers it names (once, in the
 * background) unless the agent left gracefully and `rejoin_after_leave` is off. Returns the
 * cleanup that writes the final state.
 */
async function keepPeerSnapshot(
  membership: Membership,
  dataDir: string,
  config: ResolvedConfig,
  logger: Logger,
): Promise<() => Promise<void>> {
  const previous = await readPeerSnapshot(dataDir, logger);
  const writer = new PeerSnapshotWriter(dataDir, logger);
  const snapshot = () => {
    const self = membership.self().name;
    const peers = membership
      .members()
      .filter((m) => m.name !== self && (m.status === 'alive' || m.status === 'suspect'))
      .map((m) => m.addr);
    writer.update({ version: 1, left: membership.left, peers });
  };
  const off = membership.on(snapshot);
  if (previous && previous.peers.length > 0) {
    if (previous.left && !config.rejoinAfterLeave) {
      logger.info('left the cluster before: not rejoining the previous peers (rejoin_after_leave is off)');
    } else {
      membership.join(previous.peers, config.ports.serfLan).then(
        (n) => logger.info({ joined: n }, 'rejoined peers from the snapshot'),
        (err: unknown) => logger.warn({ err: (err as Error).message }, 'rejoining snapshot peers failed'),
      );
    }
  }
  return async () => {
    off();
    snapshot();
    await writer.flush();
  };
}
