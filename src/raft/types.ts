/**
 * The vocabulary shared by the Raft core, its storage, its transport and its driver.
 * Everything here is plain data: it crosses the wire and the disk.
 */

/** A server's stable identity in the Raft configuration (Consul uses the node ID). */
export type ServerId = string;

/** Whether a server votes and counts toward quorum, or only receives the log (Raft thesis §4.2.1). */
export type Suffrage = 'voter' | 'nonvoter';

export interface ServerInfo {
  id: ServerId;
  /** Where its Raft transport listens, "host:port". */
  address: string;
  suffrage: Suffrage;
}

/** The cluster membership. Sorted by id wherever it is produced, so comparisons are stable. */
export interface Configuration {
  servers: ServerInfo[];
}

/**
 * `normal` carries an FSM command; `noop` is the entry a new leader appends to commit its term (§8);
 * `config` carries a JSON-encoded {@link Configuration} that takes effect as soon as it is appended
 * (thesis §4.1).
 */
export type EntryType = 'normal' | 'noop' | 'config';

export interface Entry {
  index: number;
  term: number;
  type: EntryType;
  data: Uint8Array;
}

/** What must be durable before a server answers any message: Figure 2's persistent state plus commit. */
export interface HardState {
  term: number;
  /** The candidate voted for in `term`, or '' for none. */
  vote: ServerId;
  commit: number;
}

/** Describes a snapshot; the bytes travel apart from the core (storage and transport move them). */
export interface SnapshotMeta {
  /** Last log index the snapshot covers. */
  index: number;
  /** Term of that entry. */
  term: number;
  /** Configuration as of `index`. */
  config: Configuration;
}

export type MessageType =
  | 'append'
  | 'appendResp'
  | 'vote'
  | 'voteResp'
  | 'heartbeat'
  | 'heartbeatResp'
  | 'snapshot'
  | 'timeoutNow'
  | 'readIndex'
  | 'readIndexResp';

interface MessageBase {
  from: ServerId;
  to: ServerId;
  /** Sender's term; a `vote` with `pre` carries the term it would campaign at. */
  term: number;
}

export interface AppendMessage extends MessageBase {
  type: 'append';
  prevIndex: number;
  prevTerm: number;
  entries: Entry[];
  commit: number;
}

export interface AppendRespMessage extends MessageBase {
  type: 'appendResp';
  /** On success: the highest index now known to match. On reject: the prevIndex that did not match. */
  index: number;
  reject: boolean;
  /** On reject: the follower's last index, so the leader can skip back quickly (§5.3 optimisation). */
  hintIndex: number;
  /** On reject: the term of the follower's entry at `hintIndex` (0 if none). */
  hintTerm: number;
}

export interface VoteMessage extends MessageBase {
  type: 'vote';
  /** A PreVote (thesis §9.6): asks "would you vote for me?" without anyone changing term. */
  pre: boolean;
  lastIndex: number;
  lastTerm: number;
  /** Sent after TimeoutNow: voters must not refuse it on the grounds of a live leader. */
  transfer: boolean;
}

export interface VoteRespMessage extends MessageBase {
  type: 'voteResp';
  pre: boolean;
  granted: boolean;
}

export interface HeartbeatMessage extends MessageBase {
  type: 'heartbeat';
  /** min(follower's match, leader's commit): never tells a follower to commit what it may not have. */
  commit: number;
  /** Opaque ReadIndex round id echoed back, 0 for none. */
  readCtx: number;
}

export interface HeartbeatRespMessage extends MessageBase {
  type: 'heartbeatResp';
  readCtx: number;
}

/** Leader → follower: install this snapshot. The data is streamed by the transport from the sender's store. */
export interface SnapshotMessage extends MessageBase {
  type: 'snapshot';
  snapshot: SnapshotMeta;
}

export interface TimeoutNowMessage extends MessageBase {
  type: 'timeoutNow';
}

/** Follower → leader: please run a ReadIndex round for my request `readCtx`. */
export interface ReadIndexMessage extends MessageBase {
  type: 'readIndex';
  readCtx: number;
}

/** Leader → follower: the read for `readCtx` may be served once applied >= `index`; index 0 means refused. */
export interface ReadIndexRespMessage extends MessageBase {
  type: 'readIndexResp';
  readCtx: number;
  index: number;
}

export type Message =
  | AppendMessage
  | AppendRespMessage
  | VoteMessage
  | VoteRespMessage
  | HeartbeatMessage
  | HeartbeatRespMessage
  | SnapshotMessage
  | TimeoutNowMessage
  | ReadIndexMessage
  | ReadIndexRespMessage;

/** A completed ReadIndex request: the caller may read once the FSM has applied `index`. */
export interface ReadState {
  readCtx: number;
  /** 0 when the read was refused (no leader, leadership lost). */
  index: number;
}

export type Role = 'follower' | 'precandidate' | 'candidate' | 'leader';

/**
 * A batch of work the core hands to its driver. The driver must, in this order:
 * 1. install `snapshot` (if any) and persist `hardState` and `entries` with one fsync;
 * 2. send `messages` (they promise what step 1 made durable); those that {@link sendableBeforePersist}
 *    accepts may go before step 1 instead, so the leader's disk write overlaps replication;
 * 3. apply `committed` to the state machine, and answer `readStates` once applied reaches them;
 * 4. call `core.advance(ready)`.
 * While step 1 runs, it may also apply what `core.takeEarlyCommitted()` hands out (in order, at once).
 */
export interface Ready {
  hardState: HardState | null;
  /** Entries to append. If the first index is <= the last stored one, the stored suffix from there is replaced. */
  entries: Entry[];
  /** A snapshot received from the leader, to install (restore the FSM) before applying anything else. */
  snapshot: SnapshotMeta | null;
  messages: Message[];
  /** Entries now committed, in order, to apply. */
  committed: Entry[];
  readStates: ReadState[];
}

/**
 * The leader's replication traffic promises nothing about its own disk: it may leave before the
 * Ready's fsync, so the leader's write overlaps the followers' (thesis §10.2.1). The leader counts
 * itself toward a quorum only once its fsync is done. Votes, vote requests and every answer wait.
 */
export function sendableBeforePersist(m: Message): boolean {
  return m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot' || m.type === 'timeoutNow';
}

/** What an entry costs beyond its data in a byte budget (index, term, type). */
export const ENTRY_OVERHEAD_BYTES = 24;

/** An entry encoded for a byte budget: what flow control counts. */
export function entrySize(e: Entry): number {
  return e.data.byteLength + ENTRY_OVERHEAD_BYTES;
}
