import type { Entry } from './types.ts';

/** A point-in-time copy of the FSM, taken synchronously between two applies, serialized later. */
export interface FsmSnapshot {
  chunks(): AsyncIterable<Uint8Array>;
}

/**
 * The replicated state machine. `apply` must be deterministic: a function of the state and the
 * entry alone (no clock, no randomness, no I/O that can fail differently on two servers).
 */
export interface StateMachine<Result = unknown> {
  /** Applies a committed `normal` entry and returns the proposer's result. */
  apply(entry: Entry): Result;
  /** Captures the state as of the last applied entry. Must not block applies for long. */
  snapshot(): FsmSnapshot;
  /** Replaces the whole state with a snapshot's. */
  restore(chunks: AsyncIterable<Uint8Array>): Promise<void>;
}
