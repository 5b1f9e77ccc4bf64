/**
 * Deterministic simulation of a Raft cluster (TigerBeetle VOPR / FoundationDB style).
 *
 * Real RaftCore instances run over a simulated network (loss, duplication, delay and so reordering,
 * partitions), simulated disks (a Ready is durable only once its simulated fsync completes; a crash
 * loses it), crashes and restarts, membership changes and snapshots, while simulated clients write
 * and read a KV store. Everything random comes from one seed, so any run replays exactly.
 *
 * Checkers sit outside the nodes and run at every step: election safety, log matching, leader
 * completeness, state machine safety; at the end the clients' history must be linearizable.
 */
import type { ConfigChange } from '../../src/raft/configuration.ts';
import { bootstrapState, RaftCore, type RaftCoreOptions } from '../../src/raft/core.ts';
import { NotLeaderError } from '../../src/raft/errors.ts';
import { encodeKvCommand, type KvCommand, KvStateMachine } from '../../src/raft/kv-fsm.ts';
import type { PersistedState } from '../../src/raft/storage.ts';
import {
  type Configuration,
  type Entry,
  type HardState,
  type Message,
  type Ready,
  type SnapshotMeta,
  sendableBeforePersist,
} from '../../src/raft/types.ts';
import { checkKvHistory, type KvInput, type KvOutput, type Operation } from '../support/linearizability.ts';
import { Prng } from '../support/prng.ts';

export interface SimProfile {
  voters: number;
  spares: number;
  dropRate: number;
  dupRate: number;
  minDelay: number;
  maxDelay: number;
  /** Chance per step that the partition changes (half of the changes heal). */
  partitionRate: number;
  /** Chance per step that some up node crashes. */
  crashRate: number;
  maxDown: number;
  diskMaxDelay: number;
  /** Simulated time units between a node's ticks (each node drifts a little around it). */
  tickInterval: number;
  /** Each node's tick interval is tickInterval ± up to this much: clock drift. */
  tickJitter: number;
  snapshotEvery: number;
  trailing: number;
  membershipRate: number;
  clients: number;
  keys: number;
  core: Partial<RaftCoreOptions>;
}

/** Picks a fault profile from the seed (swarm testing: each seed explores a different mix). */
export function swarmProfile(rng: Prng): SimProfile {
  const voters = rng.chance(0.5) ? 3 : 5;
  // Lease reads are only as safe as the clock-drift bound they assume (a fifth of the lease).
  const lease = rng.chance(0.3);
  return {
    voters,
    spares: rng.int(3),
    dropRate: rng.pick([0, 0.01, 0.05, 0.15]),
    dupRate: rng.pick([0, 0.01, 0.05]),
    minDelay: 1,
    maxDelay: rng.pick([3, 10, 30]),
    partitionRate: rng.pick([0, 0.002, 0.005, 0.01]),
    crashRate: rng.pick([0, 0.001, 0.003]),
    maxDown: voters === 3 ? 1 : 2,
    diskMaxDelay: rng.pick([0, 2, 8]),
    tickInterval: 10,
    tickJitter: lease ? 1 : 2,
    snapshotEvery: rng.pick([8, 30, 1000]),
    trailing: rng.pick([0, 5, 20]),
    membershipRate: rng.pick([0, 0.002, 0.01]),
    clients: rng.range(2, 5),
    keys: rng.range(1, 4),
    core: {
      preVote: rng.chance(0.8),
      checkQuorum: lease || rng.chance(0.8),
      readMode: lease ? 'lease' : 'safe',
      maxInflightMsgs: rng.pick([1, 4, 256]),
      maxMsgBytes: rng.pick([64, 64, 1024, 1 << 20]),
    },
  };
}

export class SimViolation extends Error {
  override readonly name = 'SimViolation';
}

interface DurableSnapshot {
  meta: SnapshotMeta;
  data: [string, string][];
}

interface Disk {
  hardState: HardState;
  snapshot: DurableSnapshot | null;
  entries: Entry[];
  staged: Map<string, DurableSnapshot>;
}

interface Envelope {
  m: Message;
  snapshotData?: [string, string][];
}

interface PendingWrite {
  term: number;
  op: Operation;
  client: SimClient;
}

interface PendingRead {
  op: Operation;
  client: SimClient;
  index: number;
}

interface SimClient {
  id: number;
  busy: Operation | null;
  busySince: number;
  nextAt: number;
  leaderHint: string;
  seq: number;
}

class SimNode {
  readonly id: string;
  core: RaftCore | null = null;
  fsm = new KvStateMachine();
  /** The last entry `fsm` holds (ahead of core.log.applied while a Ready is being written). */
  fsmIndex = 0;
  disk: Disk;
  inflight: { rd: Ready; doneAt: number } | null = null;
  nextTickAt: number;
  tickInterval: number;
  incarnation = 0;
  wasLeaderTerm = 0;
  writes = new Map<number, PendingWrite[]>();
  reads = new Map<number, PendingRead>();
  waitingReads: PendingRead[] = [];
  downUntil = 0;

  constructor(id: string, disk: Disk, tickInterval: number, firstTick: number) {
    this.id = id;
    this.disk = disk;
    this.tickInterval = tickInterval;
    this.nextTickAt = firstTick;
  }

  persisted(): PersistedState {
    return {
      hardState: { ...this.disk.hardState },
      snapshot: this.disk.snapshot?.meta ?? null,
      entries: this.disk.entries.slice(),
    };
  }
}

const NO_SNAPSHOT_KEY = (m: SnapshotMeta) => `${m.index}/${m.term}`;

export interface SimResult {
  seed: number;
  steps: number;
  ops: number;
  committed: number;
  elections: number;
  crashes: number;
  configChanges: number;
  snapshotsSent: number;
  /** Entries applied while their server was still writing a Ready (RaftCore.takeEarlyCommitted). */
  earlyApplied: number;
}

export interface SimOptions {
  safetySteps?: number;
  livenessSteps?: number;
  trace?: (line: string) => void;
  profile?: SimProfile;
}

export class RaftSim {
  readonly seed: number;
  readonly profile: SimProfile;
  private readonly rng: Prng;
  private readonly nodes: SimNode[] = [];
  private readonly byId = new Map<string, SimNode>();
  private readonly clients: SimClient[] = [];
  private readonly history: Operation[] = [];
  private readonly network = new Map<number, Envelope[]>();
  private readonly group = new Map<string, number>();
  private now = 0;
  private readCtx = 1;
  private readonly trace?: (line: string) => void;
  private faults = true;
  private issuing = true;

  // Checker state.
  private readonly leaders = new Map<number, string>();
  private readonly committedTerms: number[] = [0];
  private readonly committedData: string[] = [''];
  private stats = { elections: 0, crashes: 0, configChanges: 0, snapshotsSent: 0, earlyApplied: 0 };

  constructor(seed: number, opts: SimOptions = {}) {
    this.seed = seed;
    this.rng = new Prng(seed);
    this.profile = opts.profile ?? swarmProfile(this.rng);
    this.trace = opts.trace;
    const p = this.profile;
    const voterIds = Array.from({ length: p.voters }, (_, i) => `n${i + 1}`);
    const spareIds = Array.from({ length: p.spares }, (_, i) => `n${p.voters + i + 1}`);
    const config: Configuration = { servers: voterIds.map((id) => ({ id, address: id, suffrage: 'voter' })) };
    for (const id of [...voterIds, ...spareIds]) {
      const boot = voterIds.includes(id)
        ? bootstrapState(config)
        : { hardState: { term: 0, vote: '', commit: 0 }, snapshot: null, entries: [] };
      const disk: Disk = {
        hardState: boot.hardState,
        snapshot: null,
        entries: boot.entries,
        staged: new Map(),
      };
      const node = new SimNode(
        id,
        disk,
        p.tickInterval + this.rng.range(-p.tickJitter, p.tickJitter),
        this.rng.range(1, p.tickInterval),
      );
      this.nodes.push(node);
      this.byId.set(id, node);
      this.group.set(id, 0);
      this.start(node);
    }
    for (let i = 0; i < p.clients; i++) {
      this.clients.push({
        id: i,
        busy: null,
        busySince: 0,
        nextAt: this.rng.range(0, 50),
        leaderHint: '',
        seq: 0,
      });
    }
  }

  private log(line: string): void {
    this.trace?.(`${String(this.now).padStart(6)} ${line}`);
  }

  private coreOptions(id: string): RaftCoreOptions {
    const rng = this.rng.fork();
    return { ...this.profile.core, id, rng: () => rng.next() };
  }

  private start(node: SimNode): void {
    node.core = new RaftCore(this.coreOptions(node.id), node.persisted());
    node.fsm = node.disk.snapshot ? KvStateMachine.fromJSON(node.disk.snapshot.data) : new KvStateMachine();
    node.fsmIndex = node.disk.snapshot?.meta.index ?? 0;
    node.incarnation++;
    node.wasLeaderTerm = 0;
  }

  /** Runs faults and load for `safetySteps`, then heals everything and requires convergence. */
  run(opts: SimOptions = {}): SimResult {
    const safety = opts.safetySteps ?? 3000;
    const liveness = opts.livenessSteps ?? 20_000;
    for (let i = 0; i < safety; i++) this.step();
    this.heal();
    let converged = false;
    for (let i = 0; i < liveness; i++) {
      this.step();
      if (i % 50 === 0 && this.converged()) {
        converged = true;
        break;
      }
    }
    if (!converged) {
      const states = this.nodes.map((n) => {
        if (!n.core) return `${n.id}: down`;
        const st = n.core.status();
        const voters = st.configuration.servers
          .map((s) => `${s.id}${s.suffrage === 'voter' ? '' : '(nv)'}`)
          .join(',');
        return `${n.id}: ${st.role} term=${st.term} lead=${st.leader} commit=${st.commitIndex} applied=${st.appliedIndex} last=${st.lastIndex} config=[${voters}]`;
      });
      const busy = this.clients.filter((c) => c.busy).length;
      throw new SimViolation(
        `liveness: no convergence within ${liveness} steps after healing; ${busy} clients busy\n  ${states.join('\n  ')}`,
      );
    }
    const result = checkKvHistory(this.history, { timeoutMs: 20_000 });
    if (!result.ok) {
      throw new SimViolation(
        `linearizability: ${result.timedOut ? 'checker timed out' : 'history is not linearizable'} (key ${result.key}): ${result.explanation}`,
      );
    }
    return {
      seed: this.seed,
      steps: this.now,
      ops: this.history.length,
      committed: this.committedTerms.length - 1,
      ...this.stats,
    };
  }

  private heal(): void {
    this.log('heal: faults off, network whole, every node up');
    this.faults = false;
    for (const id of this.group.keys()) this.group.set(id, 0);
    for (const n of this.nodes) if (!n.core) this.restart(n);
  }

  private converged(): boolean {
    const leader = this.nodes.find((n) => n.core?.role === 'leader');
    if (!leader?.core) return false;
    this.issuing = false;
    if (this.clients.some((c) => c.busy)) return false;
    const st = leader.core.status();
    if (st.commitIndex !== st.lastIndex) return false;
    if (leader.core.log.term(st.commitIndex) !== st.term) return false;
    for (const s of st.configuration.servers) {
      const n = this.byId.get(s.id)!;
      if (!n.core || n.core.log.applied < st.commitIndex) return false;
    }
    return true;
  }

  step(): void {
    this.now++;
    if (this.faults) this.injectFaults();
    this.deliver();
    for (const n of this.nodes) {
      if (!n.core) continue;
      while (this.now >= n.nextTickAt) {
        n.core.tick();
        n.nextTickAt += n.tickInterval;
      }
    }
    for (const n of this.nodes) this.driveNode(n);
    for (const c of this.clients) this.driveClient(c);
    this.checkStep();
  }

  // -----------------------------------------------------------------------------------------------
  // Faults.

  private injectFaults(): void {
    const p = this.profile;
    if (this.rng.chance(p.partitionRate)) {
      const r = this.rng.next();
      if (r < 0.4) {
        for (const id of this.group.keys()) this.group.set(id, 0);
        this.log('partition healed');
      } else if (r < 0.7) {
        // Cut the leader off from everyone: the classic source of stale reads and lost writes.
        const leader = this.nodes.find((n) => n.core?.role === 'leader') ?? this.rng.pick(this.nodes);
        for (const id of this.group.keys()) this.group.set(id, id === leader.id ? 1 : 0);
        this.log(`partition: ${leader.id} isolated`);
      } else {
        for (const id of this.group.keys()) this.group.set(id, this.rng.int(2));
        this.log(`partition ${[...this.group].map(([id, g]) => `${id}:${g}`).join(' ')}`);
      }
    }
    const down = this.nodes.filter((n) => !n.core);
    if (this.rng.chance(p.crashRate) && down.length < p.maxDown) {
      const up = this.nodes.filter((n) => n.core);
      const leader = up.find((n) => n.core?.role === 'leader');
      const victim = leader && this.rng.chance(0.5) ? leader : this.rng.pick(up);
      this.crash(victim);
    }
    for (const n of down) if (this.now >= n.downUntil) this.restart(n);
    if (this.rng.chance(p.membershipRate)) this.changeMembership();
  }

  private crash(n: SimNode): void {
    this.log(`crash ${n.id}${n.inflight ? ' (losing an unsynced ready)' : ''}`);
    this.stats.crashes++;
    n.core = null;
    n.inflight = null;
    n.downUntil = this.now + this.rng.range(50, 500);
    for (const list of n.writes.values()) for (const w of list) this.finishUnknown(w.client);
    n.writes.clear();
    for (const r of [...n.reads.values(), ...n.waitingReads]) this.abandon(r.client);
    n.reads.clear();
    n.waitingReads = [];
  }

  private restart(n: SimNode): void {
    this.log(`restart ${n.id} term=${n.disk.hardState.term} entries=${n.disk.entries.length}`);
    this.start(n);
  }

  private changeMembership(): void {
    const leader = this.nodes.find((n) => n.core?.role === 'leader');
    if (!leader?.core) return;
    const st = leader.core.status();
    const config = st.configuration;
    const inConfig = new Set(config.servers.map((s) => s.id));
    const outside = this.nodes.filter((n) => !inConfig.has(n.id));
    const voterIds = config.servers.filter((s) => s.suffrage === 'voter').map((s) => s.id);
    const nonvoters = config.servers.filter((s) => s.suffrage === 'nonvoter').map((s) => s.id);
    const caughtUp = nonvoters.filter(
      (id) => (st.progress.find((p) => p.id === id)?.match ?? 0) >= st.commitIndex,
    );
    const options: ConfigChange[] = [];
    for (const n of outside) options.push({ op: 'addNonvoter', id: n.id, address: n.id });
    for (const id of caughtUp) options.push({ op: 'promote', id });
    if (voterIds.length > 3)
      for (const id of voterIds) options.push({ op: 'remove', id }, { op: 'demote', id });
    for (const id of nonvoters) options.push({ op: 'remove', id });
    if (options.length === 0) return;
    const change = this.rng.pick(options);
    try {
      leader.core.proposeConfigChange(change);
      this.stats.configChanges++;
      this.log(`config change at ${leader.id}: ${change.op} ${change.id}`);
    } catch {
      // Refused (one change at a time, or the leader has not committed in its term): try later.
    }
  }

  // -----------------------------------------------------------------------------------------------
  // Network.

  private connected(a: string, b: string): boolean {
    return this.group.get(a) === this.group.get(b);
  }

  private send(from: SimNode, m: Message): void {
    const env: Envelope = { m };
    if (m.type === 'snapshot') {
      // The core may have asked for a snapshot that a newer one has since replaced on disk; like the
      // real driver, send the newest durable one (the follower's answer covers what the leader wanted).
      const snap = from.disk.snapshot;
      if (!snap || snap.meta.index < m.snapshot.index) {
        throw new SimViolation(
          `${from.id} sent snapshot ${m.snapshot.index} but holds ${snap?.meta.index} durably`,
        );
      }
      env.m = { ...m, snapshot: snap.meta };
      env.snapshotData = snap.data;
      this.stats.snapshotsSent++;
    }
    const p = this.profile;
    const lossy = this.faults;
    if (lossy && this.rng.chance(p.dropRate)) {
      this.dropped(from, env);
      return;
    }
    const copies = lossy && this.rng.chance(p.dupRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const at = this.now + this.rng.range(p.minDelay, lossy ? p.maxDelay : Math.min(p.maxDelay, 3));
      let q = this.network.get(at);
      if (!q) {
        q = [];
        this.network.set(at, q);
      }
      q.push(env);
    }
  }

  private dropped(from: SimNode, env: Envelope): void {
    if (env.m.type === 'snapshot') from.core?.reportSnapshot(env.m.to, false);
    else if (this.rng.chance(0.1)) from.core?.reportUnreachable(env.m.to);
  }

  private deliver(): void {
    const due = this.network.get(this.now);
    if (!due) return;
    this.network.delete(this.now);
    for (const env of due) {
      const { m } = env;
      const to = this.byId.get(m.to);
      const from = this.byId.get(m.from)!;
      if (!to?.core || !this.connected(m.from, m.to)) {
        this.dropped(from, env);
        continue;
      }
      if (m.type === 'snapshot') {
        // The transport streams the data into the receiver's store before the core sees the message.
        to.disk.staged.set(NO_SNAPSHOT_KEY(m.snapshot), { meta: m.snapshot, data: env.snapshotData! });
        from.core?.reportSnapshot(m.to, true);
      }
      to.core.stepMessage(m);
    }
  }

  // -----------------------------------------------------------------------------------------------
  // The driver: what src/raft/driver.ts does with real disks and sockets.

  private driveNode(n: SimNode): void {
    const core = n.core;
    if (!core) return;
    if (core.role === 'leader' && n.wasLeaderTerm !== core.term) {
      n.wasLeaderTerm = core.term;
      this.stats.elections++;
      this.log(`${n.id} leader term=${core.term} last=${core.log.lastIndex()}`);
      this.checkLeaderCompleteness(n);
    }
    if (n.inflight && this.now >= n.inflight.doneAt) {
      const { rd } = n.inflight;
      n.inflight = null;
      this.completeReady(n, rd);
    }
    // A server still writing sends new appends and heartbeats at once, and applies what acks
    // committed meanwhile (driver.scheduleEarlySend).
    if (n.inflight) {
      for (const m of core.takeEarlyMessages()) this.send(n, m);
      for (const e of core.takeEarlyCommitted()) {
        this.stats.earlyApplied++;
        this.apply(n, e);
      }
    }
    if (!n.inflight && n.core && core.hasReady()) {
      const rd = core.ready();
      for (const m of rd.messages) if (sendableBeforePersist(m)) this.send(n, m);
      // Committed entries are durable on a majority: applied before this Ready's own write.
      for (const e of rd.committed) this.apply(n, e);
      const delay = this.profile.diskMaxDelay === 0 ? 0 : this.rng.range(0, this.profile.diskMaxDelay);
      if (delay === 0) this.completeReady(n, rd);
      else n.inflight = { rd, doneAt: this.now + delay };
    }
  }

  private completeReady(n: SimNode, rd: Ready): void {
    const core = n.core!;
    const disk = n.disk;
    // 1. Persist (atomically, as one LevelDB batch would).
    if (rd.snapshot) {
      const staged = disk.staged.get(NO_SNAPSHOT_KEY(rd.snapshot));
      if (!staged)
        throw new SimViolation(`${n.id} installs snapshot ${rd.snapshot.index} that was never staged`);
      disk.snapshot = staged;
      disk.entries = [];
      for (const [k, s] of disk.staged) if (s.meta.index <= staged.meta.index) disk.staged.delete(k);
      n.fsm = KvStateMachine.fromJSON(staged.data);
      n.fsmIndex = staged.meta.index;
    }
    if (rd.hardState) {
      const old = disk.hardState;
      if (rd.hardState.term < old.term) throw new SimViolation(`${n.id} durable term went back`);
      if (rd.hardState.term === old.term && old.vote !== '' && rd.hardState.vote !== old.vote) {
        throw new SimViolation(`${n.id} changed its vote within term ${old.term}`);
      }
      disk.hardState = rd.hardState;
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0].index;
      disk.entries = disk.entries.filter((e) => e.index < first).concat(rd.entries);
      const base = disk.snapshot?.meta.index ?? 0;
      if (disk.entries.length > 0 && disk.entries[0].index !== base + 1) {
        throw new SimViolation(`${n.id} durable log does not continue its snapshot`);
      }
    }
    // 2. Send what the now-durable state promises.
    for (const m of rd.messages) if (!sendableBeforePersist(m)) this.send(n, m);
    // 3. Serve reads (the committed entries were applied when the Ready was taken).
    for (const rs of rd.readStates) {
      const r = n.reads.get(rs.readCtx);
      if (!r) continue;
      n.reads.delete(rs.readCtx);
      if (rs.index === 0) this.abandon(r.client);
      else {
        r.index = rs.index;
        n.waitingReads.push(r);
      }
    }
    core.advance(rd);
    this.serveReads(n);
    this.maybeSnapshot(n);
  }

  private apply(n: SimNode, e: Entry): void {
    this.checkApplied(n, e);
    if (e.index !== n.fsmIndex + 1) {
      throw new SimViolation(`${n.id} applied index ${e.index} after ${n.fsmIndex}`);
    }
    n.fsmIndex = e.index;
    const result = e.type === 'normal' ? n.fsm.apply(e) : undefined;
    const waiting = n.writes.get(e.index);
    if (!waiting) return;
    n.writes.delete(e.index);
    for (const w of waiting) {
      if (w.term === e.term && result) this.finish(w.client, result);
      else this.abandon(w.client); // another entry won this index: ours can never commit
    }
  }

  private maybeSnapshot(n: SimNode): void {
    const core = n.core!;
    const applied = core.log.applied;
    const base = n.disk.snapshot?.meta.index ?? 0;
    if (applied - base < this.profile.snapshotEvery || core.log.pendingSnapshot) return;
    // As the driver: only when the state machine is at `applied` (not ahead with early entries).
    if (n.fsmIndex !== applied) return;
    const meta = core.snapshotMetaAt(applied);
    n.disk.snapshot = { meta, data: n.fsm.toJSON() };
    core.snapshotTaken(meta, Math.max(0, applied - this.profile.trailing));
    // The durable log continues the durable snapshot (load ignores anything it covers).
    n.disk.entries = n.disk.entries.filter((e) => e.index > meta.index);
  }

  private serveReads(n: SimNode): void {
    if (n.waitingReads.length === 0) return;
    const applied = n.core!.log.applied;
    const ready = n.waitingReads.filter((r) => r.index <= applied);
    n.waitingReads = n.waitingReads.filter((r) => r.index > applied);
    for (const r of ready) {
      const key = (r.op.input as { key: string }).key;
      this.finish(r.client, { ok: true, value: n.fsm.get(key) });
    }
  }

  // -----------------------------------------------------------------------------------------------
  // Clients.

  private driveClient(c: SimClient): void {
    if (c.busy) {
      // Give up like a real client would; a write's outcome is then unknown, and the next op may go elsewhere.
      if (this.now - c.busySince > 400) {
        c.leaderHint = '';
        this.finishUnknown(c);
      }
      return;
    }
    if (!this.issuing || this.now < c.nextAt) return;
    const up = this.nodes.filter((n) => n.core);
    if (up.length === 0) return;
    const hinted = this.byId.get(c.leaderHint);
    const node = hinted?.core && this.rng.chance(0.5) ? hinted : this.rng.pick(up);
    const key = `k${this.rng.int(this.profile.keys)}`;
    const value = `c${c.id}.${++c.seq}`;
    const r = this.rng.next();
    let input: KvInput;
    if (r < 0.4) input = { op: 'get', key };
    else if (r < 0.7) input = { op: 'put', key, value };
    else if (r < 0.9) {
      const expected = this.rng.chance(0.2)
        ? null
        : `c${this.rng.int(this.profile.clients)}.${this.rng.range(1, c.seq)}`;
      input = { op: 'cas', key, expected, value };
    } else input = { op: 'delete', key };
    const op: Operation = {
      clientId: c.id,
      input,
      output: undefined,
      call: this.now,
      return: Number.POSITIVE_INFINITY,
    };
    const core = node.core!;
    if (input.op === 'get') {
      const ctx = this.readCtx++;
      node.reads.set(ctx, { op, client: c, index: 0 });
      core.readIndex(ctx);
      this.begin(c, op);
      return;
    }
    try {
      const at = core.propose(encodeKvCommand(input as KvCommand));
      const list = node.writes.get(at.index) ?? [];
      list.push({ term: at.term, op, client: c });
      node.writes.set(at.index, list);
      this.begin(c, op);
    } catch (err) {
      // Refused synchronously: nothing was appended, so the op never happened.
      if (err instanceof NotLeaderError) c.leaderHint = err.leaderId;
      c.nextAt = this.now + this.rng.range(5, 40);
    }
  }

  private begin(c: SimClient, op: Operation): void {
    c.busy = op;
    c.busySince = this.now;
  }

  private finish(c: SimClient, output: KvOutput): void {
    const op = c.busy;
    if (!op) return;
    op.output = output;
    op.return = this.now;
    this.history.push(op);
    this.idle(c);
  }

  /** The op may or may not have taken effect (a write whose fate we cannot learn). */
  private finishUnknown(c: SimClient): void {
    const op = c.busy;
    if (!op) return;
    if (op.input.op !== 'get') this.history.push(op);
    this.idle(c);
  }

  /** The op certainly had no effect (a refused read, or a write that lost its index): leave it out. */
  private abandon(c: SimClient): void {
    if (c.busy) this.idle(c);
  }

  private idle(c: SimClient): void {
    c.busy = null;
    c.nextAt = this.now + this.rng.range(1, 30);
    // Late answers to this op must not finish the next one.
    for (const n of this.nodes) {
      for (const [idx, list] of n.writes) {
        const kept = list.filter((w) => w.client !== c);
        if (kept.length === 0) n.writes.delete(idx);
        else n.writes.set(idx, kept);
      }
      for (const [ctx, r] of n.reads) if (r.client === c) n.reads.delete(ctx);
      n.waitingReads = n.waitingReads.filter((r) => r.client !== c);
    }
  }

  // -----------------------------------------------------------------------------------------------
  // Checkers.

  private checkStep(): void {
    for (const n of this.nodes) {
      const core = n.core;
      if (core?.role !== 'leader') continue;
      const prev = this.leaders.get(core.term);
      if (prev !== undefined && prev !== n.id) {
        throw new SimViolation(`election safety: ${prev} and ${n.id} both leaders of term ${core.term}`);
      }
      this.leaders.set(core.term, n.id);
    }
    if (this.now % 97 === 0) this.checkLogMatching();
  }

  /** State machine safety: every server applies the same entry at each index. */
  private checkApplied(n: SimNode, e: Entry): void {
    const key = dataKey(e);
    if (e.index < this.committedTerms.length) {
      if (this.committedTerms[e.index] !== e.term || this.committedData[e.index] !== key) {
        throw new SimViolation(
          `state machine safety: ${n.id} applied index ${e.index} term ${e.term}, others applied term ${this.committedTerms[e.index]}`,
        );
      }
      return;
    }
    if (e.index !== this.committedTerms.length) {
      // Skipped indices are covered by a snapshot on every server that applied them; record what we can.
      while (this.committedTerms.length < e.index) {
        this.committedTerms.push(-1);
        this.committedData.push('');
      }
    }
    this.committedTerms[e.index] = e.term;
    this.committedData[e.index] = key;
  }

  /** Leader completeness: a new leader holds every entry committed before its term. */
  private checkLeaderCompleteness(n: SimNode): void {
    const log = n.core!.log;
    for (let i = log.snapshotIndex + 1; i < this.committedTerms.length; i++) {
      const t = this.committedTerms[i];
      if (t === -1) continue;
      if (log.term(i) !== t) {
        throw new SimViolation(`leader completeness: leader ${n.id} lacks committed entry ${i} (term ${t})`);
      }
    }
  }

  /** Log matching: if two logs hold an entry with the same index and term, they are identical up to it. */
  private checkLogMatching(): void {
    const up = this.nodes.filter((n) => n.core);
    for (let a = 0; a < up.length; a++) {
      for (let b = a + 1; b < up.length; b++) {
        const la = up[a].core!.log;
        const lb = up[b].core!.log;
        const lo = Math.max(la.snapshotIndex, lb.snapshotIndex) + 1;
        const hi = Math.min(la.lastIndex(), lb.lastIndex());
        let agreed = false;
        for (let i = hi; i >= lo; i--) {
          const ea = la.entryAt(i)!;
          const eb = lb.entryAt(i)!;
          if (!agreed && ea.term === eb.term) agreed = true;
          if (agreed && (ea.term !== eb.term || dataKey(ea) !== dataKey(eb))) {
            throw new SimViolation(
              `log matching: ${up[a].id} and ${up[b].id} differ at ${i} below a matching entry`,
            );
          }
        }
      }
    }
  }
}

function dataKey(e: Entry): string {
  return `${e.type}:${Buffer.from(e.data).toString('base64')}`;
}

/** The command that replays one seed with a trace. */
export function replayCommand(seed: number): string {
  return `npm run test:sim -- --seed ${seed} --trace`;
}
