import type { PersistBatch, PersistedState, RaftStorage, SnapshotSink, StoredSnapshot } from './storage.ts';
import type { Entry, EntryType, HardState, SnapshotMeta } from './types.ts';

/** A storage method was called after `close()`. */
export class StorageClosedError extends Error {
  override readonly name = 'StorageClosedError';
  constructor(what: string) {
    super(`raft storage is closed (${what})`);
  }
}

/**
 * The caller asked for something that would break a storage invariant (a log gap, a commit past the
 * end of the log, promoting a snapshot that was never staged...). This is a bug in the caller.
 */
export class StorageMisuseError extends Error {
  override readonly name = 'StorageMisuseError';
}

export const ENTRY_TYPES: readonly EntryType[] = ['normal', 'noop', 'config'];

export const EMPTY_HARD_STATE: Readonly<HardState> = Object.freeze({ term: 0, vote: '', commit: 0 });

function isIndex(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/**
 * Checks entries about to be appended. Both stores reject at write time what `load()` would reject at
 * the next start, so a core bug fails loudly at once instead of leaving a store that cannot boot.
 * `lastIndex` is the highest index the store knows (log or snapshot); `prevTerm` the term of the entry
 * just before `entries[0]`, when the store still has it.
 */
export function checkAppend(
  entries: readonly Entry[],
  lastIndex: number,
  prevTerm: number | undefined,
): void {
  const first = entries[0];
  if (!isIndex(first.index) || first.index < 1) {
    throw new StorageMisuseError(`cannot append entry with index ${first.index}`);
  }
  if (first.index > lastIndex + 1) {
    throw new StorageMisuseError(`appending entry ${first.index} would leave a gap after index ${lastIndex}`);
  }
  if (prevTerm !== undefined && first.term < prevTerm) {
    throw new StorageMisuseError(
      `entry ${first.index} has term ${first.term}, below the previous entry's term ${prevTerm}`,
    );
  }
  let prev: Entry | undefined;
  for (const e of entries) {
    if (prev && e.index !== prev.index + 1) {
      throw new StorageMisuseError(`entries not contiguous: ${e.index} follows ${prev.index}`);
    }
    if (!isIndex(e.term) || (prev && e.term < prev.term)) {
      throw new StorageMisuseError(`entry ${e.index} has invalid or decreasing term ${e.term}`);
    }
    if (!ENTRY_TYPES.includes(e.type)) {
      throw new StorageMisuseError(`entry ${e.index} has unknown type ${String(e.type)}`);
    }
    if (!(e.data instanceof Uint8Array)) {
      throw new StorageMisuseError(`entry ${e.index} data is not a Uint8Array`);
    }
    prev = e;
  }
}

export function checkHardState(hs: HardState, lastIndex: number): void {
  if (!isIndex(hs.term) || !isIndex(hs.commit) || typeof hs.vote !== 'string') {
    throw new StorageMisuseError(`invalid hard state ${JSON.stringify(hs)}`);
  }
  if (hs.commit > lastIndex) {
    throw new StorageMisuseError(`hard state commit ${hs.commit} is past the last index ${lastIndex}`);
  }
}

export function sameSnapshot(a: SnapshotMeta, b: SnapshotMeta): boolean {
  return a.index === b.index && a.term === b.term;
}

export function copyMeta(meta: SnapshotMeta): SnapshotMeta {
  return {
    index: meta.index,
    term: meta.term,
    config: { servers: meta.config.servers.map((s) => ({ ...s })) },
  };
}

function lastIndexOf(log: readonly Entry[]): number {
  return log.length === 0 ? 0 : log[log.length - 1].index;
}

function copyEntry(e: Entry): Entry {
  return { index: e.index, term: e.term, type: e.type, data: e.data.slice() };
}

interface MemorySnapshot {
  meta: SnapshotMeta;
  chunks: Uint8Array[];
  size: number;
}

function copySnapshot(s: MemorySnapshot | null): MemorySnapshot | null {
  return s && { meta: copyMeta(s.meta), chunks: s.chunks.map((c) => c.slice()), size: s.size };
}

/**
 * {@link RaftStorage} in memory, with the same semantics and checks as the LevelDB store. Everything
 * persisted is "durable", so {@link MemoryRaftStorage.crashCopy} models a crash: it keeps exactly what
 * persisted and committed, and drops what was in flight (open snapshot sinks).
 */
export class MemoryRaftStorage implements RaftStorage {
  private hardState: HardState = { ...EMPTY_HARD_STATE };
  /** Contiguous; may start at or below the snapshot index, since compaction is the caller's call. */
  private log: Entry[] = [];
  private current: MemorySnapshot | null = null;
  private staged: MemorySnapshot | null = null;
  private closed = false;

  /** A new store holding what this one would still hold after a crash at this instant. */
  crashCopy(): MemoryRaftStorage {
    const copy = new MemoryRaftStorage();
    copy.hardState = { ...this.hardState };
    copy.log = this.log.map(copyEntry);
    copy.current = copySnapshot(this.current);
    copy.staged = copySnapshot(this.staged);
    return copy;
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new StorageClosedError(what);
  }

  private termAt(index: number, snapshot: SnapshotMeta | null, log: Entry[]): number | undefined {
    if (index === 0) return 0;
    if (snapshot && snapshot.index === index) return snapshot.term;
    const first = log.length === 0 ? 0 : log[0].index;
    return log.length === 0 || index < first ? undefined : log[index - first]?.term;
  }

  async load(): Promise<PersistedState> {
    this.assertOpen('load');
    const after = this.current?.meta.index ?? 0;
    return {
      hardState: { ...this.hardState },
      snapshot: this.current && copyMeta(this.current.meta),
      entries: this.log.filter((e) => e.index > after).map(copyEntry),
    };
  }

  async persist(batch: PersistBatch): Promise<void> {
    this.assertOpen('persist');
    // Everything is checked before anything changes, so a rejected batch leaves no trace (atomicity).
    let current = this.current;
    let staged = this.staged;
    let log = this.log;
    if (batch.snapshot) {
      if (!this.staged || !sameSnapshot(this.staged.meta, batch.snapshot)) {
        throw new StorageMisuseError(
          `no staged snapshot at index ${batch.snapshot.index} term ${batch.snapshot.term} to install`,
        );
      }
      current = this.staged;
      staged = null;
      log = [];
    }
    const snapIndex = current?.meta.index ?? 0;
    const entries = batch.entries ?? [];
    if (entries.length > 0) {
      const lastLog = lastIndexOf(log);
      const first = entries[0].index;
      checkAppend(entries, Math.max(lastLog, snapIndex), this.termAt(first - 1, current?.meta ?? null, log));
      // checkAppend let a batch start past the log's end only when the whole log lies under the snapshot.
      const base = log.length === 0 ? first : log[0].index;
      const kept = first <= base || first > lastLog + 1 ? [] : log.slice(0, first - base);
      log = kept.concat(entries.map(copyEntry));
    }
    const hardState = batch.hardState ? { ...batch.hardState } : this.hardState;
    const lastIndex = Math.max(lastIndexOf(log), snapIndex);
    checkHardState(hardState, lastIndex);
    this.current = current;
    this.staged = staged;
    this.log = log;
    this.hardState = hardState;
  }

  async compactLog(upTo: number): Promise<void> {
    this.assertOpen('compactLog');
    const snapIndex = this.current?.meta.index ?? 0;
    if (upTo > snapIndex) {
      throw new StorageMisuseError(`cannot compact the log to ${upTo}, past the snapshot index ${snapIndex}`);
    }
    this.log = this.log.filter((e) => e.index > upTo);
  }

  async createSnapshot(meta: SnapshotMeta): Promise<SnapshotSink> {
    this.assertOpen('createSnapshot');
    return this.sink(meta, (s) => {
      if (this.current && s.meta.index < this.current.meta.index) {
        throw new StorageMisuseError(
          `snapshot at index ${s.meta.index} is older than the current one at ${this.current.meta.index}`,
        );
      }
      this.current = s;
      if (this.staged && this.staged.meta.index <= s.meta.index) this.staged = null;
    });
  }

  async receiveSnapshot(meta: SnapshotMeta): Promise<SnapshotSink> {
    this.assertOpen('receiveSnapshot');
    return this.sink(meta, (s) => {
      this.staged = s;
    });
  }

  private sink(meta: SnapshotMeta, install: (s: MemorySnapshot) => void): SnapshotSink {
    const chunks: Uint8Array[] = [];
    let size = 0;
    let done = false;
    const check = (what: string) => {
      this.assertOpen(what);
      if (done) throw new StorageMisuseError(`snapshot sink already finished (${what})`);
    };
    return {
      write: async (chunk) => {
        check('write');
        if (chunk.byteLength === 0) return;
        chunks.push(chunk.slice());
        size += chunk.byteLength;
      },
      commit: async () => {
        check('commit');
        done = true;
        install({ meta: copyMeta(meta), chunks, size });
      },
      abort: async () => {
        if (done) return;
        done = true;
        chunks.length = 0;
      },
    };
  }

  async currentSnapshot(): Promise<StoredSnapshot | null> {
    this.assertOpen('currentSnapshot');
    const s = this.current;
    if (!s) return null;
    return {
      meta: copyMeta(s.meta),
      size: s.size,
      async *chunks() {
        for (const c of s.chunks) yield c.slice();
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
