import { EntryColumns } from './entry-columns.ts';
import { RaftInvariantError } from './errors.ts';
import type { Entry, SnapshotMeta } from './types.ts';

/**
 * The in-memory Raft log: everything after the last snapshot, plus the bookkeeping of what is
 * durable, committed and applied. Invariants (checked, a breach throws):
 *   applied <= committed <= lastIndex, snapshotIndex <= committed
 *   snapshotIndex <= applied, except while a snapshot from the leader waits to be restored
 *   snapshotIndex < stableNext <= lastIndex + 1   (entries from stableNext on are not yet persisted)
 * The log is bounded by compaction: the driver snapshots and calls {@link compact} periodically.
 * Entries are stored in {@link EntryColumns}; the Entry objects this class returns are built on
 * each call (their data is a view of the stored bytes), so callers hold them only briefly.
 */
export class RaftLog {
  /** Index and term of the last entry covered by the snapshot (0, 0 when none). */
  snapshotIndex = 0;
  snapshotTerm = 0;
  /** entries[i] has index snapshotIndex + 1 + i. */
  private entries = new EntryColumns();
  committed = 0;
  /**
   * The last index the driver has applied and this server has written, as of the driver's last
   * advance: where a snapshot may be taken.
   */
  applied = 0;
  /**
   * The last index handed to the driver for applying, by a Ready or early while the driver still
   * writes one (see RaftCore.takeEarlyCommitted); `applied` catches up once it is written.
   */
  handed = 0;
  /** The first index not yet durable. */
  stableNext = 1;
  /** A snapshot received from the leader, waiting to be persisted and restored by the driver. */
  pendingSnapshot: SnapshotMeta | null = null;

  /** Restores what the driver loaded from storage (all of it durable). */
  static fromStorage(snapshot: SnapshotMeta | null, entries: Entry[], commit: number): RaftLog {
    const log = new RaftLog();
    if (snapshot) {
      log.snapshotIndex = snapshot.index;
      log.snapshotTerm = snapshot.term;
    }
    for (const [i, e] of entries.entries()) {
      if (e.index !== log.snapshotIndex + 1 + i) {
        throw new RaftInvariantError(`stored log is not contiguous at index ${e.index}`);
      }
    }
    for (const e of entries) log.entries.push(e);
    log.stableNext = log.lastIndex() + 1;
    // Entries up to the stored commit index were applied before a crash, but the FSM lives in memory:
    // the driver restores it from the snapshot and re-applies from there.
    log.committed = Math.max(log.snapshotIndex, Math.min(commit, log.lastIndex()));
    log.applied = log.snapshotIndex;
    return log;
  }

  firstIndex(): number {
    return this.snapshotIndex + 1;
  }

  lastIndex(): number {
    return this.snapshotIndex + this.entries.length;
  }

  lastTerm(): number {
    return this.entries.length > 0 ? this.entries.term(this.entries.length - 1) : this.snapshotTerm;
  }

  /** The term of the entry at `index`, or undefined when compacted away or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.snapshotIndex) return this.snapshotTerm;
    if (index < this.snapshotIndex || index > this.lastIndex()) return undefined;
    return this.entries.term(index - this.snapshotIndex - 1);
  }

  entryAt(index: number): Entry | undefined {
    if (index <= this.snapshotIndex || index > this.lastIndex()) return undefined;
    return this.entries.at(index - this.snapshotIndex - 1, index);
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** §5.4.1: a candidate's log is at least as up-to-date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Entries in [lo, hi), at least one (if any) and then at most `maxBytes` in total.
   * Returns undefined when `lo` has been compacted away (the caller sends a snapshot instead).
   */
  slice(lo: number, hi: number, maxBytes: number): Entry[] | undefined {
    if (lo <= this.snapshotIndex) return undefined;
    hi = Math.min(hi, this.lastIndex() + 1);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const at = i - this.snapshotIndex - 1;
      bytes += this.entries.size(at);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(this.entries.at(at, i));
    }
    return out;
  }

  /** Appends entries at the end (the leader's own proposals). */
  append(entries: Entry[]): void {
    for (const e of entries) {
      if (e.index !== this.lastIndex() + 1) {
        throw new RaftInvariantError(`append of index ${e.index} after last index ${this.lastIndex()}`);
      }
      this.entries.push(e);
    }
  }

  /**
   * The follower side of AppendEntries (§5.3): if our entry at prevIndex has prevTerm, append
   * `entries`, replacing any conflicting suffix, and return the index of the last new entry;
   * otherwise return -1. Returns the first conflicting index replaced through `onTruncate`.
   */
  maybeAppend(
    prevIndex: number,
    prevTerm: number,
    entries: Entry[],
    onTruncate: (from: number) => void,
  ): number {
    if (!this.matchTerm(prevIndex, prevTerm)) return -1;
    const lastNew = prevIndex + entries.length;
    for (const e of entries) {
      if (e.index <= this.snapshotIndex) continue; // already covered by our snapshot, hence committed
      const t = this.term(e.index);
      if (t === e.term) continue;
      if (t !== undefined) {
        if (e.index <= this.committed) {
          throw new RaftInvariantError(`entry ${e.index} conflicts with the committed log`);
        }
        this.truncateFrom(e.index);
        onTruncate(e.index);
      }
      this.append(entries.slice(entries.indexOf(e)).filter((x) => x.index > this.snapshotIndex));
      break;
    }
    return lastNew;
  }

  private truncateFrom(index: number): void {
    this.entries.truncate(index - this.snapshotIndex - 1);
    if (this.stableNext > index) this.stableNext = index;
  }

  /**
   * The largest index <= `index` whose term is <= `term` (etcd's findConflictByTerm): where a log
   * that has `term` at some point can first agree with ours, to skip whole terms when probing.
   */
  findConflictByTerm(index: number, term: number): number {
    index = Math.min(index, this.lastIndex());
    for (; index > this.snapshotIndex; index--) {
      const t = this.term(index);
      if (t !== undefined && t <= term) return index;
    }
    return this.snapshotIndex;
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    if (index > this.lastIndex()) {
      throw new RaftInvariantError(`commit ${index} is beyond the last index ${this.lastIndex()}`);
    }
    this.committed = index;
  }

  /** Entries to hand over for persisting. */
  unstableEntries(): Entry[] {
    return this.slice(this.stableNext, this.lastIndex() + 1, Number.POSITIVE_INFINITY) ?? [];
  }

  /** The driver persisted entries up to `index` (which had `term`). */
  stableTo(index: number, term: number): void {
    // A later truncation may have replaced what was persisted; only a matching term proves it is ours.
    if (this.term(index) === term && index >= this.stableNext) this.stableNext = index + 1;
  }

  /** The last index handed out or applied: `applied` passes `handed` after a restored snapshot. */
  private get handedOrApplied(): number {
    return Math.max(this.applied, this.handed);
  }

  hasNextCommitted(): boolean {
    return this.committed > this.handedOrApplied && this.pendingSnapshot === null;
  }

  /**
   * Hands over the committed entries not yet handed over for applying, at most `maxBytes` (at
   * least one).
   */
  nextCommitted(maxBytes: number): Entry[] {
    if (!this.hasNextCommitted()) return [];
    const from = this.handedOrApplied + 1;
    const entries = this.slice(from, this.committed + 1, maxBytes) ?? [];
    if (entries.length > 0) this.handed = entries[entries.length - 1].index;
    return entries;
  }

  appliedTo(index: number): void {
    if (index > this.committed || index < this.applied) {
      throw new RaftInvariantError(`applied ${index} outside [${this.applied}, ${this.committed}]`);
    }
    this.applied = index;
  }

  /** The driver restored the FSM from the pending snapshot. */
  appliedSnapshot(meta: SnapshotMeta): void {
    if (this.pendingSnapshot === meta) this.pendingSnapshot = null;
    if (meta.index > this.applied) this.applied = meta.index;
  }

  /** Replaces the whole log with a snapshot received from the leader (§7). */
  restore(meta: SnapshotMeta): void {
    this.entries.clear();
    this.snapshotIndex = meta.index;
    this.snapshotTerm = meta.term;
    this.committed = meta.index;
    // `applied` moves to meta.index only once the driver has restored the FSM (appliedSnapshot): a
    // Ready handed out before this one may still be applying older entries.
    this.stableNext = meta.index + 1;
    this.pendingSnapshot = meta;
  }

  /** Drops entries up to `index`, which a durable snapshot covers. */
  compact(index: number, term: number): void {
    if (index <= this.snapshotIndex) return;
    if (index > this.applied) throw new RaftInvariantError(`compact ${index} beyond applied ${this.applied}`);
    if (this.term(index) !== term) throw new RaftInvariantError(`compact ${index}: term mismatch`);
    this.entries.dropFront(index - this.snapshotIndex);
    this.snapshotIndex = index;
    this.snapshotTerm = term;
  }

  /** Bytes of entries in (from, to]. */
  bytesBetween(from: number, to: number): number {
    let n = 0;
    for (let i = Math.max(from, this.snapshotIndex) + 1; i <= Math.min(to, this.lastIndex()); i++) {
      n += this.entries.size(i - this.snapshotIndex - 1);
    }
    return n;
  }
}
