/**
 * A tiny deterministic in-memory network of RaftCore instances, driven the way a real driver drives
 * them: for every Ready, persist (snapshot, hard state, entries with suffix replacement), send, apply,
 * advance. Messages travel through a FIFO queue with filters (isolate, partition, drop, hold).
 *
 * Safety is checked continuously, and a breach throws a {@link SafetyViolation}:
 * - Election Safety: at most one leader per term, over the whole run (§5.2);
 * - State Machine Safety: no two servers apply different entries at one index (§5.4.3);
 * - Leader Completeness: a new leader's log holds every entry applied anywhere so far (§5.4);
 * - the driver contract: committed entries come in order, persisted entries are contiguous.
 */
import { bootstrapState, type CoreStatus, RaftCore, type RaftCoreOptions } from '../../src/raft/core.ts';
import type { PersistedState } from '../../src/raft/storage.ts';
import type { Entry, Message, ReadState, Ready, SnapshotMeta } from '../../src/raft/types.ts';
import { Prng } from '../support/prng.ts';

export type CoreTuning = Partial<Omit<RaftCoreOptions, 'id' | 'rng'>>;

export interface NetworkOptions {
  /** Seeds every node's randomized election timeout. @default 1 */
  seed?: number;
  /** Core options for every node. */
  options?: CoreTuning;
  /** Per-node overrides of `options`. */
  nodeOptions?: Record<string, CoreTuning>;
  /** The Raft address written into the bootstrap configuration. @default the id */
  address?: (id: string) => string;
  /** Start some nodes from this persisted state instead of the bootstrap one. */
  initial?: Record<string, PersistedState>;
  /** Report snapshot messages as delivered / failed to their sender (as a transport would). @default true */
  reportSnapshots?: boolean;
}

export class SafetyViolation extends Error {
  override readonly name = 'SafetyViolation';
}

export interface NodeState {
  readonly id: string;
  core: RaftCore;
  readonly options: CoreTuning;
  /** What survives a crash: the driver's durable copy. */
  durable: PersistedState;
  /** The state machine: the data of applied `normal` entries, in order (restored from snapshots). */
  fsm: string[];
  appliedIndex: number;
  /** Every entry applied since the FSM was last restored (restart or snapshot install). */
  applied: Entry[];
  readStates: ReadState[];
  installedSnapshots: SnapshotMeta[];
  down: boolean;
}

export interface Hold {
  /** Messages held back so far, in order. */
  readonly messages: Message[];
  /** Stops holding and puts the held messages back on the wire, in order. */
  release(): void;
}

type Route = 'deliver' | 'drop' | 'hold';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
export const enc = (s: string): Uint8Array => encoder.encode(s);
export const dec = (b: Uint8Array): string => decoder.decode(b);

export const EMPTY_STATE: PersistedState = {
  hardState: { term: 0, vote: '', commit: 0 },
  snapshot: null,
  entries: [],
};

function clonePersisted(p: PersistedState): PersistedState {
  return {
    hardState: { ...p.hardState },
    snapshot: p.snapshot,
    entries: p.entries.slice(),
  };
}

export class Network {
  readonly nodes = new Map<string, NodeState>();
  /** Every message any core emitted, in order, whether or not the network delivered it. */
  readonly sent: Message[] = [];
  /** Every message actually stepped into a core. */
  readonly delivered: Message[] = [];
  /** Leader of each term observed so far. */
  readonly leadersByTerm = new Map<number, string>();

  private readonly rootRng: Prng;
  private readonly baseOptions: CoreTuning;
  private readonly reportSnapshots: boolean;
  private queue: Message[] = [];
  private isolated = new Set<string>();
  private groups: Map<string, number> | null = null;
  private dropped = new Set<string>();
  private dropFilters: ((m: Message) => boolean)[] = [];
  private holds: { pred: (m: Message) => boolean; messages: Message[] }[] = [];
  /** index -> the entry first applied there by anyone. */
  private readonly appliedLog = new Map<number, { term: number; type: string; data: string; by: string }>();
  /** The FSM contents of every snapshot taken, by index (what a snapshot transfer would carry). */
  private readonly snapshotStore = new Map<number, string[]>();

  private constructor(seed: number, options: CoreTuning, reportSnapshots: boolean) {
    this.rootRng = new Prng(seed);
    this.baseOptions = options;
    this.reportSnapshots = reportSnapshots;
  }

  static create(ids: string[], opts: NetworkOptions = {}): Network {
    const net = new Network(opts.seed ?? 1, opts.options ?? {}, opts.reportSnapshots ?? true);
    const address = opts.address ?? ((id: string) => id);
    const boot = bootstrapState({
      servers: ids.map((id) => ({ id, address: address(id), suffrage: 'voter' as const })),
    });
    for (const id of ids) {
      net.addNode(id, opts.initial?.[id] ?? boot, opts.nodeOptions?.[id] ?? {});
    }
    return net;
  }

  /** Starts a server that is not (yet) in any configuration: empty log, term 0 (a joining server). */
  add(id: string, options: CoreTuning = {}, persisted: PersistedState = EMPTY_STATE): NodeState {
    return this.addNode(id, persisted, options);
  }

  private addNode(id: string, persisted: PersistedState, options: CoreTuning): NodeState {
    if (this.nodes.has(id)) throw new Error(`node ${id} exists`);
    const merged = { ...this.baseOptions, ...options };
    const durable = clonePersisted(persisted);
    const node: NodeState = {
      id,
      options: merged,
      durable,
      core: this.makeCore(id, merged, durable),
      fsm: [],
      appliedIndex: durable.snapshot?.index ?? 0,
      applied: [],
      readStates: [],
      installedSnapshots: [],
      down: false,
    };
    if (durable.snapshot) node.fsm = (this.snapshotStore.get(durable.snapshot.index) ?? []).slice();
    this.nodes.set(id, node);
    return node;
  }

  private makeCore(id: string, options: CoreTuning, durable: PersistedState): RaftCore {
    const rng = this.rootRng.fork();
    const snap = durable.snapshot;
    const entries = snap ? durable.entries.filter((e) => e.index > snap.index) : durable.entries.slice();
    return new RaftCore(
      { ...options, id, rng: () => rng.next() },
      { hardState: { ...durable.hardState }, snapshot: snap, entries },
    );
  }

  // ---------------------------------------------------------------------------------------------
  // Accessors.

  node(id: string): NodeState {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  core(id: string): RaftCore {
    return this.node(id).core;
  }

  status(id: string): CoreStatus {
    return this.core(id).status();
  }

  ids(): string[] {
    return [...this.nodes.keys()].sort();
  }

  /** Live nodes that currently believe they lead. */
  leaders(): string[] {
    return this.ids().filter((id) => !this.node(id).down && this.core(id).role === 'leader');
  }

  /** The live leader with the highest term, or undefined. */
  leader(): string | undefined {
    let best: string | undefined;
    for (const id of this.leaders()) {
      if (best === undefined || this.core(id).term > this.core(best).term) best = id;
    }
    return best;
  }

  /** The node's in-memory log, from its first index to its last. */
  entries(id: string): Entry[] {
    const log = this.core(id).log;
    const out: Entry[] = [];
    for (let i = log.firstIndex(); i <= log.lastIndex(); i++) out.push(log.entryAt(i)!);
    return out;
  }

  /** Terms of the node's log entries, from its first index on. */
  logTerms(id: string): number[] {
    return this.entries(id).map((e) => e.term);
  }

  /** Messages emitted so far that match `pred`. */
  sentWhere(pred: (m: Message) => boolean): Message[] {
    return this.sent.filter(pred);
  }

  // ---------------------------------------------------------------------------------------------
  // Faults.

  /** Cuts `id` off from everyone, both ways. */
  isolate(id: string): void {
    this.isolated.add(id);
  }

  /** Only nodes in the same group can talk; nodes not named are cut off from everyone. */
  partition(...groups: string[][]): void {
    this.groups = new Map();
    for (const [i, g] of groups.entries()) for (const id of g) this.groups.set(id, i);
  }

  /** Drops every message from `from` to `to` (one direction). */
  drop(from: string, to: string): void {
    this.dropped.add(`${from}\u0000${to}`);
  }

  /** Drops every message for which `pred` holds (lost packets: the sender is told nothing). */
  dropIf(pred: (m: Message) => boolean): void {
    this.dropFilters.push(pred);
  }

  /** Undoes isolate, partition, drop and dropIf (not holds). */
  heal(): void {
    this.isolated.clear();
    this.groups = null;
    this.dropped.clear();
    this.dropFilters = [];
  }

  /** Delays (rather than loses) every message for which `pred` holds, until release(). */
  hold(pred: (m: Message) => boolean): Hold {
    const h = { pred, messages: [] as Message[] };
    this.holds.push(h);
    return {
      messages: h.messages,
      release: () => {
        this.holds = this.holds.filter((x) => x !== h);
        this.queue.push(...h.messages.splice(0));
      },
    };
  }

  /** The server crashes: it stops ticking, and messages to it are lost. Its durable state stays. */
  crash(id: string): void {
    this.node(id).down = true;
  }

  /** Rebuilds the server from its durable copy (as after a crash) and brings it up. */
  restart(id: string): RaftCore {
    const n = this.node(id);
    n.core = this.makeCore(id, n.options, n.durable);
    n.down = false;
    const snap = n.durable.snapshot;
    n.fsm = snap ? (this.snapshotStore.get(snap.index) ?? []).slice() : [];
    n.appliedIndex = snap?.index ?? 0;
    n.applied = [];
    return n.core;
  }

  // ---------------------------------------------------------------------------------------------
  // Driving.

  /** Puts messages on the wire as if their sender had sent them. */
  inject(...msgs: Message[]): void {
    this.queue.push(...msgs);
  }

  /**
   * Processes every pending Ready (persist, collect messages, apply, advance) without delivering
   * anything; returns the messages collected, which stay queued for delivery.
   */
  flush(): Message[] {
    const out: Message[] = [];
    for (const id of this.ids()) {
      const n = this.node(id);
      if (n.down) continue;
      let guard = 0;
      while (n.core.hasReady()) {
        if (++guard > 1000) throw new Error(`node ${id} keeps producing Ready`);
        out.push(...this.processReady(n));
      }
      this.observe(n);
    }
    this.sent.push(...out);
    this.queue.push(...out);
    return out;
  }

  /** Delivers what is queued now (messages produced meanwhile wait for the next call). */
  deliverPending(): number {
    const batch = this.queue;
    this.queue = [];
    for (const m of batch) this.deliver(m);
    return batch.length;
  }

  /** Flush and deliver until nothing is left to do. */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      this.flush();
      if (this.queue.length === 0) return;
      this.deliverPending();
    }
    throw new Error(`network did not settle in ${maxRounds} rounds`);
  }

  /** `n` times: every live node ticks once, then the network settles. */
  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const id of this.ids()) if (!this.node(id).down) this.core(id).tick();
      this.stabilize();
    }
  }

  /** `n` times: one node ticks, then the network settles. */
  tick(id: string, n = 1): void {
    for (let i = 0; i < n; i++) {
      this.core(id).tick();
      this.stabilize();
    }
  }

  /** Ticks everyone until `done()` holds; returns the number of ticks taken. Throws after `max`. */
  tickUntil(done: () => boolean, max = 1000): number {
    for (let i = 0; i <= max; i++) {
      if (done()) return i;
      this.tickAll(1);
    }
    throw new Error(`condition not reached within ${max} ticks`);
  }

  /** campaign + stabilize; campaigns again (a stale term loses the first round) up to 3 times. */
  elect(id: string): RaftCore {
    for (let attempt = 0; attempt < 3; attempt++) {
      this.core(id).campaign();
      this.stabilize();
      if (this.core(id).role === 'leader') return this.core(id);
    }
    throw new Error(`${id} could not be elected (role ${this.core(id).role}, term ${this.core(id).term})`);
  }

  /** core.propose + stabilize. */
  propose(id: string, data: string | Uint8Array): { index: number; term: number } {
    const at = this.core(id).propose(typeof data === 'string' ? enc(data) : data);
    this.stabilize();
    return at;
  }

  /**
   * The driver snapshots `id`'s FSM at its applied index and compacts its log up to `compactTo`
   * (default: the snapshot index). Returns the snapshot's metadata.
   */
  snapshot(id: string, compactTo?: number): SnapshotMeta {
    const n = this.node(id);
    const meta = n.core.snapshotMetaAt(n.appliedIndex);
    this.snapshotStore.set(meta.index, n.fsm.slice());
    const upTo = Math.min(compactTo ?? meta.index, meta.index);
    n.durable.snapshot = meta;
    n.durable.entries = n.durable.entries.filter((e) => e.index > upTo);
    n.core.snapshotTaken(meta, upTo);
    return meta;
  }

  // ---------------------------------------------------------------------------------------------

  private processReady(n: NodeState): Message[] {
    const rd: Ready = n.core.ready();
    const d = n.durable;
    // 1. Persist: snapshot, hard state, entries (a stored suffix from the first new index is replaced).
    if (rd.snapshot) {
      const data = this.snapshotStore.get(rd.snapshot.index);
      if (!data) throw new Error(`${n.id} was sent snapshot ${rd.snapshot.index}, which nobody took`);
      d.snapshot = rd.snapshot;
      d.entries = [];
      n.fsm = data.slice();
      n.appliedIndex = rd.snapshot.index;
      n.applied = [];
      n.installedSnapshots.push(rd.snapshot);
    }
    if (rd.hardState) d.hardState = { ...rd.hardState };
    if (rd.entries.length > 0) {
      const first = rd.entries[0].index;
      const stored = d.entries.length > 0 ? d.entries[d.entries.length - 1].index : (d.snapshot?.index ?? 0);
      if (first > stored + 1) {
        throw new SafetyViolation(`${n.id}: persisting index ${first} leaves a gap after ${stored}`);
      }
      for (const [i, e] of rd.entries.entries()) {
        if (e.index !== first + i) throw new SafetyViolation(`${n.id}: Ready entries are not contiguous`);
      }
      d.entries = d.entries.filter((e) => e.index < first).concat(rd.entries);
    }
    // 3. Apply.
    for (const e of rd.committed) {
      if (e.index !== n.appliedIndex + 1) {
        throw new SafetyViolation(`${n.id}: applied index ${e.index} after ${n.appliedIndex}`);
      }
      const data = dec(e.data);
      const seen = this.appliedLog.get(e.index);
      if (seen && (seen.term !== e.term || seen.type !== e.type || seen.data !== data)) {
        throw new SafetyViolation(
          `State Machine Safety: ${n.id} applied ${e.index}@${e.term} but ${seen.by} applied ${e.index}@${seen.term}`,
        );
      }
      if (!seen) this.appliedLog.set(e.index, { term: e.term, type: e.type, data, by: n.id });
      if (e.type === 'normal') n.fsm.push(data);
      n.applied.push(e);
      n.appliedIndex = e.index;
    }
    n.readStates.push(...rd.readStates);
    n.core.advance(rd);
    return rd.messages;
  }

  /** Election Safety and Leader Completeness, checked whenever a leader is seen. */
  private observe(n: NodeState): void {
    const c = n.core;
    if (c.role !== 'leader') return;
    const known = this.leadersByTerm.get(c.term);
    if (known === n.id) return;
    if (known !== undefined) {
      throw new SafetyViolation(`Election Safety: ${known} and ${n.id} both lead term ${c.term}`);
    }
    this.leadersByTerm.set(c.term, n.id);
    for (const [index, e] of this.appliedLog) {
      if (index <= c.log.snapshotIndex) continue;
      if (c.log.term(index) !== e.term) {
        throw new SafetyViolation(
          `Leader Completeness: ${n.id} leads term ${c.term} without applied entry ${index}@${e.term}`,
        );
      }
    }
  }

  private route(m: Message): Route {
    const to = this.nodes.get(m.to);
    if (!to || to.down) return 'drop';
    if (this.isolated.has(m.from) || this.isolated.has(m.to)) return 'drop';
    if (this.groups && this.groups.get(m.from) !== this.groups.get(m.to)) return 'drop';
    if (this.groups && (!this.groups.has(m.from) || !this.groups.has(m.to))) return 'drop';
    if (this.dropped.has(`${m.from}\u0000${m.to}`)) return 'drop';
    if (this.dropFilters.some((f) => f(m))) return 'drop';
    for (const h of this.holds) {
      if (h.pred(m)) {
        h.messages.push(m);
        return 'hold';
      }
    }
    return 'deliver';
  }

  private deliver(m: Message): void {
    const route = this.route(m);
    if (route === 'hold') return;
    const sender = this.nodes.get(m.from);
    if (route === 'drop') {
      if (m.type === 'snapshot' && this.reportSnapshots && sender && !sender.down) {
        sender.core.reportSnapshot(m.to, false);
      }
      return;
    }
    this.delivered.push(m);
    this.node(m.to).core.stepMessage(m);
    if (m.type === 'snapshot' && this.reportSnapshots && sender && !sender.down) {
      sender.core.reportSnapshot(m.to, true);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Hand-made messages, for stepping a core directly.

export function voteMsg(
  from: string,
  to: string,
  term: number,
  lastIndex: number,
  lastTerm: number,
  extra: { pre?: boolean; transfer?: boolean } = {},
): Message {
  return {
    type: 'vote',
    from,
    to,
    term,
    lastIndex,
    lastTerm,
    pre: extra.pre ?? false,
    transfer: extra.transfer ?? false,
  };
}

export function appendMsg(
  from: string,
  to: string,
  term: number,
  prevIndex: number,
  prevTerm: number,
  entries: Entry[] = [],
  commit = 0,
): Message {
  return { type: 'append', from, to, term, prevIndex, prevTerm, entries, commit };
}

export function heartbeatMsg(from: string, to: string, term: number, commit = 0): Message {
  return { type: 'heartbeat', from, to, term, commit, readCtx: 0 };
}

export function normalEntry(index: number, term: number, data = `e${index}`): Entry {
  return { index, term, type: 'normal', data: enc(data) };
}
