/**
 * The server role of an agent: a Raft node whose state machine is the catalog, the server RPC
 * service on the same port, and the read/write paths the HTTP API uses (Consul's `agent/consul`
 * Server with its `forward`/`blockingQuery` helpers).
 *
 * - Writes are proposed on the leader (stamped with the leader's clock); a follower forwards them.
 *   A write that was never appended (not leader, dropped by a leader change) is retried against
 *   the new leader; one whose outcome is unknown (timeout) is not.
 * - Reads: `default` is served by the leader, locally while its lease holds (else after a
 *   ReadIndex round); `consistent` always takes a ReadIndex round; `stale` is served by any server,
 *   unless it has not heard from the leader for longer than `max_stale`.
 * - Blocking queries park on the watch registry of whichever server serves them.
 */

import { join } from 'node:path';
import type { Logger } from 'pino';
import { CatalogFsm, encodeCommand } from '../../catalog/fsm.ts';
import { type QueryArgs, type QueryName, type QueryResult, runQuery } from '../../catalog/queries.ts';
import type { CatalogCommand, CommandResult, SessionRow } from '../../catalog/types.ts';
import { blockingQuery, TooManyWaitersError } from '../../catalog/watch.ts';
import { RaftNode, RaftTimeoutError } from '../../raft/driver.ts';
import {
  ConfigChangeError,
  NotLeaderError,
  ProposalDroppedError,
  RaftStoppedError,
} from '../../raft/errors.ts';
import { GrpcTransport } from '../../raft/grpc-transport.ts';
import { LevelRaftStorage } from '../../raft/level-storage.ts';
import { MemoryRaftStorage } from '../../raft/memory-storage.ts';
import type { PersistedState, RaftStorage } from '../../raft/storage.ts';
import type { Configuration } from '../../raft/types.ts';
import type {
  AutopilotHealthReply,
  CatalogBackend,
  CommandInput,
  RaftConfigurationReply,
  ReadOptions,
  ReadReply,
  WriteReply,
} from '../backend.ts';
import { RpcClient } from '../rpc/client.ts';
import { RpcError, rpcImplementation, rpcServiceDefinition } from '../rpc/service.ts';
import { type DiscoveredServer, discoverCluster } from './bootstrap.ts';
import { LeaderDuties } from './leader-duties.ts';
import { MemberReconciler, type MemberSource } from './reconcile.ts';
import { serverRpcHandlers } from './rpc-handlers.ts';

export interface CatalogServerInit {
  /** The node ID, also the Raft server ID (Raft protocol 3, as Consul). */
  nodeId: string;
  nodeName: string;
  datacenter: string;
  /** "host:port" the server RPC (and Raft) binds. */
  rpcListen: string;
  /** "host:port" other servers and clients reach it at; defaults to the bound address. */
  rpcAdvertise?: string;
  /** Where Raft keeps its log and snapshots; undefined keeps everything in memory (`-dev`). */
  dataDir: string | undefined;
  /** `-bootstrap` / `-dev`: form a one-server cluster at once when there is no state. */
  bootstrap: boolean;
  /** `-bootstrap-expect`: wait for this many servers, then bootstrap them together. 0 = off. */
  bootstrapExpect: number;
  /**
   * Server RPC addresses to look for the others at, read on every discovery round: the servers
   * gossip has found so far.
   */
  join: () => string[];
  /** Gossip membership, reconciled into the catalog while this server leads. */
  members?: MemberSource;
  retryIntervalMs: number;
  autopilot: { cleanupDeadServers: boolean; deadServerAfterMs: number };
  logger: Logger;
  /** Raft tick; `performance.raft_multiplier` scales it. @default 100 */
  tickMs?: number;
  /** Session TTL timers and tombstone GC use it; tests inject a fake. @default Date.now */
  now?: () => number;
}

/** Forwarded writes give up after this long (the proposal timeout of the leader is 30 s). */
const WRITE_TIMEOUT_MS = 35_000;
/** Extra time a forwarded blocking query gets past its wait (jitter is at most wait/16). */
const BLOCKING_SLACK_MS = 15_000;
/** How many times a write or read chases a changing leader before giving up. */
const MAX_LEADER_HOPS = 5;

export class CatalogServer implements CatalogBackend {
  readonly fsm: CatalogFsm;
  readonly rpc: RpcClient;
  readonly #init: CatalogServerInit;
  readonly #log: Logger;
  readonly #transport: GrpcTransport;
  readonly #storage: RaftStorage;
  readonly #now: () => number;
  #raft: RaftNode<CommandResult> | undefined;
  #raftReady: Promise<RaftNode<CommandResult>>;
  #resolveRaft!: (r: RaftNode<CommandResult>) => void;
  #address = '';
  #stopped = false;
  #discovery: AbortController | undefined;
  #duties: LeaderDuties | undefined;
  /** Server names by Raft id, learned from discovery and joins (for operator output). */
  readonly names = new Map<string, string>();

  private constructor(init: CatalogServerInit, storage: RaftStorage) {
    this.#init = init;
    this.#log = init.logger.child({ component: 'server' });
    this.#storage = storage;
    this.#now = init.now ?? Date.now;
    this.fsm = new CatalogFsm();
    this.rpc = new RpcClient();
    this.names.set(init.nodeId, init.nodeName);
    this.#raftReady = new Promise((resolve) => {
      this.#resolveRaft = resolve;
    });
    this.#transport = new GrpcTransport({
      listen: init.rpcListen,
      advertise: init.rpcAdvertise,
      logger: init.logger,
      services: [
        {
          definition: rpcServiceDefinition(),
          implementation: rpcImplementation(serverRpcHandlers(this), (err, method) =>
            this.#log.error({ err, method }, 'server RPC handler failed'),
          ),
        },
      ],
    });
  }

  /**
   * Opens the store and binds the server port. Raft starts at once when there is state to resume
   * or a one-server bootstrap; otherwise discovery runs in the background until the cluster forms
   * (`-bootstrap-expect`) or this server is added to an existing one.
   */
  static async start(init: CatalogServerInit): Promise<CatalogServer> {
    const storage = init.dataDir
      ? await LevelRaftStorage.open(join(init.dataDir, 'raft'), { logger: init.logger })
      : new MemoryRaftStorage();
    const server = new CatalogServer(init, storage);
    try {
      server.#address = await server.#transport.bind();
      const persisted = await storage.load();
      const hasState =
        persisted.hardState.term > 0 || persisted.entries.length > 0 || persisted.snapshot !== null;
      if (hasState || init.bootstrap) {
        const bootstrap: Configuration | undefined =
          !hasState && init.bootstrap
            ? { servers: [{ id: init.nodeId, address: server.#address, suffrage: 'voter' }] }
            : undefined;
        await server.#startRaft(bootstrap, persisted);
      } else {
        server.#startDiscovery();
      }
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  /** The bound/advertised server RPC address. */
  get address(): string {
    return this.#init.rpcAdvertise ?? this.#address;
  }

  get nodeId(): string {
    return this.#init.nodeId;
  }

  get nodeName(): string {
    return this.#init.nodeName;
  }

  get datacenter(): string {
    return this.#init.datacenter;
  }

  get bootstrapExpect(): number {
    return this.#init.bootstrapExpect;
  }

  /** The Raft node, once it runs (undefined while waiting for the cluster to form). */
  get raft(): RaftNode<CommandResult> | undefined {
    return this.#raft;
  }

  /** Resolves once Raft runs. */
  raftStarted(): Promise<RaftNode<CommandResult>> {
    return this.#raftReady;
  }

  // ---------------------------------------------------------------------------------------------
  // Writes

  async write(cmd: CommandInput, signal?: AbortSignal): Promise<WriteReply> {
    for (let hop = 0; ; hop++) {
      const raft = this.#raft;
      const st = raft?.brief();
      if (raft && st?.role === 'leader') {
        try {
          return await this.applyLocal(cmd);
        } catch (err) {
          if (
            !(err instanceof NotLeaderError || err instanceof ProposalDroppedError) ||
            hop >= MAX_LEADER_HOPS
          )
            throw err;
          await this.#waitForLeader(signal);
          continue;
        }
      }
      const leaderAddress = await this.#leaderAddress(signal);
      try {
        return await this.rpc.call<WriteReply>(
          leaderAddress,
          'Apply',
          { command: cmd, forwarded: true },
          WRITE_TIMEOUT_MS,
          signal,
        );
      } catch (err) {
        if (!(err instanceof RpcError) || err.kind !== 'not-leader' || hop >= MAX_LEADER_HOPS) throw err;
        await this.#waitForLeader(signal);
      }
    }
  }

  /** Proposes on this server, which must be the leader; stamps the leader's clock. */
  async applyLocal(input: CommandInput): Promise<WriteReply> {
    const raft = this.#raft;
    if (!raft) throw new NotLeaderError('');
    const cmd = { ...input, now: this.#now() } as CatalogCommand;
    const { index, result } = await raft.propose(encodeCommand(cmd));
    const res = result ?? { ok: false, error: 'command produced no result' };
    if (res.ok) this.#duties?.afterWrite(cmd);
    return { index, result: res };
  }

  // ---------------------------------------------------------------------------------------------
  // Reads

  async read<N extends QueryName>(
    name: N,
    args: QueryArgs<N>,
    opts: ReadOptions,
  ): Promise<ReadReply<QueryResult<N>>> {
    for (let hop = 0; ; hop++) {
      const raft = this.#raft;
      const st = raft?.brief();
      const local =
        raft !== undefined &&
        st !== undefined &&
        (st.role === 'leader' ||
          (opts.consistency === 'stale' &&
            (opts.maxStaleMs === undefined ||
              (st.lastContactMs >= 0 && st.lastContactMs <= opts.maxStaleMs))));
      if (local) {
        try {
          return await this.readLocal(name, args, opts);
        } catch (err) {
          if (!(err instanceof NotLeaderError) || hop >= MAX_LEADER_HOPS) throw err;
          await this.#waitForLeader(opts.signal);
          continue;
        }
      }
      const leaderAddress = await this.#leaderAddress(opts.signal);
      try {
        // The leader serves it as `default` when this server was too stale to.
        const fwd = {
          ...opts,
          signal: undefined,
          consistency: opts.consistency === 'stale' ? 'default' : opts.consistency,
        };
        return await this.rpc.call<ReadReply<QueryResult<N>>>(
          leaderAddress,
          'Query',
          { name, args, opts: fwd, forwarded: true },
          opts.waitMs + BLOCKING_SLACK_MS,
          opts.signal,
        );
      } catch (err) {
        if (!(err instanceof RpcError) || err.kind !== 'not-leader' || hop >= MAX_LEADER_HOPS) throw err;
        await this.#waitForLeader(opts.signal);
      }
    }
  }

  /** Serves a read on this server: the caller decided it may (leader, or stale allowed). */
  async readLocal<N extends QueryName>(
    name: N,
    args: QueryArgs<N>,
    opts: ReadOptions,
  ): Promise<ReadReply<QueryResult<N>>> {
    const raft = this.#raft;
    if (!raft) throw new NotLeaderError('');
    if (opts.consistency === 'consistent' || (opts.consistency === 'default' && !raft.hasLease())) {
      const { role, leader } = raft.brief();
      if (role !== 'leader') throw new NotLeaderError(leader);
      await raft.readIndex();
    }
    let r: { index: number; result: QueryResult<N> };
    try {
      r = await blockingQuery({
        minIndex: opts.minIndex,
        waitMs: opts.waitMs,
        signal: opts.signal,
        registry: this.fsm.watches,
        run: () => runQuery(this.fsm.state, name, args),
        random: Math.random,
      });
    } catch (err) {
      if (err instanceof TooManyWaitersError) throw new RpcError('unavailable', err.message);
      throw err;
    }
    const st = raft.brief();
    return {
      index: r.index,
      result: r.result,
      knownLeader: st.leader !== '',
      lastContactMs: Math.max(0, st.lastContactMs),
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Sessions, operator, status

  async renewSession(id: string): Promise<SessionRow | null> {
    const raft = this.#raft;
    if (raft?.status().role === 'leader' && this.#duties) {
      // Renewing must see the session even if it was just created: read after a barrier.
      await raft.readIndex();
      const row = this.fsm.state.sessions.get(id);
      if (!row) return null;
      this.#duties.renewSession(row);
      return structuredClone(row);
    }
    const leaderAddress = await this.#leaderAddress();
    return this.rpc.call<SessionRow | null>(leaderAddress, 'RenewSession', { id }, WRITE_TIMEOUT_MS);
  }

  async raftConfiguration(): Promise<RaftConfigurationReply> {
    const raft = await this.#requireRaft();
    const st = raft.status();
    return {
      Servers: st.configuration.servers
        .slice()
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        .map((s) => ({
          ID: s.id,
          Node: this.names.get(s.id) ?? s.id,
          Address: s.address,
          Leader: s.id === st.leader,
          Voter: s.suffrage === 'voter',
          ProtocolVersion: '3',
        })),
      Index: st.configurationIndex,
    };
  }

  async removePeer(target: { id?: string; address?: string }): Promise<void> {
    const raft = await this.#requireRaft();
    const st = raft.status();
    if (st.role !== 'leader') {
      await this.rpc.call(await this.#leaderAddress(), 'RemovePeer', target, WRITE_TIMEOUT_MS);
      return;
    }
    const server = st.configuration.servers.find((s) =>
      target.id !== undefined ? s.id === target.id : s.address === target.address,
    );
    if (!server) {
      throw new RpcError(
        'bad-request',
        target.id !== undefined
          ? `id "${target.id}" was not found in the Raft configuration`
          : `address "${target.address}" was not found in the Raft configuration`,
      );
    }
    try {
      await raft.removeServer(server.id);
    } catch (err) {
      if (err instanceof ConfigChangeError)
        throw new RpcError(err.retryable ? 'unavailable' : 'bad-request', err.message);
      throw err;
    }
  }

  async autopilotHealth(): Promise<AutopilotHealthReply> {
    const raft = await this.#requireRaft();
    if (raft.status().role !== 'leader' || !this.#duties) {
      return this.rpc.call<AutopilotHealthReply>(
        await this.#leaderAddress(),
        'AutopilotHealth',
        {},
        WRITE_TIMEOUT_MS,
      );
    }
    return this.#duties.autopilotHealth();
  }

  async leader(): Promise<string> {
    const raft = this.#raft;
    if (!raft) return '';
    const st = raft.status();
    if (st.leader === '') return '';
    return st.configuration.servers.find((s) => s.id === st.leader)?.address ?? '';
  }

  async peers(): Promise<string[]> {
    const raft = this.#raft;
    if (!raft) return [];
    return raft
      .status()
      .configuration.servers.filter((s) => s.suffrage === 'voter')
      .map((s) => s.address)
      .sort();
  }

  async snapshot(): Promise<{ index: number; chunks: Uint8Array[] }> {
    const raft = await this.#requireRaft();
    if (raft.status().role !== 'leader') {
      const r = await this.rpc.call<{ index: number; data: string }>(
        await this.#leaderAddress(),
        'Snapshot',
        {},
        WRITE_TIMEOUT_MS,
      );
      return { index: r.index, chunks: [new Uint8Array(Buffer.from(r.data, 'base64'))] };
    }
    await raft.readIndex();
    const index = this.fsm.state.lastIndex;
    const chunks: Uint8Array[] = [];
    for await (const c of this.fsm.snapshot().chunks()) chunks.push(c);
    return { index, chunks };
  }

  // ---------------------------------------------------------------------------------------------
  // Membership

  /** Adds a server (the leader's side of a join): non-voter first, promoted once caught up. */
  async addServer(id: string, name: string, address: string): Promise<void> {
    const raft = await this.#requireRaft();
    this.names.set(id, name);
    if (raft.status().role !== 'leader') {
      await this.rpc.call(await this.#leaderAddress(), 'Join', { id, name, address }, 120_000);
      return;
    }
    const existing = raft.status().configuration.servers.find((s) => s.id === id);
    if (existing && existing.address !== address) {
      // Same server, new address (restarted elsewhere): Consul removes the stale entry first.
      await raft.removeServer(id);
    }
    await raft.addVoter(id, address);
  }

  /** Graceful leave: a server removes itself from the configuration (leader steps down first). */
  async leave(): Promise<void> {
    const raft = this.#raft;
    if (!raft) return;
    const st = raft.status();
    if (st.configuration.servers.length <= 1) return;
    try {
      if (st.role === 'leader') await raft.removeServer(this.#init.nodeId);
      else
        await this.rpc.call(
          await this.#leaderAddress(),
          'RemovePeer',
          { id: this.#init.nodeId },
          WRITE_TIMEOUT_MS,
        );
    } catch (err) {
      this.#log.warn({ err }, 'leaving the Raft configuration failed');
    }
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#discovery?.abort();
    this.#duties?.stop();
    this.rpc.close();
    if (this.#raft) await this.#raft.stop();
    else await this.#transport.close();
    await this.#storage.close();
  }

  // ---------------------------------------------------------------------------------------------
  // Internals

  /** What discovery tells other servers about this one. */
  describe(): DiscoveredServer {
    const raft = this.#raft;
    const st = raft?.status();
    const leaderAddress = st?.leader
      ? (st.configuration.servers.find((s) => s.id === st.leader)?.address ?? '')
      : '';
    return {
      id: this.#init.nodeId,
      name: this.#init.nodeName,
      address: this.address,
      datacenter: this.#init.datacenter,
      bootstrapExpect: this.#init.bootstrapExpect,
      hasState: raft !== undefined,
      leaderAddress,
      known: [...this.#known.values()],
    };
  }

  readonly #known = new Map<string, DiscoveredServer>();

  /** Servers learned from discovery replies and from Info callers. */
  learn(s: DiscoveredServer): void {
    if (s.id === this.#init.nodeId) return;
    const { known: _known, ...flat } = s;
    this.#known.set(s.id, { ...flat, known: [] });
    this.names.set(s.id, s.name);
  }

  async #startRaft(bootstrap: Configuration | undefined, persisted?: PersistedState): Promise<void> {
    if (this.#raft) return;
    const raft = await RaftNode.start<CommandResult>({
      persisted,
      id: this.#init.nodeId,
      address: this.address,
      storage: this.#storage,
      transport: this.#transport,
      fsm: this.fsm,
      logger: this.#init.logger,
      bootstrap,
      tickMs: this.#init.tickMs ?? 100,
    });
    this.#raft = raft;
    this.#duties = new LeaderDuties({
      server: this,
      raft,
      logger: this.#init.logger,
      now: this.#now,
      autopilot: this.#init.autopilot,
      reconciler: this.#init.members
        ? new MemberReconciler({
            server: this,
            members: this.#init.members,
            datacenter: this.#init.datacenter,
            logger: this.#init.logger,
          })
        : undefined,
    });
    raft.on('fatal', (e) => this.#log.fatal({ err: e.detail }, 'raft stopped on a fatal error'));
    this.#resolveRaft(raft);
  }

  #startDiscovery(): void {
    const abort = new AbortController();
    this.#discovery = abort;
    discoverCluster({
      self: () => this.describe(),
      learn: (s) => this.learn(s),
      join: this.#init.join,
      bootstrapExpect: this.#init.bootstrapExpect,
      retryIntervalMs: this.#init.retryIntervalMs,
      rpc: this.rpc,
      logger: this.#log,
      signal: abort.signal,
      startRaft: (bootstrap) => this.#startRaft(bootstrap),
      requestJoin: async (address) => {
        await this.rpc.call(
          address,
          'Join',
          { id: this.#init.nodeId, name: this.#init.nodeName, address: this.address },
          120_000,
        );
      },
    }).catch((err: unknown) => {
      if (!abort.signal.aborted) this.#log.error({ err }, 'cluster discovery failed');
    });
  }

  async #requireRaft(): Promise<RaftNode<CommandResult>> {
    if (this.#raft) return this.#raft;
    throw new RpcError('unavailable', 'No cluster leader');
  }

  /** The leader's address, waiting up to an election for one to emerge. */
  async #leaderAddress(signal?: AbortSignal): Promise<string> {
    const known = await this.leader();
    if (known !== '') return known;
    await this.#waitForLeader(signal);
    const after = await this.leader();
    if (after === '') throw new RpcError('unavailable', 'No cluster leader');
    return after;
  }

  /** Waits (bounded) for a leader to be known, e.g. after the old one failed. */
  async #waitForLeader(signal?: AbortSignal): Promise<void> {
    const raft = this.#raft;
    if (!raft) throw new RpcError('unavailable', 'No cluster leader');
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline && !this.#stopped) {
      signal?.throwIfAborted();
      const st = raft.status();
      if (st.leader !== '' && st.configuration.servers.some((s) => s.id === st.leader)) return;
      await new Promise<void>((resolve) => {
        const off = raft.on('leader:changed', () => {
          clearTimeout(timer);
          off();
          resolve();
        });
        const timer = setTimeout(() => {
          off();
          resolve();
        }, 250);
      });
    }
    if (this.#stopped) throw new RaftStoppedError();
    if (raft.status().leader === '') throw new RpcError('unavailable', 'No cluster leader');
  }
}

export { RaftTimeoutError };
