import {
  applyChange,
  type ConfigChange,
  decodeConfiguration,
  encodeConfiguration,
  findServer,
  hasQuorum,
  isVoter,
  quorumIndex,
  voters,
} from './configuration.ts';
import {
  ConfigChangeError,
  NotLeaderError,
  ProposalDroppedError,
  RaftInvariantError,
  TransferInProgressError,
} from './errors.ts';
import { RaftLog } from './log.ts';
import { Progress } from './progress.ts';
import type { PersistedState } from './storage.ts';
import {
  type AppendMessage,
  type Configuration,
  type Entry,
  entrySize,
  type HardState,
  type HeartbeatMessage,
  type Message,
  type ReadState,
  type Ready,
  type Role,
  type ServerId,
  type SnapshotMessage,
  type SnapshotMeta,
  sendableBeforePersist,
  type VoteMessage,
} from './types.ts';

export interface RaftCoreOptions {
  id: ServerId;
  /** Ticks without hearing from a leader before campaigning; randomized in [n, 2n). @default 10 */
  electionTicks?: number;
  /** Ticks between the leader's heartbeats; must be well below electionTicks. @default 1 */
  heartbeatTicks?: number;
  /** Campaign only after a PreVote round wins (thesis §9.6): a rejoining node cannot bump terms. @default true */
  preVote?: boolean;
  /**
   * Leaders step down when they have not heard from a quorum for an election timeout, and
   * followers that heard from a leader within one ignore vote requests (thesis §6.2, §4.2.3). @default true
   */
  checkQuorum?: boolean;
  /**
   * 'safe': ReadIndex confirms leadership with a heartbeat round (thesis §6.4).
   * 'lease': the leader answers from its commit index while a quorum answered a heartbeat within the last
   * 4/5 of an election timeout (needs CheckQuorum; assumes clocks drift less than that margin).
   * @default 'safe'
   */
  readMode?: 'safe' | 'lease';
  /** Upper bound of one append message's entries. @default 1 MiB */
  maxMsgBytes?: number;
  /** Appends in flight per follower. @default 256 */
  maxInflightMsgs?: number;
  /** Bytes of appends in flight per follower. @default 16 MiB */
  maxInflightBytes?: number;
  /** Proposals are refused while this many bytes are appended but uncommitted. @default 64 MiB */
  maxUncommittedBytes?: number;
  /** Bytes of committed entries handed out per Ready. @default 4 MiB */
  maxApplyBytes?: number;
  /** ReadIndex requests waiting for confirmation. @default 65536 */
  maxPendingReads?: number;
  /** Uniform in [0, 1): the only source of chance, seeded by whoever owns the core. */
  rng: () => number;
  /** Told of every message the core refuses outright (misaddressed, stale term), for logs and counters. */
  onReject?: (reason: RejectReason, m: Message) => void;
}

export type RejectReason = 'misaddressed' | 'stale-term';

type Resolved = Required<Omit<RaftCoreOptions, 'rng' | 'onReject'>> &
  Pick<RaftCoreOptions, 'rng' | 'onReject'>;

const DEFAULTS = {
  electionTicks: 10,
  heartbeatTicks: 1,
  preVote: true,
  checkQuorum: true,
  readMode: 'safe',
  maxMsgBytes: 1 << 20,
  maxInflightMsgs: 256,
  maxInflightBytes: 16 << 20,
  maxUncommittedBytes: 64 << 20,
  maxApplyBytes: 4 << 20,
  maxPendingReads: 65_536,
} as const;

interface PendingRead {
  /** Who asked: this server, or a follower that forwarded the request. */
  from: ServerId;
  readCtx: number;
  index: number;
  /** The heartbeat round that confirms it. */
  round: number;
  acks: Set<ServerId>;
}

export interface ProgressStatus {
  id: ServerId;
  match: number;
  next: number;
  state: string;
  recentActive: boolean;
}

export interface CoreStatus {
  id: ServerId;
  role: Role;
  term: number;
  vote: ServerId;
  leader: ServerId;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  lastTerm: number;
  snapshotIndex: number;
  configuration: Configuration;
  /** Index of the entry that set the latest configuration (0 = from a snapshot or bootstrap). */
  configurationIndex: number;
  leadTransferee: ServerId;
  /** Only on the leader. */
  progress: ProgressStatus[];
}

type StepFn = (m: Message) => void;

/**
 * The Raft protocol as a deterministic state machine (etcd-io/raft's shape): messages, ticks and
 * proposals go in; {@link ready} hands out what to persist, send and apply. No clocks, sockets,
 * disks or randomness beyond the injected `rng`.
 */
export class RaftCore {
  readonly id: ServerId;
  private readonly opts: Resolved;

  term = 0;
  vote: ServerId = '';
  lead: ServerId = '';
  role: Role = 'follower';
  readonly log: RaftLog;

  /** The latest configuration in the log (uncommitted included) and the entries that set it. */
  private baseConfig: Configuration;
  private configHistory: { index: number; config: Configuration }[] = [];
  /** The last snapshot known durable, what lagging followers are sent. */
  private snapshotMeta: SnapshotMeta | null;

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private votes = new Map<ServerId, boolean>();

  // Leader state.
  private progress = new Map<ServerId, Progress>();
  private leadTransferee: ServerId = '';
  private pendingConfigIndex = 0;
  private uncommittedBytes = 0;
  private broadcastPending = false;
  private pendingReads: PendingRead[] = [];
  /** Reads that arrived before this leader committed an entry of its term (§8: it may not know the commit index yet). */
  private readsAwaitingCommit: { from: ServerId; readCtx: number }[] = [];
  /** Heartbeat rounds: every heartbeat broadcast gets the next number; answers echo it. */
  private readRound = 1;
  private readRoundScheduled = false;
  /** Local tick at which recent rounds were sent (a ring indexed by round), for the leader lease. */
  private readonly roundSentAt = new Array<{ round: number; tick: number }>(64);
  /** Per server: the send tick of the latest round it answered. */
  private readonly ackedTick = new Map<ServerId, number>();
  /** Set once this leader sent TimeoutNow: the target's votes override leases, so ours is void. */
  private leaseBroken = false;
  /** Ticks since this core started: the leader lease's clock. */
  private ticks = 0;

  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  private prevHardState: HardState;

  private step: StepFn = (m) => this.stepFollower(m);
  private tickFn: () => void = () => this.tickElection();

  constructor(options: RaftCoreOptions, persisted: PersistedState) {
    this.opts = { ...DEFAULTS, ...options };
    this.id = options.id;
    if (this.opts.heartbeatTicks >= this.opts.electionTicks) {
      throw new RangeError('heartbeatTicks must be smaller than electionTicks');
    }
    this.log = RaftLog.fromStorage(persisted.snapshot, persisted.entries, persisted.hardState.commit);
    this.snapshotMeta = persisted.snapshot;
    this.baseConfig = persisted.snapshot?.config ?? { servers: [] };
    for (const e of persisted.entries) {
      if (e.type === 'config')
        this.configHistory.push({ index: e.index, config: decodeConfiguration(e.data) });
    }
    this.term = persisted.hardState.term;
    this.vote = persisted.hardState.vote;
    this.prevHardState = { ...persisted.hardState, commit: this.log.committed };
    this.becomeFollower(this.term, '');
  }

  // ---------------------------------------------------------------------------------------------
  // Inputs.

  /** Advances logical time by one tick. */
  tick(): void {
    this.ticks++;
    this.tickFn();
  }

  /** Feeds one message received from the network. Malformed or misaddressed ones are dropped. */
  stepMessage(m: Message): void {
    if (m.to !== this.id || m.from === this.id) {
      this.opts.onReject?.('misaddressed', m);
      return;
    }
    if (m.term > this.term) {
      if (m.type === 'vote' && this.inLease() && !m.transfer) {
        // A leader we heard from recently is alive: a vote request is from a disruptive server (§4.2.3).
        return;
      }
      if (m.type === 'vote' && m.pre) {
        // A PreVote carries the term its sender would campaign at; nobody changes term for it.
      } else if (m.type === 'voteResp' && m.pre && m.granted) {
        // A granted PreVote answer echoes our future term; we move to it only by campaigning.
      } else {
        const fromLeader = m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot';
        this.becomeFollower(m.term, fromLeader ? m.from : '');
      }
    } else if (m.term < this.term) {
      this.opts.onReject?.('stale-term', m);
      if (m.type === 'append' || m.type === 'heartbeat') {
        // Figure 2: answer with our term so a stale leader (cut off, or removed) learns it and steps
        // down; under PreVote it is also how a node that raised its term gets back in (etcd raft.go).
        this.send({
          type: 'appendResp',
          from: this.id,
          to: m.from,
          term: this.term,
          index: 0,
          reject: true,
          hintIndex: 0,
          hintTerm: 0,
        });
      } else if (m.type === 'vote') {
        // Figure 2: a stale candidate (pre or real) learns our term from the refusal.
        this.send({
          type: 'voteResp',
          from: this.id,
          to: m.from,
          term: this.term,
          pre: m.pre,
          granted: false,
        });
      }
      return;
    }

    if (m.type === 'vote') {
      this.handleVote(m);
      return;
    }
    this.step(m);
  }

  /**
   * Appends a command to the log; the leader only. Returns where it will be if it commits.
   * Throws NotLeaderError, TransferInProgressError, or ProposalDroppedError (backpressure).
   */
  propose(data: Uint8Array): { index: number; term: number } {
    this.checkCanPropose();
    const size = data.byteLength + 24;
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + size > this.opts.maxUncommittedBytes) {
      throw new ProposalDroppedError('too many uncommitted bytes; retry later');
    }
    return this.appendOwn('normal', data);
  }

  /** Proposes a single-server membership change; the leader only, one at a time (thesis §4.1). */
  proposeConfigChange(change: ConfigChange): { index: number; term: number } {
    this.checkCanPropose();
    if (this.pendingConfigIndex > this.log.committed) {
      throw new ConfigChangeError('a configuration change is already in progress', true);
    }
    if (this.log.term(this.log.committed) !== this.term) {
      // Thesis §4.1 erratum: a new leader must commit an entry of its own term before changing membership.
      throw new ConfigChangeError(
        'the leader has not yet committed an entry in its term; retry shortly',
        true,
      );
    }
    const next = applyChange(this.configuration(), change);
    const at = this.appendOwn('config', encodeConfiguration(next));
    this.pendingConfigIndex = at.index;
    return at;
  }

  /** Hands leadership to `to` once its log is current (thesis §3.10). The leader only. */
  transferLeadership(to: ServerId): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.lead);
    if (to === this.id) return;
    if (!isVoter(this.configuration(), to)) throw new ConfigChangeError(`${to} is not a voter`);
    if (this.leadTransferee === to) return;
    this.leadTransferee = to;
    // The transfer must finish within one election timeout, or it is abandoned (tickHeartbeat).
    this.electionElapsed = 0;
    const pr = this.progress.get(to)!;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to);
  }

  /**
   * Asks for a linearizable read point (thesis §6.4). The answer arrives as a ReadState with the same
   * `readCtx` in a later Ready: once applied >= its index, a read reflects every earlier commit.
   * `readCtx` must be unique among this server's outstanding reads.
   */
  readIndex(readCtx: number): void {
    if (this.role === 'leader') {
      this.leaderReadIndex(this.id, readCtx);
    } else if (this.lead !== '') {
      this.send({ type: 'readIndex', from: this.id, to: this.lead, term: this.term, readCtx });
    } else {
      this.readStates.push({ readCtx, index: 0 });
    }
  }

  /** Starts an election now (used to bootstrap a single server quickly, and by tests). */
  campaign(): void {
    if (this.role === 'leader' || !this.promotable()) return;
    if (this.opts.preVote) this.becomePreCandidate();
    else this.becomeCandidate();
  }

  /** The transport could not reach `id`: stop pipelining to it until it answers again. */
  reportUnreachable(id: ServerId): void {
    const pr = this.progress.get(id);
    if (this.role === 'leader' && pr && pr.state === 'replicate') pr.becomeProbe();
  }

  /** The snapshot stream to `id` ended. */
  reportSnapshot(id: ServerId, ok: boolean): void {
    const pr = this.progress.get(id);
    if (this.role !== 'leader' || !pr || pr.state !== 'snapshot') return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for the follower's answer (or the next heartbeat's) before probing again.
    pr.probeSent = true;
  }

  /** The driver durably stored a snapshot of its FSM at `meta.index`; drop log entries up to `compactTo`. */
  snapshotTaken(meta: SnapshotMeta, compactTo: number): void {
    if (this.snapshotMeta && meta.index <= this.snapshotMeta.index) return;
    this.snapshotMeta = meta;
    const upTo = Math.min(compactTo, meta.index);
    const term = this.log.term(upTo);
    if (upTo > this.log.snapshotIndex && term !== undefined) {
      this.baseConfig = this.configAt(upTo);
      this.configHistory = this.configHistory.filter((h) => h.index > upTo);
      this.log.compact(upTo, term);
    }
  }

  /** Snapshot metadata for the FSM state after applying `index` (index <= applied). */
  snapshotMetaAt(index: number): SnapshotMeta {
    const term = this.log.term(index);
    if (term === undefined || index > this.log.applied) {
      throw new RaftInvariantError(`no snapshot possible at index ${index}`);
    }
    return { index, term, config: this.configAt(index) };
  }

  // ---------------------------------------------------------------------------------------------
  // Outputs.

  hasReady(): boolean {
    this.flushBroadcast();
    return (
      this.msgs.length > 0 ||
      this.readStates.length > 0 ||
      this.log.pendingSnapshot !== null ||
      this.log.stableNext <= this.log.lastIndex() ||
      this.log.hasNextCommitted() ||
      !this.sameHardState(this.hardState(), this.prevHardState)
    );
  }

  /**
   * The messages a leader may send before anything is written (appends, heartbeats, snapshots,
   * TimeoutNow: see sendableBeforePersist), taken out of the next Ready. A driver that is still
   * writing the previous Ready sends these at once, so followers get new entries without waiting
   * for the leader's own fsync. Empty unless leader.
   */
  takeEarlyMessages(): Message[] {
    if (this.role !== 'leader') return [];
    this.flushBroadcast();
    if (this.msgs.length === 0) return [];
    const early: Message[] = [];
    const rest: Message[] = [];
    for (const m of this.msgs) (sendableBeforePersist(m) ? early : rest).push(m);
    this.msgs = rest;
    return early;
  }

  /**
   * Entries committed since the last Ready, taken while the driver still writes that Ready: a
   * leader commits on its followers' acks alone when both wrote an entry before it did (thesis
   * §10.2.1), and those writers need not wait for the leader's own fsync to get their answer. The
   * driver applies them at once, in order, before the next advance(); the next Ready does not
   * carry them again.
   */
  takeEarlyCommitted(): Entry[] {
    return this.log.nextCommitted(this.opts.maxApplyBytes);
  }

  /** The next batch of work; see {@link Ready} for what the driver must do with it, then call advance(). */
  ready(): Ready {
    this.flushBroadcast();
    const hs = this.hardState();
    const rd: Ready = {
      hardState: this.sameHardState(hs, this.prevHardState) ? null : hs,
      entries: this.log.unstableEntries(),
      snapshot: this.log.pendingSnapshot,
      messages: this.msgs,
      committed: this.log.nextCommitted(this.opts.maxApplyBytes),
      readStates: this.readStates,
    };
    this.msgs = [];
    this.readStates = [];
    return rd;
  }

  /** The driver finished `rd`: its entries and hard state are durable and its committed entries applied. */
  advance(rd: Ready): void {
    if (rd.hardState) this.prevHardState = rd.hardState;
    if (rd.snapshot) {
      this.log.appliedSnapshot(rd.snapshot);
      if (!this.snapshotMeta || rd.snapshot.index > this.snapshotMeta.index) this.snapshotMeta = rd.snapshot;
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1];
      this.log.stableTo(last.index, last.term);
      if (this.role === 'leader') {
        // The leader counts itself toward commitment only for what it has made durable.
        const self = this.progress.get(this.id);
        if (self && this.log.matchTerm(last.index, last.term) && self.maybeUpdate(last.index)) {
          if (this.maybeCommit()) this.broadcastPending = true;
        }
      }
    }
    // What rd carried and what was taken early meanwhile (takeEarlyCommitted), but only as far as
    // this server has written it: `applied` is where a snapshot may be taken, and the log this
    // server keeps must continue that snapshot. Entries applied early beyond it count at a later
    // advance.
    const upTo = Math.min(this.log.handed, this.log.stableNext - 1);
    if (upTo > this.log.applied) this.log.appliedTo(upTo);
  }

  /** Role and leader only: what the read and write paths check on every request, without copies. */
  brief(): { role: Role; leader: ServerId } {
    return { role: this.role, leader: this.lead };
  }

  status(): CoreStatus {
    const config = this.configuration();
    const lastConfig = this.configHistory[this.configHistory.length - 1];
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.lead,
      commitIndex: this.log.committed,
      appliedIndex: this.log.applied,
      lastIndex: this.log.lastIndex(),
      lastTerm: this.log.lastTerm(),
      snapshotIndex: this.log.snapshotIndex,
      configuration: config,
      configurationIndex: lastConfig?.index ?? 0,
      leadTransferee: this.leadTransferee,
      progress:
        this.role === 'leader'
          ? [...this.progress.entries()].map(([id, p]) => ({
              id,
              match: p.match,
              next: p.next,
              state: p.state,
              recentActive: p.recentActive,
            }))
          : [],
    };
  }

  /** The latest configuration in the log, committed or not (thesis §4.1: it takes effect on append). */
  configuration(): Configuration {
    return this.configHistory.length > 0
      ? this.configHistory[this.configHistory.length - 1].config
      : this.baseConfig;
  }

  configAt(index: number): Configuration {
    let c = this.baseConfig;
    for (const h of this.configHistory) {
      if (h.index > index) break;
      c = h.config;
    }
    return c;
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  // ---------------------------------------------------------------------------------------------
  // Roles.

  private becomeFollower(term: number, lead: ServerId): void {
    this.reset(term);
    this.role = 'follower';
    this.lead = lead;
    this.step = (m) => this.stepFollower(m);
    this.tickFn = () => this.tickElection();
  }

  private becomePreCandidate(): void {
    // Neither term nor vote change: a PreVote that fails leaves no trace (thesis §9.6).
    this.role = 'precandidate';
    this.lead = '';
    this.votes = new Map();
    this.step = (m) => this.stepCandidate(m);
    this.tickFn = () => this.tickElection();
    this.electionElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.requestVotes(true, false);
  }

  private becomeCandidate(transfer = false): void {
    this.reset(this.term + 1);
    this.role = 'candidate';
    this.vote = this.id;
    this.step = (m) => this.stepCandidate(m);
    this.tickFn = () => this.tickElection();
    this.requestVotes(false, transfer);
  }

  private becomeLeader(): void {
    this.reset(this.term);
    this.role = 'leader';
    this.lead = this.id;
    this.leaseBroken = false;
    this.ackedTick.clear();
    this.step = (m) => this.stepLeader(m);
    this.tickFn = () => this.tickHeartbeat();
    for (const [id, pr] of this.progress) {
      pr.recentActive = true;
      if (id === this.id) {
        pr.match = this.log.stableNext - 1;
        pr.becomeReplicate();
      }
    }
    // A config entry still uncommitted from an earlier term counts as pending until this term commits.
    this.pendingConfigIndex = this.log.lastIndex();
    // §8: a no-op entry commits this term's first entry, and with it everything before it.
    this.appendOwn('noop', new Uint8Array(0));
  }

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = '';
    }
    this.lead = '';
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.votes = new Map();
    this.leadTransferee = '';
    this.uncommittedBytes = 0;
    this.broadcastPending = false;
    this.failPendingReads();
    this.resetProgress();
  }

  private resetProgress(): void {
    const next = this.log.lastIndex() + 1;
    this.progress = new Map(
      this.configuration().servers.map((srv) => [srv.id, new Progress(next, this.opts)]),
    );
  }

  private resetRandomizedElectionTimeout(): void {
    const et = this.opts.electionTicks;
    this.randomizedElectionTimeout = et + Math.floor(this.opts.rng() * et);
  }

  // ---------------------------------------------------------------------------------------------
  // Ticks.

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.campaign();
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.opts.electionTicks) {
      this.electionElapsed = 0;
      if (this.opts.checkQuorum) {
        if (!this.quorumActive()) {
          // §6.2: a leader cut off from a quorum steps down instead of serving stale reads forever.
          this.becomeFollower(this.term, '');
          return;
        }
        for (const [id, pr] of this.progress) pr.recentActive = id === this.id;
      }
      if (this.leadTransferee !== '') this.leadTransferee = '';
    }
    if (this.role !== 'leader') return;
    if (this.heartbeatElapsed >= this.opts.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Elections.

  /**
   * Whether this server may campaign: a voter in its latest configuration, or in the committed one
   * while a change that demotes or removes it is still uncommitted; it may be needed to commit that
   * change (thesis §4.2.2), e.g. when its log is the most up to date.
   */
  private promotable(): boolean {
    if (this.log.pendingSnapshot !== null) return false;
    return isVoter(this.configuration(), this.id) || isVoter(this.configAt(this.log.committed), this.id);
  }

  private inLease(): boolean {
    return this.opts.checkQuorum && this.lead !== '' && this.electionElapsed < this.opts.electionTicks;
  }

  private requestVotes(pre: boolean, transfer: boolean): void {
    const term = pre ? this.term + 1 : this.term;
    const ids = voters(this.configuration()).sort();
    // Our own vote first: a single-voter cluster wins at once.
    this.recordVote(this.id, true, pre);
    if (this.role !== (pre ? 'precandidate' : 'candidate')) return;
    for (const id of ids) {
      if (id === this.id) continue;
      this.send({
        type: 'vote',
        from: this.id,
        to: id,
        term,
        pre,
        lastIndex: this.log.lastIndex(),
        lastTerm: this.log.lastTerm(),
        transfer,
      });
    }
  }

  private handleVote(m: VoteMessage): void {
    // Thesis §4.1: servers answer RPCs without consulting their configuration. A lagging voter's
    // configuration can be stale, and refusing candidates it does not know as voters deadlocks
    // elections (the simulator found such seeds). Removed servers are kept from disrupting the
    // cluster by PreVote and the leader lease instead (§4.2.3: the check in stepMessage).
    const canVote =
      this.vote === m.from || (this.vote === '' && this.lead === '') || (m.pre && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.lastIndex, m.lastTerm)) {
      // A granted PreVote answers with the term asked about, so the candidate can tell it from a stale one.
      this.send({ type: 'voteResp', from: this.id, to: m.from, term: m.term, pre: m.pre, granted: true });
      if (!m.pre) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: 'voteResp', from: this.id, to: m.from, term: this.term, pre: m.pre, granted: false });
    }
  }

  private recordVote(from: ServerId, granted: boolean, pre: boolean): void {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    const ids = voters(this.configuration());
    if (hasQuorum(ids, (id) => this.votes.get(id) === true)) {
      if (pre) this.becomeCandidate();
      else this.becomeLeader();
    } else if (hasQuorum(ids, (id) => this.votes.get(id) === false)) {
      this.becomeFollower(this.term, '');
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Per-role message handling.

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'append':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        break;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        break;
      case 'snapshot':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        break;
      case 'timeoutNow':
        // Leadership transfer: campaign at once, skipping PreVote, and voters skip their lease check.
        if (this.promotable()) this.becomeCandidate(true);
        break;
      case 'readIndexResp':
        this.readStates.push({ readCtx: m.readCtx, index: m.index });
        break;
      case 'readIndex':
        // Forwarded to us by mistake (we are not the leader): refuse so the asker retries.
        this.answerRead(m.from, m.readCtx, 0);
        break;
      default:
        break;
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        // A leader of our term exists (§5.2): follow it.
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        break;
      case 'voteResp':
        // A granted PreVote counts only for the round at hand: it must name the term we would move to.
        if (m.pre !== (this.role === 'precandidate')) break;
        if (m.pre && m.granted && m.term !== this.term + 1) break;
        this.recordVote(m.from, m.granted, m.pre);
        break;
      case 'readIndex':
        this.answerRead(m.from, m.readCtx, 0);
        break;
      default:
        break;
    }
  }

  private stepLeader(m: Message): void {
    const pr = this.progress.get(m.from);
    switch (m.type) {
      case 'appendResp': {
        if (!pr) return;
        pr.recentActive = true;
        if (m.reject) {
          const probeFrom =
            m.hintTerm > 0 ? this.log.findConflictByTerm(m.hintIndex, m.hintTerm) : m.hintIndex;
          if (pr.maybeDecrTo(m.index, probeFrom)) {
            if (pr.state === 'replicate') pr.becomeProbe();
            this.sendAppend(m.from);
          }
          return;
        }
        const wasPaused = pr.isPaused();
        if (!pr.maybeUpdate(m.index)) {
          if (wasPaused && !pr.isPaused()) this.sendAppendsWhileRoom(m.from);
          return;
        }
        if (pr.state === 'probe') pr.becomeReplicate();
        else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) {
          pr.becomeProbe();
          pr.becomeReplicate();
        }
        if (this.maybeCommit()) {
          this.broadcastPending = true;
        } else {
          this.sendAppendsWhileRoom(m.from);
        }
        if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
        return;
      }
      case 'heartbeatResp': {
        if (!pr) return;
        pr.recentActive = true;
        // The follower is alive: an append lost on the way must not stall it forever. Un-pause a probe,
        // free a slot of a full pipeline, and if it lags, send an append even with nothing new in it:
        // a lost entry makes the follower reject it, which puts it back into probe (etcd does the same).
        pr.onHeartbeatResp();
        if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, true);
        if (m.readCtx > 0) {
          const sent = this.roundSentAt[m.readCtx % this.roundSentAt.length];
          if (sent?.round === m.readCtx && sent.tick > (this.ackedTick.get(m.from) ?? -1)) {
            this.ackedTick.set(m.from, sent.tick);
          }
          this.ackRead(m.from, m.readCtx);
        }
        return;
      }
      case 'readIndex':
        this.leaderReadIndex(m.from, m.readCtx);
        return;
      default:
        return;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Replication: follower side.

  private handleAppend(m: AppendMessage): void {
    const reply = (index: number, reject: boolean, hintIndex = 0, hintTerm = 0) =>
      this.send({
        type: 'appendResp',
        from: this.id,
        to: m.from,
        term: this.term,
        index,
        reject,
        hintIndex,
        hintTerm,
      });
    if (m.prevIndex < this.log.committed) {
      reply(this.log.committed, false);
      return;
    }
    const lastNew = this.log.maybeAppend(m.prevIndex, m.prevTerm, m.entries, (from) => this.onTruncate(from));
    if (lastNew >= 0) {
      for (const e of m.entries) {
        if (e.type === 'config' && e.index > this.log.snapshotIndex) this.recordConfig(e);
      }
      this.log.commitTo(Math.min(m.commit, lastNew));
      reply(lastNew, false);
      return;
    }
    // Tell the leader where our log may agree with its, skipping whole terms (etcd's fast backtracking).
    const hintIndex = this.log.findConflictByTerm(Math.min(m.prevIndex, this.log.lastIndex()), m.prevTerm);
    reply(m.prevIndex, true, hintIndex, this.log.term(hintIndex) ?? 0);
  }

  private handleHeartbeat(m: HeartbeatMessage): void {
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send({ type: 'heartbeatResp', from: this.id, to: m.from, term: this.term, readCtx: m.readCtx });
  }

  private handleSnapshot(m: SnapshotMessage): void {
    const s = m.snapshot;
    const reply = (index: number) =>
      this.send({
        type: 'appendResp',
        from: this.id,
        to: m.from,
        term: this.term,
        index,
        reject: false,
        hintIndex: 0,
        hintTerm: 0,
      });
    if (s.index <= this.log.committed) {
      reply(this.log.committed);
      return;
    }
    if (this.log.matchTerm(s.index, s.term)) {
      // We already hold everything it covers: just learn that it is committed (§7).
      this.log.commitTo(s.index);
      reply(s.index);
      return;
    }
    this.log.restore(s);
    this.baseConfig = s.config;
    this.configHistory = [];
    reply(s.index);
  }

  private onTruncate(from: number): void {
    const before = this.configHistory.length;
    this.configHistory = this.configHistory.filter((h) => h.index < from);
    if (this.configHistory.length !== before) this.syncProgressWithConfig();
  }

  private recordConfig(e: Entry): void {
    const last = this.configHistory[this.configHistory.length - 1];
    if (last && last.index >= e.index) return;
    this.configHistory.push({ index: e.index, config: decodeConfiguration(e.data) });
    this.syncProgressWithConfig();
  }

  // ---------------------------------------------------------------------------------------------
  // Replication: leader side.

  private checkCanPropose(): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.lead, this.addressOf(this.lead));
    if (this.leadTransferee !== '') throw new TransferInProgressError();
  }

  private appendOwn(type: Entry['type'], data: Uint8Array): { index: number; term: number } {
    const e: Entry = { index: this.log.lastIndex() + 1, term: this.term, type, data };
    this.log.append([e]);
    this.uncommittedBytes += entrySize(e);
    if (type === 'config') this.recordConfig(e);
    this.broadcastPending = true;
    // A single voter commits on its own fsync: advance() handles that.
    return { index: e.index, term: e.term };
  }

  /** Proposals arriving between two Ready batches go out together: this is the batching. */
  private flushBroadcast(): void {
    if (this.role === 'leader' && this.broadcastPending) {
      this.broadcastPending = false;
      for (const id of this.peerIds()) this.sendAppendsWhileRoom(id);
    }
    if (this.role === 'leader' && this.readRoundScheduled) {
      this.readRoundScheduled = false;
      this.broadcastHeartbeat();
    }
  }

  private peerIds(): ServerId[] {
    return [...this.progress.keys()].filter((id) => id !== this.id).sort();
  }

  /** In replicate state, keep sending until flow control pauses or nothing is left. */
  private sendAppendsWhileRoom(to: ServerId): void {
    const pr = this.progress.get(to);
    if (!pr) return;
    let guard = this.opts.maxInflightMsgs + 1;
    while (
      guard-- > 0 &&
      this.sendAppend(to) &&
      pr.state === 'replicate' &&
      pr.next <= this.log.lastIndex()
    ) {}
  }

  /** Sends the next append (or a snapshot) to `to`; returns whether anything was sent. */
  private sendAppend(to: ServerId, sendIfEmpty = false): boolean {
    const pr = this.progress.get(to);
    if (!pr || to === this.id || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const entries = this.log.slice(pr.next, this.log.lastIndex() + 1, this.opts.maxMsgBytes);
    if (prevTerm === undefined || entries === undefined) return this.sendSnapshot(to, pr);
    if (entries.length === 0 && !sendIfEmpty && pr.state === 'replicate') {
      // Nothing new; commit progress travels in heartbeats.
      return false;
    }
    const bytes = entries.reduce((n, e) => n + entrySize(e), 0);
    pr.sentEntries(entries.length > 0 ? entries[entries.length - 1].index : prevIndex, entries.length, bytes);
    this.send({
      type: 'append',
      from: this.id,
      to,
      term: this.term,
      prevIndex,
      prevTerm,
      entries,
      commit: this.log.committed,
    });
    return true;
  }

  private sendSnapshot(to: ServerId, pr: Progress): boolean {
    const meta = this.snapshotMeta;
    if (!meta || !pr.recentActive) return false;
    pr.becomeSnapshot(meta.index);
    this.send({ type: 'snapshot', from: this.id, to, term: this.term, snapshot: meta });
    return true;
  }

  private sendTimeoutNow(to: ServerId): void {
    this.leaseBroken = true;
    this.send({ type: 'timeoutNow', from: this.id, to, term: this.term });
  }

  private broadcastHeartbeat(): void {
    const readCtx = this.readRound++;
    this.roundSentAt[readCtx % this.roundSentAt.length] = { round: readCtx, tick: this.ticks };
    for (const id of this.peerIds()) {
      const pr = this.progress.get(id)!;
      this.send({
        type: 'heartbeat',
        from: this.id,
        to: id,
        term: this.term,
        commit: Math.min(pr.match, this.log.committed),
        readCtx,
      });
    }
  }

  /** Commits the highest index a quorum has durably matched, if it is of the current term (§5.4.2). */
  private maybeCommit(): boolean {
    const ids = voters(this.configuration());
    const q = quorumIndex(ids, (id) => this.progress.get(id)?.match ?? 0);
    if (q <= this.log.committed || this.log.term(q) !== this.term) return false;
    const old = this.log.committed;
    this.log.commitTo(q);
    this.uncommittedBytes = Math.max(0, this.uncommittedBytes - this.log.bytesBetween(old, q));
    if (this.log.term(old) !== this.term) this.releaseReadsAwaitingCommit();
    if (!isVoter(this.configAt(q), this.id) && this.pendingConfigIndex <= q) {
      // Thesis §4.2.2: a leader removed from (or demoted in) the configuration steps down once that commits.
      this.becomeFollower(this.term, '');
      return false;
    }
    return true;
  }

  private syncProgressWithConfig(): void {
    const config = this.configuration();
    const next = this.log.lastIndex() + 1;
    for (const s of config.servers) {
      if (!this.progress.has(s.id)) {
        const pr = new Progress(next, this.opts);
        pr.recentActive = true;
        if (s.id === this.id) pr.match = this.log.stableNext - 1;
        this.progress.set(s.id, pr);
      }
    }
    for (const id of [...this.progress.keys()]) {
      if (!findServer(config, id)) this.progress.delete(id);
    }
    if (this.role === 'leader') {
      if (this.leadTransferee && !this.progress.has(this.leadTransferee)) this.leadTransferee = '';
      this.broadcastPending = true;
    }
  }

  private quorumActive(): boolean {
    return hasQuorum(
      voters(this.configuration()),
      (id) => id === this.id || this.progress.get(id)?.recentActive === true,
    );
  }

  private addressOf(id: ServerId): string {
    return id ? (findServer(this.configuration(), id)?.address ?? '') : '';
  }

  // ---------------------------------------------------------------------------------------------
  // Linearizable reads (thesis §6.4).

  private leaderReadIndex(from: ServerId, readCtx: number): void {
    if (this.pendingReads.length + this.readsAwaitingCommit.length >= this.opts.maxPendingReads) {
      this.answerRead(from, readCtx, 0);
      return;
    }
    if (this.log.term(this.log.committed) !== this.term) {
      // Until it commits an entry of its term, a new leader's commit index may lag the true one.
      this.readsAwaitingCommit.push({ from, readCtx });
      return;
    }
    const ids = voters(this.configuration());
    if ((this.opts.readMode === 'lease' && this.leaseValid()) || (ids.length === 1 && ids[0] === this.id)) {
      this.answerRead(from, readCtx, this.log.committed);
      return;
    }
    this.pendingReads.push({
      from,
      readCtx,
      index: this.log.committed,
      round: this.readRound,
      acks: new Set([this.id]),
    });
    this.readRoundScheduled = true;
  }

  /**
   * The leader lease (thesis §6.4.1): voters that answered a heartbeat sent at tick T refuse votes
   * until they have not heard from us for an election timeout, so no other leader can exist before
   * T + electionTicks on their clocks. A fifth of the window is kept back for clock drift. Requires
   * CheckQuorum (which is what makes voters refuse); void after TimeoutNow, which overrides it.
   */
  /** Whether this leader may answer reads locally now (see {@link leaseValid}). */
  hasLease(): boolean {
    return this.role === 'leader' && this.leaseValid();
  }

  private leaseValid(): boolean {
    if (!this.opts.checkQuorum || this.leaseBroken) return false;
    const ids = voters(this.configuration());
    const ticks = ids
      .map((id) => (id === this.id ? this.ticks : (this.ackedTick.get(id) ?? -1)))
      .sort((a, b) => b - a);
    const quorumTick = ticks[Math.floor(ids.length / 2)];
    if (quorumTick < 0) return false;
    return this.ticks < quorumTick + Math.floor((this.opts.electionTicks * 4) / 5);
  }

  private releaseReadsAwaitingCommit(): void {
    const waiting = this.readsAwaitingCommit;
    this.readsAwaitingCommit = [];
    for (const r of waiting) this.leaderReadIndex(r.from, r.readCtx);
  }

  /** A heartbeat answer for round `round` confirms our leadership to every read recorded before it. */
  private ackRead(from: ServerId, round: number): void {
    for (const r of this.pendingReads) {
      if (r.round > round) break;
      r.acks.add(from);
    }
    const ids = voters(this.configuration());
    while (this.pendingReads.length > 0 && hasQuorum(ids, (id) => this.pendingReads[0].acks.has(id))) {
      const r = this.pendingReads.shift()!;
      this.answerRead(r.from, r.readCtx, r.index);
    }
  }

  private answerRead(from: ServerId, readCtx: number, index: number): void {
    if (from === this.id) this.readStates.push({ readCtx, index });
    else this.send({ type: 'readIndexResp', from: this.id, to: from, term: this.term, readCtx, index });
  }

  private failPendingReads(): void {
    const failed = [...this.pendingReads, ...this.readsAwaitingCommit];
    this.pendingReads = [];
    this.readsAwaitingCommit = [];
    for (const r of failed) this.answerRead(r.from, r.readCtx, 0);
  }

  // ---------------------------------------------------------------------------------------------

  private send(m: Message): void {
    this.msgs.push(m);
  }

  private sameHardState(a: HardState, b: HardState): boolean {
    return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
  }
}

/** The log a brand-new cluster starts from: the same first entry on every initial server. */
export function bootstrapState(config: Configuration): PersistedState {
  return {
    hardState: { term: 1, vote: '', commit: 0 },
    snapshot: null,
    entries: [{ index: 1, term: 1, type: 'config', data: encodeConfiguration(config) }],
  };
}
