import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { Level } from 'level';
import type { Logger } from 'pino';
import {
  checkAppend,
  checkHardState,
  copyMeta,
  EMPTY_HARD_STATE,
  ENTRY_TYPES,
  StorageClosedError,
  StorageMisuseError,
  sameSnapshot,
} from './memory-storage.ts';
import {
  CorruptStoreError,
  type PersistBatch,
  type PersistedState,
  type RaftStorage,
  type SnapshotSink,
  type StoredSnapshot,
} from './storage.ts';
import type { Configuration, Entry, HardState, SnapshotMeta } from './types.ts';

/*
 * Key layout (utf8 keys, binary values; every value starts with a big-endian CRC32 of the rest):
 *   v                    format version, JSON {"version":1}
 *   h                    hard state, JSON
 *   m/current            the current snapshot's record, JSON (meta, id, size, chunk count, CRC32 of the data)
 *   m/staged             a received snapshot waiting for persist({snapshot}), same shape
 *   e/<index:16 hex>     a log entry: crc u32 | index u64 | term u64 | type u8 | data
 *   s/<id>/<chunk:8 hex> a snapshot chunk: crc u32 | data; id = <index:16 hex>-<term:16 hex>-<random>
 * Fixed-width lowercase hex sorts like the numbers, so the log and each snapshot are contiguous key ranges.
 */
const FORMAT_VERSION = 1;
const KEY_VERSION = 'v';
const KEY_HARD_STATE = 'h';
const KEY_CURRENT = 'm/current';
const KEY_STAGED = 'm/staged';
const ENTRY_PREFIX = 'e/';
/** '0' follows '/', so `lt` this bound ends the range of every key under the prefix. */
const ENTRY_END = 'e0';
const CHUNK_PREFIX = 's/';
const CHUNK_END = 's0';
/**
 * Snapshot bytes are stored in pieces of this size (the last one shorter), one LevelDB value each,
 * each written and fsynced on its own. The log's appends queue behind the piece being written, so
 * the size bounds what a snapshot adds to a write's latency: 1 MiB pieces took 12-18 ms each on the
 * bench machine, 128 KiB ones ~2 ms. Readers take any size: a store written with other sizes loads.
 */
const CHUNK_SIZE = 128 * 1024;
const ENTRY_HEADER = 4 + 8 + 8 + 1;
const TWO_32 = 2 ** 32;

type Op = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

/** The durable description of a snapshot: what load() checks its chunks against. */
interface SnapshotRecord {
  meta: SnapshotMeta;
  id: string;
  size: number;
  chunks: number;
  crc: number;
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');
const entryKey = (index: number) => ENTRY_PREFIX + hex(index, 16);
const chunkFirst = (id: string) => `${CHUNK_PREFIX}${id}/`;
const chunkEnd = (id: string) => `${CHUNK_PREFIX}${id}0`;
const chunkKey = (id: string, n: number) => chunkFirst(id) + hex(n, 8);

function isIndex(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function parseHex(s: string, width: number): number | undefined {
  if (s.length !== width || !/^[0-9a-f]+$/.test(s)) return undefined;
  const n = Number.parseInt(s, 16);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Fills in the leading CRC32 of a record whose payload starts at byte 4. */
function seal(record: Uint8Array): Uint8Array {
  new DataView(record.buffer, record.byteOffset, 4).setUint32(0, crc32(record.subarray(4)));
  return record;
}

function checksumOk(record: Uint8Array): boolean {
  if (record.byteLength < 4) return false;
  const view = new DataView(record.buffer, record.byteOffset, record.byteLength);
  return view.getUint32(0) === crc32(record.subarray(4));
}

function sealJson(value: unknown): Uint8Array {
  const json = Buffer.from(JSON.stringify(value), 'utf8');
  const record = new Uint8Array(4 + json.byteLength);
  record.set(json, 4);
  return seal(record);
}

function encodeEntry(e: Entry): Uint8Array {
  const record = new Uint8Array(ENTRY_HEADER + e.data.byteLength);
  const view = new DataView(record.buffer);
  view.setUint32(4, Math.floor(e.index / TWO_32));
  view.setUint32(8, e.index >>> 0);
  view.setUint32(12, Math.floor(e.term / TWO_32));
  view.setUint32(16, e.term >>> 0);
  view.setUint8(20, ENTRY_TYPES.indexOf(e.type));
  record.set(e.data, ENTRY_HEADER);
  return seal(record);
}

function encodeSnapshot(r: SnapshotRecord): Uint8Array {
  const { index, term, config } = r.meta;
  return sealJson({ index, term, config, id: r.id, size: r.size, chunks: r.chunks, crc: r.crc });
}

function isConfig(c: unknown): c is Configuration {
  const servers = (c as Configuration | null)?.servers;
  return (
    Array.isArray(servers) &&
    servers.every(
      (s) =>
        typeof s?.id === 'string' &&
        typeof s.address === 'string' &&
        (s.suffrage === 'voter' || s.suffrage === 'nonvoter'),
    )
  );
}

/**
 * {@link RaftStorage} in one LevelDB, so that every {@link PersistBatch} (snapshot install included)
 * is one atomic write batch, fsynced unless it only moves the commit index. Mutations run one at a
 * time, in call order, so the cached bookkeeping (last index, current snapshot) always matches the
 * disk.
 */
export class LevelRaftStorage implements RaftStorage {
  private readonly db: Level<string, Uint8Array>;
  private readonly dir: string;
  private readonly log: Logger | undefined;
  private hardState: HardState = { ...EMPTY_HARD_STATE };
  private current: SnapshotRecord | null = null;
  private staged: SnapshotRecord | null = null;
  /** Highest entry key stored (0 for none): where a suffix replacement starts deleting. */
  private lastIndex = 0;
  /** Term of the entry at `lastIndex`, once known, to check appends without a read. */
  private lastTerm: number | undefined;
  private closed = false;
  private queue: Promise<unknown> = Promise.resolve();
  /** The log compaction's delete in flight, which runs beside the queue (see compactLog). */
  private compacting: Promise<void> = Promise.resolve();

  private constructor(db: Level<string, Uint8Array>, dir: string, log: Logger | undefined) {
    this.db = db;
    this.dir = dir;
    this.log = log;
  }

  static async open(dir: string, opts: { logger?: Logger } = {}): Promise<LevelRaftStorage> {
    const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db.open();
    const store = new LevelRaftStorage(db, dir, opts.logger);
    try {
      await store.checkFormat();
      await store.readState();
      await store.collectGarbage();
    } catch (err) {
      await db.close();
      throw err;
    }
    store.log?.info(
      { dir, lastIndex: store.lastIndex, snapshot: store.current?.meta.index ?? 0 },
      'raft store opened',
    );
    return store;
  }

  private corrupt(detail: string): CorruptStoreError {
    return new CorruptStoreError(this.dir, detail);
  }

  /** Runs `fn` after every mutation called before it has settled. */
  private exclusive<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new StorageClosedError(what));
    const run = this.queue.then(fn);
    this.queue = run.catch(() => {});
    return run;
  }

  private async checkFormat(): Promise<void> {
    const value = await this.db.get(KEY_VERSION);
    if (value === undefined) {
      const [someKey] = await this.db.keys({ limit: 1 }).all();
      if (someKey !== undefined) {
        throw this.corrupt(
          `no format version key "${KEY_VERSION}" but the store holds data (key "${someKey}")`,
        );
      }
      await this.db.put(KEY_VERSION, sealJson({ version: FORMAT_VERSION }), { sync: true });
      return;
    }
    const { version } = this.decodeJson(KEY_VERSION, value) as { version?: unknown };
    if (version !== FORMAT_VERSION) {
      throw this.corrupt(
        `format version ${JSON.stringify(version)}, this build reads only ${FORMAT_VERSION}`,
      );
    }
  }

  /** Reads the small records and the last entry key: what every write needs to know. */
  private async readState(): Promise<void> {
    const [hs, current, staged] = await this.db.getMany([KEY_HARD_STATE, KEY_CURRENT, KEY_STAGED]);
    this.hardState = hs === undefined ? { ...EMPTY_HARD_STATE } : this.decodeHardState(hs);
    this.current = current === undefined ? null : this.decodeSnapshot(KEY_CURRENT, current);
    this.staged = staged === undefined ? null : this.decodeSnapshot(KEY_STAGED, staged);
    const [last] = await this.db.keys({ gte: ENTRY_PREFIX, lt: ENTRY_END, reverse: true, limit: 1 }).all();
    this.lastIndex = last === undefined ? 0 : this.parseEntryKey(last);
    this.lastTerm = undefined;
  }

  /** Deletes chunks no record points to: left by sinks that a crash interrupted, or by a crash mid-cleanup. */
  private async collectGarbage(): Promise<void> {
    const live = new Set([this.current?.id, this.staged?.id]);
    let from = CHUNK_PREFIX;
    for (;;) {
      const [key] = await this.db.keys({ gte: from, lt: CHUNK_END, limit: 1 }).all();
      if (key === undefined) return;
      const slash = key.indexOf('/', CHUNK_PREFIX.length);
      const id = key.slice(CHUNK_PREFIX.length, slash < 0 ? undefined : slash);
      if (!live.has(id)) {
        this.log?.debug({ id }, 'raft store: deleting orphaned snapshot chunks');
        await this.db.clear({ gte: chunkFirst(id), lt: chunkEnd(id) });
        if (slash < 0) await this.db.del(key);
      }
      from = chunkEnd(id);
    }
  }

  private decodeJson(key: string, value: Uint8Array): unknown {
    if (!checksumOk(value)) throw this.corrupt(`record "${key}": checksum mismatch`);
    try {
      return JSON.parse(
        Buffer.from(value.buffer, value.byteOffset + 4, value.byteLength - 4).toString('utf8'),
      );
    } catch {
      throw this.corrupt(`record "${key}": not valid JSON`);
    }
  }

  private decodeHardState(value: Uint8Array): HardState {
    const o = this.decodeJson(KEY_HARD_STATE, value) as Partial<HardState> | null;
    if (!isIndex(o?.term) || !isIndex(o.commit) || typeof o.vote !== 'string') {
      throw this.corrupt(`record "${KEY_HARD_STATE}": malformed hard state`);
    }
    return { term: o.term, vote: o.vote, commit: o.commit };
  }

  private decodeSnapshot(key: string, value: Uint8Array): SnapshotRecord {
    const o = this.decodeJson(key, value) as Record<string, unknown> | null;
    if (
      !isIndex(o?.index) ||
      !isIndex(o.term) ||
      !isConfig(o.config) ||
      typeof o.id !== 'string' ||
      !isIndex(o.size) ||
      !isIndex(o.chunks) ||
      !isIndex(o.crc)
    ) {
      throw this.corrupt(`record "${key}": malformed snapshot record`);
    }
    return {
      meta: { index: o.index, term: o.term, config: o.config },
      id: o.id,
      size: o.size,
      chunks: o.chunks,
      crc: o.crc,
    };
  }

  private parseEntryKey(key: string): number {
    const index = parseHex(key.slice(ENTRY_PREFIX.length), 16);
    if (index === undefined) throw this.corrupt(`malformed log key "${key}"`);
    return index;
  }

  private decodeEntry(index: number, value: Uint8Array): Entry {
    if (value.byteLength < ENTRY_HEADER) throw this.corrupt(`entry ${index}: record truncated`);
    if (!checksumOk(value)) throw this.corrupt(`entry ${index}: checksum mismatch`);
    const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
    const stored = view.getUint32(4) * TWO_32 + view.getUint32(8);
    if (stored !== index) throw this.corrupt(`entry ${index}: record holds index ${stored}`);
    const type = ENTRY_TYPES[view.getUint8(20)];
    if (type === undefined) throw this.corrupt(`entry ${index}: unknown type code ${view.getUint8(20)}`);
    return {
      index,
      term: view.getUint32(12) * TWO_32 + view.getUint32(16),
      type,
      // A plain Uint8Array view (not the Buffer LevelDB hands back): callers compare and copy it freely.
      data: new Uint8Array(value.buffer, value.byteOffset + ENTRY_HEADER, value.byteLength - ENTRY_HEADER),
    };
  }

  async load(): Promise<PersistedState> {
    return this.exclusive('load', async () => {
      await this.readState();
      const current = this.current;
      if (current) {
        for await (const _ of this.scanChunks(current)) {
          // scanChunks verifies each chunk and the totals; reading them all is the check.
        }
      }
      const snapIndex = current?.meta.index ?? 0;
      const entries: Entry[] = [];
      let prev: Entry | undefined;
      // Entries at or below the snapshot index are ignored: a compaction that had not run (or whose
      // unsynced delete was lost) leaves them behind, harmlessly.
      for await (const [key, value] of this.db.iterator({ gt: entryKey(snapIndex), lt: ENTRY_END })) {
        const e = this.decodeEntry(this.parseEntryKey(key), value);
        const expected = (prev?.index ?? snapIndex) + 1;
        if (e.index !== expected) {
          throw this.corrupt(
            prev
              ? `log gap: entry ${expected} is missing (next stored entry is ${e.index})`
              : `log starts at entry ${e.index}, expected ${expected} (right after the snapshot)`,
          );
        }
        const prevTerm = prev?.term ?? current?.meta.term ?? 0;
        if (e.term < prevTerm) {
          throw this.corrupt(`entry ${e.index} has term ${e.term}, below the term ${prevTerm} before it`);
        }
        entries.push(e);
        prev = e;
      }
      const last = prev?.index ?? snapIndex;
      if (this.hardState.commit > last) {
        throw this.corrupt(`hard state commit ${this.hardState.commit} is past the last index ${last}`);
      }
      if (snapIndex > 0) await this.db.clear({ gte: ENTRY_PREFIX, lte: entryKey(snapIndex) });
      this.lastIndex = prev?.index ?? 0;
      this.lastTerm = prev?.term;
      return {
        hardState: { ...this.hardState },
        snapshot: current && copyMeta(current.meta),
        entries,
      };
    });
  }

  /** The term of the entry at `index` as it will be once the pending batch is written, if still stored. */
  private async termAt(
    index: number,
    current: SnapshotRecord | null,
    lastIndex: number,
    lastTerm: number | undefined,
  ): Promise<number | undefined> {
    if (index === 0) return 0;
    if (current && current.meta.index === index) return current.meta.term;
    if (index > lastIndex) return undefined;
    if (index === lastIndex && lastTerm !== undefined) return lastTerm;
    const value = await this.db.get(entryKey(index));
    return value === undefined ? undefined : this.decodeEntry(index, value).term;
  }

  async persist(batch: PersistBatch): Promise<void> {
    return this.exclusive('persist', async () => {
      const ops: Op[] = [];
      let { current, staged, lastIndex, lastTerm } = this;
      let replaced: SnapshotRecord | null = null;
      if (batch.snapshot) {
        if (!staged || !sameSnapshot(staged.meta, batch.snapshot)) {
          throw new StorageMisuseError(
            `no staged snapshot at index ${batch.snapshot.index} term ${batch.snapshot.term} to install`,
          );
        }
        // The exact keys, not the cached range: an unsynced compaction may have left older ones behind.
        for (const key of await this.db.keys({ gte: ENTRY_PREFIX, lt: ENTRY_END }).all()) {
          ops.push({ type: 'del', key });
        }
        ops.push(
          { type: 'put', key: KEY_CURRENT, value: encodeSnapshot(staged) },
          { type: 'del', key: KEY_STAGED },
        );
        replaced = current;
        current = staged;
        staged = null;
        lastIndex = 0;
        lastTerm = undefined;
      }
      const snapIndex = current?.meta.index ?? 0;
      const entries = batch.entries ?? [];
      if (entries.length > 0) {
        const prevTerm = await this.termAt(entries[0].index - 1, current, lastIndex, lastTerm);
        checkAppend(entries, Math.max(lastIndex, snapIndex), prevTerm);
        const last = entries[entries.length - 1];
        // Keys from entries[0].index up to `last` are overwritten by the puts; only the rest goes.
        for (let i = last.index + 1; i <= lastIndex; i++) ops.push({ type: 'del', key: entryKey(i) });
        for (const e of entries) ops.push({ type: 'put', key: entryKey(e.index), value: encodeEntry(e) });
        lastIndex = last.index;
        lastTerm = last.term;
      }
      const hardState = batch.hardState ? { ...batch.hardState } : this.hardState;
      checkHardState(hardState, Math.max(lastIndex, snapIndex));
      if (batch.hardState) ops.push({ type: 'put', key: KEY_HARD_STATE, value: sealJson(hardState) });
      if (ops.length === 0) return;
      // A batch that only moves the commit index need not wait for the disk (etcd's MustSync): the
      // commit index is volatile in Raft (§5.3: a majority holds every committed entry), and a
      // crash that loses it recovers a lower one, which the leader raises again. Term, vote, entries
      // and snapshots are always fsynced, and LevelDB's write-ahead log is sequential, so the next
      // synced batch makes this one durable too. This saves the leader a second fsync per write.
      const mustSync =
        batch.snapshot != null ||
        entries.length > 0 ||
        (batch.hardState != null &&
          (batch.hardState.term !== this.hardState.term || batch.hardState.vote !== this.hardState.vote));
      await this.db.batch(ops, { sync: mustSync });
      this.current = current;
      this.staged = staged;
      this.lastIndex = lastIndex;
      this.lastTerm = lastTerm;
      this.hardState = hardState;
      if (replaced) await this.dropChunks(replaced.id);
    });
  }

  async compactLog(upTo: number): Promise<void> {
    if (this.closed) throw new StorageClosedError('compactLog');
    const snapIndex = this.current?.meta.index ?? 0;
    if (upTo > snapIndex) {
      throw new StorageMisuseError(`cannot compact the log to ${upTo}, past the snapshot index ${snapIndex}`);
    }
    // Outside the queue: deleting a snapshot interval's entries (~80k under bench:kv) took ~100 ms,
    // which every append waited for. Nothing else touches these keys: appends write above the commit
    // index, which is at or past the snapshot's, and a snapshot install deletes every entry anyway.
    // LevelDB interleaves the delete's batches with the appends'. No sync: if the delete is lost in
    // a crash, load() ignores entries the snapshot covers.
    const clearing = this.db.clear({ gte: ENTRY_PREFIX, lte: entryKey(upTo) });
    this.compacting = clearing.catch(() => {});
    await clearing;
    await this.exclusive('compactLog', async () => {
      // Unless entries were appended meanwhile, the log is now empty.
      if (upTo >= this.lastIndex) {
        this.lastIndex = 0;
        this.lastTerm = undefined;
      }
    });
  }

  async createSnapshot(meta: SnapshotMeta): Promise<SnapshotSink> {
    if (this.closed) throw new StorageClosedError('createSnapshot');
    return this.sink(meta, 'current');
  }

  async receiveSnapshot(meta: SnapshotMeta): Promise<SnapshotSink> {
    if (this.closed) throw new StorageClosedError('receiveSnapshot');
    return this.sink(meta, 'staged');
  }

  private sink(snapshotMeta: SnapshotMeta, mode: 'current' | 'staged'): SnapshotSink {
    const meta = copyMeta(snapshotMeta);
    const id = `${hex(meta.index, 16)}-${hex(meta.term, 16)}-${randomBytes(4).toString('hex')}`;
    // One chunk-sized record being filled (4 bytes of CRC first), so each byte is copied once.
    let buf: Uint8Array | undefined;
    let fill = 0;
    let chunks = 0;
    let size = 0;
    let crc = 0;
    let done = false;
    const check = (what: string) => {
      if (this.closed) throw new StorageClosedError(`snapshot ${what}`);
      if (done) throw new StorageMisuseError(`snapshot sink already committed or aborted (${what})`);
    };
    const put = (record: Uint8Array): Op => ({
      type: 'put',
      key: chunkKey(id, chunks++),
      value: seal(record),
    });
    return {
      write: async (chunk) => {
        check('write');
        const ops: Op[] = [];
        crc = crc32(chunk, crc);
        size += chunk.byteLength;
        for (let off = 0; off < chunk.byteLength; ) {
          buf ??= new Uint8Array(4 + CHUNK_SIZE);
          const n = Math.min(CHUNK_SIZE - fill, chunk.byteLength - off);
          buf.set(chunk.subarray(off, off + n), 4 + fill);
          fill += n;
          off += n;
          if (fill === CHUNK_SIZE) {
            ops.push(put(buf));
            buf = undefined;
            fill = 0;
          }
        }
        // Synced, although the commit syncs too: LevelDB does not fsync a write-ahead log it rotates
        // away from, so an unsynced chunk could be lost on power failure behind a synced commit.
        if (ops.length > 0) await this.exclusive('snapshot write', () => this.db.batch(ops, { sync: true }));
      },
      commit: async () => {
        check('commit');
        done = true;
        const ops: Op[] = buf && fill > 0 ? [put(buf.slice(0, 4 + fill))] : [];
        buf = undefined;
        const record: SnapshotRecord = { meta, id, size, chunks, crc };
        try {
          await this.exclusive('snapshot commit', () => this.installSnapshot(record, mode, ops));
        } catch (err) {
          await this.dropChunksQuietly(id);
          throw err;
        }
      },
      abort: async () => {
        if (done) return;
        done = true;
        buf = undefined;
        await this.dropChunksQuietly(id);
      },
    };
  }

  /** Makes a fully written snapshot current or staged, then deletes the snapshots it supersedes. */
  private async installSnapshot(
    record: SnapshotRecord,
    mode: 'current' | 'staged',
    ops: Op[],
  ): Promise<void> {
    const obsolete: SnapshotRecord[] = [];
    if (mode === 'current') {
      const current = this.current;
      if (current && record.meta.index < current.meta.index) {
        throw new StorageMisuseError(
          `snapshot at index ${record.meta.index} is older than the current one at ${current.meta.index}`,
        );
      }
      ops.push({ type: 'put', key: KEY_CURRENT, value: encodeSnapshot(record) });
      if (current) obsolete.push(current);
      if (this.staged && this.staged.meta.index <= record.meta.index) {
        ops.push({ type: 'del', key: KEY_STAGED });
        obsolete.push(this.staged);
      }
    } else {
      ops.push({ type: 'put', key: KEY_STAGED, value: encodeSnapshot(record) });
      if (this.staged) obsolete.push(this.staged);
    }
    await this.db.batch(ops, { sync: true });
    if (mode === 'current') {
      this.current = record;
      if (this.staged && obsolete.includes(this.staged)) this.staged = null;
    } else {
      this.staged = record;
    }
    for (const old of obsolete) await this.dropChunks(old.id);
  }

  /** Unsynced and best effort: a crash leaves orphans that the next open() collects. */
  private async dropChunks(id: string): Promise<void> {
    try {
      await this.db.clear({ gte: chunkFirst(id), lt: chunkEnd(id) });
    } catch (err) {
      this.log?.warn({ err, id }, 'raft store: could not delete snapshot chunks');
    }
  }

  private async dropChunksQuietly(id: string): Promise<void> {
    if (this.closed) return;
    await this.exclusive('snapshot abort', () => this.dropChunks(id)).catch(() => {});
  }

  /** Yields a snapshot's data chunk by chunk, verifying each chunk and, at the end, the totals. */
  private async *scanChunks(record: SnapshotRecord): AsyncGenerator<Uint8Array> {
    const what = `snapshot ${record.meta.index}/${record.meta.term}`;
    let n = 0;
    let size = 0;
    let crc = 0;
    for await (const [key, value] of this.db.iterator({
      gte: chunkFirst(record.id),
      lt: chunkEnd(record.id),
    })) {
      if (key !== chunkKey(record.id, n))
        throw this.corrupt(`${what}: chunk ${n} missing (found key "${key}")`);
      if (!checksumOk(value)) throw this.corrupt(`${what}: chunk ${n} checksum mismatch`);
      const data = new Uint8Array(value.buffer, value.byteOffset + 4, value.byteLength - 4);
      n++;
      size += data.byteLength;
      crc = crc32(data, crc);
      yield data;
    }
    if (n !== record.chunks || size !== record.size) {
      throw this.corrupt(
        `${what}: found ${n} chunks (${size} bytes), its record says ${record.chunks} (${record.size} bytes)`,
      );
    }
    if (crc !== record.crc) throw this.corrupt(`${what}: data checksum mismatch`);
  }

  async currentSnapshot(): Promise<StoredSnapshot | null> {
    if (this.closed) throw new StorageClosedError('currentSnapshot');
    const record = this.current;
    if (!record) return null;
    return { meta: copyMeta(record.meta), size: record.size, chunks: () => this.readSnapshot(record) };
  }

  private async *readSnapshot(record: SnapshotRecord): AsyncGenerator<Uint8Array> {
    if (this.closed) throw new StorageClosedError('snapshot read');
    // LevelDB iterators read a consistent view, so only a read that starts after the snapshot was
    // superseded (and its chunks deleted) can miss data; report that as what it is, not as corruption.
    if (this.current?.id !== record.id) {
      throw new StorageMisuseError(`snapshot ${record.meta.index}/${record.meta.term} is no longer current`);
    }
    yield* this.scanChunks(record);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    await this.compacting;
    await this.db.close();
    this.log?.debug({ dir: this.dir }, 'raft store closed');
  }
}
