import type { Entry, HardState, SnapshotMeta } from './types.ts';

/** What a server finds on disk at start. */
export interface PersistedState {
  hardState: HardState;
  /** The current snapshot, if any; `entries` continue right after it. */
  snapshot: SnapshotMeta | null;
  /** Contiguous entries from `snapshot.index + 1` (or 1), possibly empty. */
  entries: Entry[];
}

/** One durable write, applied atomically and fsynced before the returned promise resolves. */
export interface PersistBatch {
  /** Make the snapshot staged by {@link RaftStorage.receiveSnapshot} current and drop the whole log. */
  snapshot?: SnapshotMeta | null;
  hardState?: HardState | null;
  /** Appended; a stored suffix starting at or after `entries[0].index` is replaced. */
  entries?: Entry[];
}

/** Collects a snapshot's bytes chunk by chunk, so no snapshot is ever held whole in memory. */
export interface SnapshotSink {
  write(chunk: Uint8Array): Promise<void>;
  /** Durably finishes the snapshot (see the method that made the sink for what it then becomes). */
  commit(): Promise<void>;
  /** Discards what was written. */
  abort(): Promise<void>;
}

export interface StoredSnapshot {
  meta: SnapshotMeta;
  /** Total size in bytes. */
  size: number;
  chunks(): AsyncIterable<Uint8Array>;
}

/**
 * Durable Raft state: the log, the hard state and snapshots (RaftStorage for LevelDB, and an
 * in-memory one for tests). Only the driver calls it.
 */
export interface RaftStorage {
  /** Reads and validates everything; throws {@link CorruptStoreError} naming what is wrong. */
  load(): Promise<PersistedState>;
  /**
   * Group commit: one atomic batch, one fsync, however many entries. A batch that only raises the
   * commit index may skip the fsync (the commit index may be recovered lower after a crash).
   */
  persist(batch: PersistBatch): Promise<void>;
  /** Drops entries with index <= `upTo` (they are covered by the current snapshot). */
  compactLog(upTo: number): Promise<void>;
  /** A snapshot this server took of its own FSM; `commit()` makes it current (older ones are deleted). */
  createSnapshot(meta: SnapshotMeta): Promise<SnapshotSink>;
  /** A snapshot streamed in from the leader; `commit()` stages it for {@link PersistBatch.snapshot}. */
  receiveSnapshot(meta: SnapshotMeta): Promise<SnapshotSink>;
  /** The current snapshot, or null. */
  currentSnapshot(): Promise<StoredSnapshot | null>;
  close(): Promise<void>;
}

/** The store on disk cannot be trusted: truncated, corrupt, or of an unknown format version. */
export class CorruptStoreError extends Error {
  override readonly name = 'CorruptStoreError';
  readonly path: string;
  constructor(path: string, detail: string) {
    super(`raft store at ${path} is unusable: ${detail}`);
    this.path = path;
  }
}
