/** Proposals and reads that need the leader fail fast on other servers, naming the leader when known. */
export class NotLeaderError extends Error {
  override readonly name = 'NotLeaderError';
  /** The leader's server id, or '' when none is known. */
  readonly leaderId: string;
  /** The leader's Raft address, or '' when none is known. */
  readonly leaderAddress: string;
  constructor(leaderId: string, leaderAddress = '') {
    super(
      leaderId
        ? `not the leader; the leader is ${leaderId}${leaderAddress ? ` at ${leaderAddress}` : ''}`
        : 'not the leader; no leader is known',
    );
    this.leaderId = leaderId;
    this.leaderAddress = leaderAddress;
  }
}

/** The entry was proposed but will never be applied at its index (leadership changed, log truncated). */
export class ProposalDroppedError extends Error {
  override readonly name = 'ProposalDroppedError';
  constructor(reason: string) {
    super(`proposal dropped: ${reason}`);
  }
}

/** A leadership transfer is under way; the leader accepts no proposals until it ends. */
export class TransferInProgressError extends Error {
  override readonly name = 'TransferInProgressError';
  constructor() {
    super('leadership transfer in progress');
  }
}

/** A membership change that Raft's single-server rule or the current configuration forbids. */
export class ConfigChangeError extends Error {
  override readonly name = 'ConfigChangeError';
  /** True when the refusal clears up by itself (a change in flight, a leader still committing its term). */
  readonly retryable: boolean;
  constructor(message: string, retryable = false) {
    super(message);
    this.retryable = retryable;
  }
}

/** A state the protocol rules out happened: the core stops rather than diverge (etcd's log.go panics). */
export class RaftInvariantError extends Error {
  override readonly name = 'RaftInvariantError';
}

/** The Raft node was stopped. */
export class RaftStoppedError extends Error {
  override readonly name = 'RaftStoppedError';
  constructor() {
    super('raft is stopped');
  }
}
