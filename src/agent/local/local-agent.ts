/**
 * What the `/v1/agent/*` endpoints need from the agent, in one place: the local state (services
 * and checks, config-defined ones registered at start and re-applied on reload), the metrics
 * registry, leave and reload. The {@link Agent} creates one at start and stops it first.
 *
 * Reload (`PUT /v1/agent/reload`, SIGHUP) re-runs the config loader with the same arguments and
 * applies what can change without a restart, as Consul does for its reloadable subset: the
 * config-defined services and checks (added, updated, removed; API-registered ones kept), the
 * log level, and whatever listens through {@link LocalAgent.onReload} (the DNS server's
 * `dns_config` and `recursors`). Everything is validated before anything changes: a bad config is a
 * {@link ConfigError} and leaves the agent as it was. Other settings (ports, addresses, node name,
 * ...) need a restart; they are ignored on reload.
 */

import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { z } from 'zod';
import { formatGoDuration } from '../../api/wire/duration.ts';
import type { NodeInput } from '../../catalog/types.ts';
import { VERSION } from '../../version.ts';
import type { CatalogBackend } from '../backend.ts';
import { CheckRunners } from '../checks/check-runners.ts';
import { ConfigError } from '../config/errors.ts';
import type { ResolvedConfig } from '../config/load.ts';
import { AgentMetrics } from '../metrics.ts';
import type { CatalogServer } from '../server/server.ts';
import { AntiEntropy } from './anti-entropy.ts';
import {
  type CheckDefinition,
  parseCheckDefinition,
  parseServiceDefinition,
  type ServiceDefinition,
  scriptChecksPolicy,
} from './definitions.ts';
import { DefinitionError } from './errors.ts';
import { LocalStateFile, restorable } from './persist.ts';
import { type Clock, LocalState, type LocalStateEvents, systemClock } from './state.ts';

export interface LocalAgentInit {
  config: ResolvedConfig;
  nodeId: string;
  catalog: CatalogBackend;
  /** In server mode: Raft and catalog gauges come from it. */
  server?: CatalogServer;
  logger: Logger;
  clock?: Clock;
  /** Loads the configuration again from the same sources (for reload); absent: reload is refused. */
  reloadConfig?: () => Promise<{ config: ResolvedConfig; warnings: string[] }>;
  /** The agent's graceful leave. */
  leave: (opts: { beforeStop?: Promise<unknown> }) => Promise<void>;
  /** Gossip counters for the metrics endpoint (absent: not exported). */
  gossipStats?: () => Record<string, number>;
  /** Alive cluster members, which scale the anti-entropy period. @default () => 1 */
  clusterSize?: () => number;
  /** Anti-entropy's full-sync period before scaling. @default 60_000 (Consul's) */
  antiEntropyIntervalMs?: number;
}

/** The node row this agent writes (the same as the agent's own registration). */
export function agentNodeInput(config: ResolvedConfig, nodeId: string): NodeInput {
  return {
    ID: nodeId,
    Node: config.nodeName,
    Address: config.advertiseAddr,
    Datacenter: config.datacenter,
    TaggedAddresses: {
      lan: config.advertiseAddr,
      lan_ipv4: config.advertiseAddr,
      wan: config.advertiseAddr,
      wan_ipv4: config.advertiseAddr,
    },
    Meta: { 'consul-network-segment': '', ...config.nodeMeta },
  };
}

function describe(err: unknown): string {
  if (err instanceof z.ZodError) {
    const issue = err.issues[0];
    const path = issue.path.map(String).join('.');
    return `${path ? `${path}: ` : ''}${issue.message}`;
  }
  return (err as Error).message;
}

/** Validates the config files' service and check definitions; the first bad one is a ConfigError. */
export function configDefinitions(config: ResolvedConfig): {
  services: ServiceDefinition[];
  checks: CheckDefinition[];
  warnings: string[];
} {
  const services: ServiceDefinition[] = [];
  const checks: CheckDefinition[] = [];
  const warnings: string[] = [];
  const scripts = scriptChecksPolicy(config, 'config');
  config.services.forEach((raw, i) => {
    try {
      const def = parseServiceDefinition(raw, scripts);
      services.push(def);
      warnings.push(...def.warnings);
    } catch (err) {
      if (!(err instanceof z.ZodError) && !(err instanceof DefinitionError)) throw err;
      const name = typeof raw.name === 'string' ? ` (${JSON.stringify(raw.name)})` : '';
      throw new ConfigError(`services[${i}]${name}: ${describe(err)}`, { key: `services[${i}]` });
    }
  });
  config.checks.forEach((raw, i) => {
    try {
      checks.push(parseCheckDefinition(raw, scripts));
    } catch (err) {
      if (!(err instanceof z.ZodError) && !(err instanceof DefinitionError)) throw err;
      const name = typeof raw.name === 'string' ? ` (${JSON.stringify(raw.name)})` : '';
      throw new ConfigError(`checks[${i}]${name}: ${describe(err)}`, { key: `checks[${i}]` });
    }
  });
  return { services, checks, warnings };
}

export class LocalAgent {
  readonly state: LocalState;
  readonly metrics: AgentMetrics;
  /** Runs the HTTP/TCP/UDP/gRPC/H2PING/script/alias checks of the local state. */
  readonly checks: CheckRunners;
  /** The configuration the agent started with. */
  readonly config: ResolvedConfig;
  readonly startedAt: number;
  readonly #init: LocalAgentInit;
  readonly #logger: Logger;
  readonly #clock: Clock;
  /** Where API-registered services and checks persist; none in dev mode (no data dir). */
  readonly #file: LocalStateFile | undefined;
  readonly #antiEntropy: AntiEntropy;
  #reloading: Promise<void> = Promise.resolve();
  readonly #reloadListeners = new Set<(config: ResolvedConfig) => void>();

  constructor(init: LocalAgentInit) {
    this.#init = init;
    this.config = init.config;
    this.#logger = init.logger.child({ component: 'local' });
    const clock = init.clock ?? systemClock;
    this.#clock = clock;
    this.startedAt = clock.now();
    this.state = new LocalState(
      { node: agentNodeInput(init.config, init.nodeId), catalog: init.catalog, clock, logger: this.#logger },
      { checkUpdateIntervalMs: init.config.checkUpdateIntervalMs, sidecarPorts: init.config.sidecarPorts },
    );
    this.checks = new CheckRunners({ state: this.state, catalog: init.catalog, clock, logger: this.#logger });
    const dataDir = init.config.dataDir;
    const file = dataDir
      ? new LocalStateFile(dataDir, () => this.state.persistable(), this.#logger)
      : undefined;
    this.#file = file;
    if (file) {
      this.state.addEventListener('state:changed', (e) => {
        if ((e as LocalStateEvents['state:changed']).detail.persistent) file.changed();
      });
    }
    this.#antiEntropy = new AntiEntropy(
      {
        state: this.state,
        catalog: init.catalog,
        nodeName: init.config.nodeName,
        clock,
        logger: this.#logger,
        clusterSize: init.clusterSize ?? (() => 1),
      },
      { intervalMs: init.antiEntropyIntervalMs ?? init.config.aeIntervalMs },
    );
    const server = init.server;
    this.metrics = new AgentMetrics({
      ...(server
        ? {
            raft: () => {
              const st = server.raft?.status();
              return st
                ? {
                    term: st.term,
                    commitIndex: st.commitIndex,
                    appliedIndex: st.appliedIndex,
                    lastIndex: st.lastIndex,
                    isLeader: st.role === 'leader',
                  }
                : undefined;
            },
            kvEntries: () => server.fsm.state.kv.size,
            blockingQueries: () => server.fsm.watches.waiterCount,
          }
        : {}),
      localServices: () => this.state.serviceCount,
      localChecks: () => this.state.checkCount,
      localSyncFailures: () => this.state.syncFailures,
      localOutOfSync: () => this.state.outOfSyncCount,
      ...(init.gossipStats && { gossip: init.gossipStats }),
    });
  }

  /**
   * Registers the config-defined services and checks, then those the data dir kept from the API
   * (config wins on an ID both have), and starts anti-entropy.
   * @throws ConfigError for a bad definition or an unreadable newer data-dir format.
   */
  start(): void {
    const { services, checks, warnings } = configDefinitions(this.config);
    for (const w of warnings) this.#logger.warn(w);
    try {
      this.state.applyConfig(services, checks);
    } catch (err) {
      if (err instanceof DefinitionError) throw new ConfigError(err.message);
      throw err;
    }
    const loaded = this.#file?.load();
    if (loaded) {
      const { state: saved, warnings: skipped } = restorable(loaded, this.config);
      for (const w of [...skipped, ...this.state.restore(saved)]) this.#logger.warn(w);
      this.#logger.info(
        { services: saved.services.length, checks: saved.checks.length, file: this.#file?.path },
        'restored services and checks registered before the restart',
      );
    }
    this.#antiEntropy.start();
    this.checks.start();
  }

  /**
   * Resolves once the local state as it is now is on disk (an API change is acknowledged after
   * this). Nothing to wait for without a data dir. @throws when the write failed.
   */
  persisted(): Promise<void> {
    return this.#file?.flush() ?? Promise.resolve();
  }

  /** Anti-entropy: its full sync now (tests; `fullSyncs` counts completed ones), `serverUp()`. */
  get antiEntropy(): AntiEntropy {
    return this.#antiEntropy;
  }

  get logger(): Logger {
    return this.#logger;
  }

  /** `Stats` of `/v1/agent/self`, Consul's sections and keys that meshd can fill, values as strings. */
  async stats(): Promise<Record<string, Record<string, string>>> {
    const c = this.config;
    const checks = this.state.checks();
    const stats: Record<string, Record<string, string>> = {
      agent: {
        check_monitors: '0',
        check_ttls: String(checks.filter((ch) => ch.ttlMs !== undefined).length),
        checks: String(checks.length),
        services: String(this.state.serviceCount),
      },
      build: { prerelease: '', revision: '', version: VERSION, version_metadata: '' },
      consul: { server: String(c.server), known_datacenters: '1' },
      runtime: {
        arch: process.arch,
        os: process.platform,
        version: process.version,
        cpu_count: String(availableParallelism()),
        uptime: formatGoDuration(Math.max(0, Math.floor((this.#clock.now() - this.startedAt) / 1000) * 1000)),
      },
    };
    const server = this.#init.server;
    const st = server?.raft?.status();
    if (server) {
      stats.consul.bootstrap = String(c.bootstrap);
      stats.consul.leader = String(st?.role === 'leader');
      stats.consul.leader_addr = await server.leader().catch(() => '');
    } else {
      stats.consul.known_servers = String(new Set([...c.retryJoin, ...c.startJoin]).size);
    }
    if (st) {
      stats.raft = {
        state: st.role === 'leader' ? 'Leader' : st.role === 'candidate' ? 'Candidate' : 'Follower',
        term: String(st.term),
        commit_index: String(st.commitIndex),
        applied_index: String(st.appliedIndex),
        last_log_index: String(st.lastIndex),
        last_log_term: String(st.lastTerm),
        last_snapshot_index: String(st.snapshotIndex),
        num_peers: String(Math.max(0, st.configuration.servers.length - 1)),
        latest_configuration_index: String(st.configurationIndex),
        protocol_version: '3',
      };
    }
    return stats;
  }

  leave(opts: { beforeStop?: Promise<unknown> } = {}): Promise<void> {
    return this.#init.leave(opts);
  }

  /**
   * Calls `listener` with each configuration a reload applied (the DNS server takes its
   * `dns_config` and `recursors` from it). Returns the function that stops that.
   */
  onReload(listener: (config: ResolvedConfig) => void): () => void {
    this.#reloadListeners.add(listener);
    return () => this.#reloadListeners.delete(listener);
  }

  /** Reloads the config-defined services and checks and the log level; one reload at a time. */
  reload(): Promise<void> {
    const run = this.#reloading.then(() => this.#reload());
    this.#reloading = run.catch(() => undefined);
    return run;
  }

  async #reload(): Promise<void> {
    const load = this.#init.reloadConfig;
    if (!load)
      throw new ConfigError('reload is not available: the agent was not started with a config loader');
    const { config, warnings } = await load();
    const { services, checks, warnings: defWarnings } = configDefinitions(config);
    try {
      this.state.applyConfig(services, checks);
    } catch (err) {
      if (err instanceof DefinitionError) throw new ConfigError(err.message);
      throw err;
    }
    for (const w of [...warnings, ...defWarnings]) this.#logger.warn(w);
    // Children made before keep their level (pino); new ones and the root follow.
    this.#init.logger.level = config.logLevel;
    this.#logger.level = config.logLevel;
    for (const listener of this.#reloadListeners) {
      try {
        listener(config);
      } catch (err) {
        this.#logger.error({ err: (err as Error).message }, 'applying a reloaded configuration failed');
      }
    }
    this.#logger.info(
      { services: services.length, checks: checks.length, logLevel: config.logLevel },
      'configuration reloaded',
    );
  }

  async stop(): Promise<void> {
    this.checks.stop();
    await this.#antiEntropy.stop();
    await this.state.stop();
    await this.#file?.flush().catch(() => undefined);
  }
}
