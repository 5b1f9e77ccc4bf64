/**
 * The agent daemon's lifecycle: data dir lock and node ID, the server role (or, on a client, the
 * RPC path to the servers), the HTTP API, and registering its own node in the catalog. Stopping
 * reverses it; a restarted agent resumes from its data dir.
 */

import type { Logger } from 'pino';
import type { CatalogBackend } from './backend.ts';
import type { ResolvedConfig } from './config/load.ts';
import { lockDataDir, resolveNodeId, writePidFile } from './data-dir.ts';
import { LocalAgent } from './local/local-agent.ts';
import { RemoteCatalog } from './remote-catalog.ts';
import { RpcClient } from './rpc/client.ts';
import { CatalogServer } from './server/server.ts';

/** Consul's server RPC port, assumed when a join address names none. */
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
  readonly #cleanups: (() => Promise<void>)[];
  readonly #rpc: RpcClient | undefined;
  #stopping: Promise<void> | undefined;
  #registered = false;
  #registerTimer: NodeJS.Timeout | undefined;

  private constructor(
    init: AgentInit,
    nodeId: string,
    catalog: CatalogBackend,
    server: CatalogServer | undefined,
    rpc: RpcClient | undefined,
    cleanups: (() => Promise<void>)[],
  ) {
    this.config = init.config;
    this.logger = init.logger;
    this.nodeId = nodeId;
    this.catalog = catalog;
    this.server = server;
    this.#rpc = rpc;
    this.#cleanups = cleanups;
    this.local = new LocalAgent({
      config: init.config,
      nodeId,
      catalog,
      server,
      logger: init.logger,
      reloadConfig: init.reloadConfig,
      leave: (opts) => this.leave(opts),
    });
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
      const joins = [...config.retryJoin, ...config.startJoin].map((a) =>
        serverAddress(a, config.ports.server),
      );

      let server: CatalogServer | undefined;
      let rpc: RpcClient | undefined;
      let catalog: CatalogBackend;
      if (config.server) {
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
          join: joins,
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
        if (joins.length === 0)
          logger.warn('client agent without -retry-join: it knows no server to talk to');
        const client = new RpcClient();
        rpc = client;
        cleanups.push(async () => client.close());
        catalog = new RemoteCatalog(client, () => joins, logger);
      }
      const agent = new Agent(init, nodeId, catalog, server, rpc, cleanups);
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
    void (opts.beforeStop ?? Promise.resolve()).finally(() => {
      for (const fn of this.#leaveListeners) fn();
    });
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      if (this.#registerTimer) clearTimeout(this.#registerTimer);
      for (const c of this.#cleanups.reverse()) {
        await c().catch((err: unknown) => this.logger.warn({ err }, 'error while stopping'));
      }
      this.#rpc?.close();
    })();
    return this.#stopping;
  }
}
