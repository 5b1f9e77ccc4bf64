import type { Logger } from 'pino';
import { findServer } from './configuration.ts';
import {
  bootstrapState,
  type CoreStatus,
  RaftCore,
  type RaftCoreOptions,
  type RejectReason,
} from './core.ts';
import {
  ConfigChangeError,
  NotLeaderError,
  ProposalDroppedError,
  RaftInvariantError,
  RaftStoppedError,
  TransferInProgressError,
} from './errors.ts';
import type { StateMachine } from './fsm.ts';
import type { PersistedState, RaftStorage } from './storage.ts';
import type { RaftTransport } from './transport.ts';
import {
  type Configuration,
  type Entry,
  type HardState,
  type Message,
  type Ready,
  type ServerId,
  type SnapshotMessage,
  sendableBeforePersist,
} from './types.ts';

export interface RaftNodeInit<Result> {
  id: ServerId;
  /** The address other servers reach this one's transport at, "host:port". */
  address: string;
  storage: RaftStorage;
  transport: RaftTransport;
  fsm: StateMachine<Result>;
  logger: Logger;
  /** What `storage.load()` returned, when the caller already loaded it (saves reading the log twice). */
  persisted?: PersistedState;
  /** A new cluster's first configuration; ignored when the store already holds state. */
  bootstrap?: Configuration;
  /** Milliseconds per core tick. @default 100 (heartbeats every 100 ms, elections after 1-2 s) */
  tickMs?: number;
  /** Take a snapshot once this many entries were applied since the last one. @default 16384 (Consul's) */
  snapshotThreshold?: number;
  /**
   * At most one snapshot per this many ms (Consul's `raft_snapshot_interval`): a busy cluster does
   * not pay for a snapshot every `snapshotThreshold` entries; the log grows a little longer instead.
   * Each wait gets a random extra of up to as long again, as in hashicorp/raft: servers that applied
   * the same entries would otherwise all snapshot at once, and a write needs two of them to persist.
   * @default 30000
   */
  snapshotIntervalMs?: number;
  /** Entries kept behind a snapshot so slightly lagging followers need no snapshot. @default 10240 (Consul's) */
  trailingLogs?: number;
  /** A proposal not applied within this long fails with a timeout (its outcome is then unknown). @default 30 s */
  proposalTimeoutMs?: number;
  /** Everything else of the core: election and heartbeat ticks, PreVote, CheckQuorum, read mode, flow limits. */
  core?: Omit<RaftCoreOptions, 'id' | 'rng' | 'onReject'>;
  /** @default Math.random */
  rng?: () => number;
}

/** A proposal or read gave up waiting; a write's outcome is then unknown. */
export class RaftTimeoutError extends Error {
  override readonly name = 'RaftTimeoutError';
}

export interface RaftNodeStatus extends CoreStatus {
  /** Milliseconds since the leader was last heard from (0 on the leader, -1 if never). */
  lastContactMs: number;
  address: string;
}

export interface RaftNodeEvents {
  'leader:changed': CustomEvent<{ leader: ServerId; term: number }>;
  applied: CustomEvent<{ index: number }>;
  /** The node hit an error it cannot continue from (a failed fsync, a broken invariant) and stopped. */
  fatal: CustomEvent<Error>;
}

interface Waiter<T> {
  resolve(v: T): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

interface PendingProposal<Result> extends Waiter<{ index: number; result: Result | undefined }> {
  term: number;
}

/**
 * Wires the Raft core to real time, disk and network: a tick timer, the LevelDB store, the gRPC
 * transport and the state machine. The loop takes a Ready, applies its committed entries (durable
 * on a majority already), fsyncs the rest of it in one batch, sends its messages and advances;
 * whatever arrives meanwhile lands in the next Ready, so many proposals share one fsync (group
 * commit). A leader does not hold new appends back for that fsync (see scheduleEarlySend).
 */
export class RaftNode<Result = unknown> extends EventTarget {
  readonly id: ServerId;
  readonly address: string;
  private readonly core: RaftCore;
  private readonly storage: RaftStorage;
  private readonly transport: RaftTransport;
  private readonly fsm: StateMachine<Result>;
  private readonly log: Logger;
  private readonly tickMs: number;
  private readonly snapshotThreshold: number;
  private readonly snapshotIntervalMs: number;
  /** No snapshot before this time (Date.now() ms); see snapshotIntervalMs. */
  private snapshotNotBefore: number;
  private readonly rng: () => number;
  private readonly trailingLogs: number;
  private readonly proposalTimeoutMs: number;
  private readonly readTimeoutMs: number;
  private readonly electionTicks: number;

  private ticker: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;
  private loopScheduled = false;
  /** The loop is waiting for a Ready's write (see scheduleEarlySend). */
  private persisting = false;
  private earlySendScheduled = false;
  /**
   * The last entry the state machine holds, applied or restored from a snapshot: never behind
   * core.log.applied, and ahead of it while a Ready is being written (its committed entries are
   * applied first, and more may come early: see scheduleEarlySend).
   */
  private fsmIndex: number;
  private snapshotting = false;
  private lastSnapshotIndex: number;
  /** Term and vote as last written (a commit-only change is not written on its own). */
  private persistedHardState: HardState;
  private lastLeader: ServerId = '';
  private lastContact = -1;
  private readonly proposals = new Map<number, PendingProposal<Result>[]>();
  private readonly reads = new Map<number, Waiter<number>>();
  private readonly readsAwaitingApply: { index: number; waiter: Waiter<number> }[] = [];
  private readonly appliedWaiters: { index: number; resolve: () => void }[] = [];
  private nextReadCtx = 1;
  private readonly peerAddresses = new Map<ServerId, string>();

  /** Messages the core refused, by reason (see RaftCoreOptions.onReject). */
  readonly rejected: Readonly<Record<RejectReason, number>>;

  private constructor(
    init: RaftNodeInit<Result>,
    core: RaftCore,
    snapshotIndex: number,
    rejected: Record<RejectReason, number>,
    persistedHardState: HardState,
  ) {
    super();
    this.id = init.id;
    this.address = init.address;
    this.core = core;
    this.storage = init.storage;
    this.transport = init.transport;
    this.fsm = init.fsm;
    this.log = init.logger.child({ component: 'raft', server: init.id });
    this.tickMs = init.tickMs ?? 100;
    this.snapshotThreshold = init.snapshotThreshold ?? 16_384;
    this.snapshotIntervalMs = init.snapshotIntervalMs ?? 30_000;
    this.rng = init.rng ?? Math.random;
    this.snapshotNotBefore = this.nextSnapshotTime();
    this.trailingLogs = init.trailingLogs ?? 10_240;
    this.proposalTimeoutMs = init.proposalTimeoutMs ?? 30_000;
    this.electionTicks = init.core?.electionTicks ?? 10;
    this.readTimeoutMs = this.tickMs * this.electionTicks * 5;
    this.lastSnapshotIndex = snapshotIndex;
    this.fsmIndex = snapshotIndex;
    this.persistedHardState = { ...persistedHardState };
    this.rejected = rejected;
  }

  /** Loads the store, restores the FSM from its snapshot, and starts ticking, listening and replicating. */
  static async start<R>(init: RaftNodeInit<R>): Promise<RaftNode<R>> {
    let persisted = init.persisted ?? (await init.storage.load());
    const empty = persisted.hardState.term === 0 && persisted.entries.length === 0 && !persisted.snapshot;
    if (empty && init.bootstrap) {
      if (!findServer(init.bootstrap, init.id)) {
        throw new ConfigChangeError(`bootstrap configuration does not include this server (${init.id})`);
      }
      const boot = bootstrapState(init.bootstrap);
      await init.storage.persist({ hardState: boot.hardState, entries: boot.entries });
      persisted = boot;
    }
    const current = await init.storage.currentSnapshot();
    if (current) await init.fsm.restore(current.chunks());
    const rejected: Record<RejectReason, number> = { misaddressed: 0, 'stale-term': 0 };
    const rejectLog = init.logger.child({ component: 'raft', server: init.id });
    const onReject = (reason: RejectReason, m: Message) => {
      rejected[reason]++;
      rejectLog.debug({ reason, type: m.type, from: m.from, to: m.to, term: m.term }, 'message rejected');
    };
    const core = new RaftCore(
      { ...init.core, id: init.id, rng: init.rng ?? Math.random, onReject },
      persisted,
    );
    const node = new RaftNode(init, core, persisted.snapshot?.index ?? 0, rejected, persisted.hardState);
    await node.begin();
    return node;
  }

  private async begin(): Promise<void> {
    this.transport.onUnreachable = (id) => {
      this.core.reportUnreachable(id);
      this.schedule();
    };
    await this.transport.start({
      onMessage: (m, fromAddress) => this.onMessage(m, fromAddress),
      onSnapshot: (m, chunks) => this.onSnapshot(m, chunks),
    });
    this.running = true;
    this.ticker = setInterval(() => {
      try {
        this.core.tick();
      } catch (err) {
        this.fatal(err as Error);
        return;
      }
      this.schedule();
      // The threshold may have been crossed before the interval ran out, with no write since.
      this.maybeSnapshot();
    }, this.tickMs);
    const st = this.core.status();
    // A lone voter needs nobody's vote: elect it now instead of after an election timeout, so a
    // `-dev` or `-bootstrap` server serves writes as soon as it starts.
    const voterIds = st.configuration.servers.filter((s) => s.suffrage === 'voter').map((s) => s.id);
    if (voterIds.length === 1 && voterIds[0] === this.id) this.core.campaign();
    this.log.info(
      {
        term: st.term,
        lastIndex: st.lastIndex,
        commit: st.commitIndex,
        servers: st.configuration.servers.length,
      },
      'raft started',
    );
    this.schedule();
  }

  // -----------------------------------------------------------------------------------------------
  // Public API.

  /**
   * Replicates `data` and resolves with its log index and the FSM's result once applied here.
   * Fails fast with NotLeaderError on a follower. A RaftTimeoutError leaves the outcome unknown.
   */
  propose(data: Uint8Array): Promise<{ index: number; result: Result | undefined }> {
    if (this.stopped) return Promise.reject(new RaftStoppedError());
    let at: { index: number; term: number };
    try {
      at = this.core.propose(data);
    } catch (err) {
      return Promise.reject(err);
    }
    this.schedule();
    return this.waitForIndex(at.index, at.term);
  }

  /**
   * A linearizable read barrier (ReadIndex, thesis §6.4): resolves with an index once this server has
   * applied everything committed before the call; reading the FSM then sees every earlier write.
   */
  readIndex(): Promise<number> {
    if (this.stopped) return Promise.reject(new RaftStoppedError());
    const ctx = this.nextReadCtx++;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.reads.delete(ctx);
        reject(new RaftTimeoutError('read index timed out'));
      }, this.readTimeoutMs);
      this.reads.set(ctx, { resolve, reject, timer });
      this.core.readIndex(ctx);
      this.schedule();
    });
  }

  /** Adds a server that receives the log but does not vote (thesis §4.2.1). */
  async addNonvoter(id: ServerId, address: string): Promise<number> {
    return this.changeConfig(() => this.core.proposeConfigChange({ op: 'addNonvoter', id, address }));
  }

  /** Adds a voter: first as a non-voter, promoted once it has caught up, so quorum never waits on it. */
  async addVoter(id: ServerId, address: string, timeoutMs = 60_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    const existing = findServer(this.core.configuration(), id);
    if (existing?.suffrage === 'voter') return this.core.status().commitIndex;
    if (!existing) await this.addNonvoter(id, address);
    for (;;) {
      if (this.stopped) throw new RaftStoppedError();
      const st = this.core.status();
      if (st.role !== 'leader') throw new NotLeaderError(st.leader, this.addressOf(st.leader));
      const pr = st.progress.find((p) => p.id === id);
      if (pr && pr.match >= st.commitIndex) break;
      if (Date.now() > deadline) throw new RaftTimeoutError(`${id} did not catch up within ${timeoutMs} ms`);
      await this.waitApplied(this.fsmIndex + 1, this.tickMs);
    }
    return this.changeConfig(() => this.core.proposeConfigChange({ op: 'promote', id }));
  }

  /** Removes a server (voter or not). Removing the leader itself makes it step down once that commits. */
  async removeServer(id: ServerId): Promise<number> {
    return this.changeConfig(() => this.core.proposeConfigChange({ op: 'remove', id }));
  }

  /** Hands leadership to `to` (or the most caught-up voter) and resolves when it has taken over. */
  async transferLeadership(to?: ServerId): Promise<ServerId> {
    const st = this.core.status();
    if (st.role !== 'leader') throw new NotLeaderError(st.leader, this.addressOf(st.leader));
    const target =
      to ??
      st.progress
        .filter(
          (p) =>
            p.id !== this.id && st.configuration.servers.some((s) => s.id === p.id && s.suffrage === 'voter'),
        )
        .sort((a, b) => b.match - a.match)[0]?.id;
    if (!target) throw new ConfigChangeError('no other voter to transfer leadership to');
    this.core.transferLeadership(target);
    this.schedule();
    // The core abandons a transfer after one election timeout; the new leader needs up to two more.
    const timeoutMs = this.tickMs * this.electionTicks * 3;
    return new Promise<ServerId>((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new RaftTimeoutError(`leadership transfer to ${target} did not complete`));
      }, timeoutMs);
      const off = this.on('leader:changed', (e) => {
        const { leader } = e.detail;
        if (leader === '' || leader === this.id) return;
        clearTimeout(timer);
        off();
        if (leader === target) resolve(leader);
        else reject(new ConfigChangeError(`leadership went to ${leader}, not ${target}`));
      });
    });
  }

  /** True on a leader whose lease holds: no other leader can exist, so local reads are current. */
  hasLease(): boolean {
    return this.core.hasLease();
  }

  /** {@link status}'s role, leader and last contact, cheaply (the hot paths ask on every request). */
  brief(): { role: RaftNodeStatus['role']; leader: ServerId; lastContactMs: number } {
    const { role, leader } = this.core.brief();
    return {
      role,
      leader,
      lastContactMs: role === 'leader' ? 0 : this.lastContact < 0 ? -1 : Date.now() - this.lastContact,
    };
  }

  status(): RaftNodeStatus {
    const st = this.core.status();
    return {
      ...st,
      address: this.address,
      lastContactMs: st.role === 'leader' ? 0 : this.lastContact < 0 ? -1 : Date.now() - this.lastContact,
    };
  }

  /** Resolves once this server has applied `index` (or rejects after `timeoutMs`). */
  waitApplied(index: number, timeoutMs = this.proposalTimeoutMs): Promise<void> {
    if (this.fsmIndex >= index) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const entry = { index, resolve: () => resolve() };
      const timer = setTimeout(() => {
        const i = this.appliedWaiters.indexOf(entry);
        if (i >= 0) this.appliedWaiters.splice(i, 1);
        resolve();
      }, timeoutMs);
      entry.resolve = () => {
        clearTimeout(timer);
        resolve();
      };
      this.appliedWaiters.push(entry);
    });
  }

  /** Typed listener registration; returns a function that removes it. */
  on<K extends keyof RaftNodeEvents>(type: K, listener: (e: RaftNodeEvents[K]) => void): () => void {
    const l = (e: Event) => listener(e as RaftNodeEvents[K]);
    this.addEventListener(type, l);
    return () => this.removeEventListener(type, l);
  }

  /** Stops ticking and replicating, fails everything pending, closes the transport and the store. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.ticker);
    this.failAll(new RaftStoppedError());
    // Let an in-flight Ready finish its fsync before the store closes under it.
    while (this.running && this.loopScheduled) await new Promise((r) => setImmediate(r));
    await this.transport.close();
    await this.storage.close();
    this.log.info('raft stopped');
  }

  // -----------------------------------------------------------------------------------------------
  // Inbound.

  private onMessage(m: Message, fromAddress?: string): void {
    if (this.stopped) return;
    if (fromAddress) this.peerAddresses.set(m.from, fromAddress);
    if (m.type === 'append' || m.type === 'heartbeat') this.lastContact = Date.now();
    try {
      this.core.stepMessage(m);
    } catch (err) {
      // Only a broken invariant throws here (e.g. a "leader" rewriting committed entries): stop rather
      // than run on with a log that may have diverged.
      this.fatal(err as Error);
      return;
    }
    this.schedule();
  }

  private async onSnapshot(m: SnapshotMessage, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    if (this.stopped) throw new RaftStoppedError();
    const st = this.core.status();
    if (m.term < st.term || m.snapshot.index <= st.commitIndex) {
      // Nothing to install; the core's answer tells the leader where we are.
      this.core.stepMessage(m);
      this.schedule();
      return;
    }
    const sink = await this.storage.receiveSnapshot(m.snapshot);
    try {
      for await (const chunk of chunks) await sink.write(chunk);
      await sink.commit();
    } catch (err) {
      await sink.abort().catch(() => {});
      throw err;
    }
    this.lastContact = Date.now();
    this.core.stepMessage(m);
    this.schedule();
  }

  // -----------------------------------------------------------------------------------------------
  // The loop.

  private schedule(): void {
    if (this.stopped || !this.running) return;
    if (this.loopScheduled) {
      this.scheduleEarlySend();
      return;
    }
    this.loopScheduled = true;
    setImmediate(() => {
      this.loop()
        .catch((err: Error) => this.fatal(err))
        .finally(() => {
          this.loopScheduled = false;
          if (!this.stopped && this.core.hasReady()) this.schedule();
        });
    });
  }

  /**
   * While the loop waits for a write, a leader's new appends (and heartbeats) go out on the next
   * turn of the event loop instead of after that write: followers then write in parallel with the
   * leader, and a commit needs no fsync of the leader's (its own progress counts only what it has
   * written, so two followers suffice). Proposals arriving in one turn still share one append.
   */
  private scheduleEarlySend(): void {
    if (!this.persisting || this.earlySendScheduled) return;
    this.earlySendScheduled = true;
    setImmediate(() => {
      this.earlySendScheduled = false;
      if (this.stopped || !this.persisting) return;
      for (const m of this.core.takeEarlyMessages()) this.send(m);
      // Likewise what the followers' acks committed meanwhile is applied and answered now, not
      // after the leader's write: a slow fsync of the leader's then delays no writer whose entry
      // both followers hold. (With 3 servers and 16 writers on the bench machine, two thirds of the
      // slowest 1% of writes had waited on a leader fsync of 5-25 ms.)
      try {
        const early = this.core.takeEarlyCommitted();
        if (early.length === 0) return;
        for (const e of early) this.apply(e);
        this.afterApply();
      } catch (err) {
        // What the loop would do with an apply that throws; here it would be an uncaught exception.
        this.fatal(err as Error);
      }
    });
  }

  private async loop(): Promise<void> {
    while (!this.stopped && this.core.hasReady()) {
      const rd = this.core.ready();
      for (const m of rd.messages) if (sendableBeforePersist(m)) this.send(m);
      // Committed entries are already durable on a majority (a leader counts itself only for what
      // it has written, followers ack only what they have written), so they need not wait for this
      // Ready's own write: applying them first answers their writers one disk write sooner, as etcd
      // applies concurrently with its WAL write. A Ready that installs a snapshot carries none.
      for (const e of rd.committed) this.apply(e);
      this.persisting = true;
      try {
        await this.persist(rd);
      } finally {
        this.persisting = false;
      }
      if (rd.snapshot) {
        const snap = await this.storage.currentSnapshot();
        if (!snap || snap.meta.index !== rd.snapshot.index) {
          throw new RaftInvariantError(`snapshot ${rd.snapshot.index} is not current after install`);
        }
        await this.fsm.restore(snap.chunks());
        this.fsmIndex = rd.snapshot.index;
        this.lastSnapshotIndex = rd.snapshot.index;
        this.log.info({ index: rd.snapshot.index, term: rd.snapshot.term }, 'installed snapshot from leader');
      }
      for (const m of rd.messages) if (!sendableBeforePersist(m)) this.send(m);
      this.core.advance(rd);
      for (const rs of rd.readStates) this.onReadState(rs.readCtx, rs.index);
      this.afterApply();
      this.noticeLeader();
      this.maybeSnapshot();
    }
  }

  private async persist(rd: Ready): Promise<void> {
    if (!rd.snapshot && rd.entries.length === 0) {
      if (!rd.hardState) return;
      // Only the commit index moved: it is volatile in Raft (a majority holds every committed
      // entry, and a restarted server learns the commit index again from the leader), so it is not
      // worth a disk round trip before applying. It reaches the disk with the next batch that has
      // to be written anyway.
      const { term, vote } = this.persistedHardState;
      if (rd.hardState.term === term && rd.hardState.vote === vote) return;
    }
    await this.storage.persist({ snapshot: rd.snapshot, hardState: rd.hardState, entries: rd.entries });
    if (rd.hardState) this.persistedHardState = rd.hardState;
  }

  private send(m: Message): void {
    const address = this.addressOf(m.to);
    if (!address) {
      this.log.debug({ to: m.to, type: m.type }, 'no address for server; message dropped');
      return;
    }
    if (m.type === 'snapshot') {
      void this.sendSnapshot(address, m);
      return;
    }
    this.transport.send(address, m);
  }

  private async sendSnapshot(address: string, m: SnapshotMessage): Promise<void> {
    let ok = false;
    try {
      // The current snapshot may be newer than the one the core asked for; that covers it too.
      const snap = await this.storage.currentSnapshot();
      if (!snap || snap.meta.index < m.snapshot.index) throw new RaftInvariantError('no snapshot to send');
      this.log.info({ to: m.to, index: snap.meta.index, bytes: snap.size }, 'sending snapshot');
      await this.transport.sendSnapshot(address, { ...m, snapshot: snap.meta }, snap.chunks());
      ok = true;
    } catch (err) {
      this.log.warn({ to: m.to, err: (err as Error).message }, 'snapshot send failed');
    }
    if (!this.stopped) {
      this.core.reportSnapshot(m.to, ok);
      this.schedule();
    }
  }

  private apply(e: Entry): void {
    this.fsmIndex = e.index;
    let result: Result | undefined;
    if (e.type === 'normal') result = this.fsm.apply(e);
    const waiting = this.proposals.get(e.index);
    if (!waiting) return;
    this.proposals.delete(e.index);
    for (const p of waiting) {
      clearTimeout(p.timer);
      if (p.term === e.term) p.resolve({ index: e.index, result });
      else p.reject(new ProposalDroppedError(`index ${e.index} was taken by an entry of term ${e.term}`));
    }
  }

  private afterApply(): void {
    const applied = this.fsmIndex;
    this.dispatchEvent(new CustomEvent('applied', { detail: { index: applied } }));
    for (let i = this.readsAwaitingApply.length - 1; i >= 0; i--) {
      const r = this.readsAwaitingApply[i];
      if (r.index <= applied) {
        this.readsAwaitingApply.splice(i, 1);
        clearTimeout(r.waiter.timer);
        r.waiter.resolve(r.index);
      }
    }
    for (let i = this.appliedWaiters.length - 1; i >= 0; i--) {
      if (this.appliedWaiters[i].index <= applied) this.appliedWaiters.splice(i, 1)[0].resolve();
    }
  }

  private onReadState(ctx: number, index: number): void {
    const waiter = this.reads.get(ctx);
    if (!waiter) return;
    this.reads.delete(ctx);
    if (index === 0) {
      clearTimeout(waiter.timer);
      const st = this.core.status();
      waiter.reject(new NotLeaderError(st.leader, this.addressOf(st.leader)));
      return;
    }
    this.readsAwaitingApply.push({ index, waiter });
  }

  private noticeLeader(): void {
    const st = this.core.status();
    if (st.leader === this.lastLeader) return;
    this.lastLeader = st.leader;
    if (st.leader)
      this.log.info(
        { leader: st.leader, term: st.term },
        st.leader === this.id ? 'became leader' : 'following leader',
      );
    else this.log.info({ term: st.term }, 'no leader');
    this.dispatchEvent(new CustomEvent('leader:changed', { detail: { leader: st.leader, term: st.term } }));
  }

  private maybeSnapshot(): void {
    const applied = this.core.log.applied;
    if (this.snapshotting || applied - this.lastSnapshotIndex < this.snapshotThreshold) return;
    // A snapshot is of the state machine as it is, which must be the state at `applied`: not while
    // a Ready's committed entries are applied but the Ready not yet advanced (the ticker can come
    // then), nor while entries applied early wait for this server's own write.
    if (this.fsmIndex !== applied) return;
    if (Date.now() < this.snapshotNotBefore) return;
    if (this.core.log.pendingSnapshot) return;
    this.snapshotting = true;
    this.snapshotNotBefore = this.nextSnapshotTime();
    // The capture is synchronous, between two applies; serializing and writing it is not.
    const meta = this.core.snapshotMetaAt(applied);
    const capture = this.fsm.snapshot();
    void (async () => {
      const sink = await this.storage.createSnapshot(meta);
      try {
        for await (const chunk of capture.chunks()) await sink.write(chunk);
        await sink.commit();
      } catch (err) {
        await sink.abort().catch(() => {});
        throw err;
      }
      this.lastSnapshotIndex = meta.index;
      const compactTo = Math.max(0, meta.index - this.trailingLogs);
      this.core.snapshotTaken(meta, compactTo);
      await this.storage.compactLog(Math.min(compactTo, meta.index));
      this.log.info({ index: meta.index, compactedTo: compactTo }, 'snapshot taken');
    })()
      .catch((err: Error) => this.log.warn({ err: err.message }, 'snapshot failed'))
      .finally(() => {
        this.snapshotting = false;
      });
  }

  private nextSnapshotTime(): number {
    return Date.now() + this.snapshotIntervalMs * (1 + this.rng());
  }

  private fatal(err: Error): void {
    if (this.stopped) return;
    this.log.error({ err: err.message, stack: err.stack }, 'raft stopped on a fatal error');
    this.dispatchEvent(new CustomEvent('fatal', { detail: err }));
    void this.stop();
  }

  // -----------------------------------------------------------------------------------------------

  private waitForIndex(index: number, term: number): Promise<{ index: number; result: Result | undefined }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const list = this.proposals.get(index);
        const i = list?.indexOf(entry) ?? -1;
        if (list && i >= 0) list.splice(i, 1);
        reject(
          new RaftTimeoutError(`proposal at index ${index} not applied within ${this.proposalTimeoutMs} ms`),
        );
      }, this.proposalTimeoutMs);
      const entry: PendingProposal<Result> = { term, resolve, reject, timer };
      const list = this.proposals.get(index) ?? [];
      list.push(entry);
      this.proposals.set(index, list);
    });
  }

  private async changeConfig(propose: () => { index: number; term: number }): Promise<number> {
    // "In progress" and "leader has not committed in its term yet" clear up by themselves shortly.
    const deadline = Date.now() + this.tickMs * 50;
    for (;;) {
      if (this.stopped) throw new RaftStoppedError();
      try {
        const at = propose();
        this.schedule();
        await this.waitForIndex(at.index, at.term);
        return at.index;
      } catch (err) {
        const retryable = err instanceof ConfigChangeError && err.retryable;
        if (!retryable || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, this.tickMs));
      }
    }
  }

  private addressOf(id: ServerId): string {
    if (!id) return '';
    return findServer(this.core.configuration(), id)?.address ?? this.peerAddresses.get(id) ?? '';
  }

  private failAll(err: Error): void {
    for (const list of this.proposals.values()) {
      for (const p of list) {
        clearTimeout(p.timer);
        p.reject(err);
      }
    }
    this.proposals.clear();
    for (const w of this.reads.values()) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.reads.clear();
    for (const r of this.readsAwaitingApply.splice(0)) {
      clearTimeout(r.waiter.timer);
      r.waiter.reject(err);
    }
    for (const w of this.appliedWaiters.splice(0)) w.resolve();
  }
}

export { NotLeaderError, ProposalDroppedError, TransferInProgressError };
