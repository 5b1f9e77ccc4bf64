import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import test from 'ava';
import { Level } from 'level';
import { LevelRaftStorage } from '../../src/raft/level-storage.ts';
import { MemoryRaftStorage, StorageClosedError, StorageMisuseError } from '../../src/raft/memory-storage.ts';
import {
  CorruptStoreError,
  type RaftStorage,
  type SnapshotSink,
  type StoredSnapshot,
} from '../../src/raft/storage.ts';
import type { Entry, EntryType, SnapshotMeta } from '../../src/raft/types.ts';
import { entryFor, snapshotDataFor } from './fixtures/durability-data.ts';

// ---- Helpers ----

const utf8 = new TextEncoder();

function entry(
  index: number,
  term: number,
  type: EntryType = 'normal',
  text = `${type} ${index}@${term}`,
): Entry {
  return { index, term, type, data: utf8.encode(text) };
}

function range(from: number, to: number, term: number | ((i: number) => number)): Entry[] {
  const entries: Entry[] = [];
  for (let i = from; i <= to; i++) entries.push(entry(i, typeof term === 'number' ? term : term(i)));
  return entries;
}

/** Comparable form: ava tells a Buffer from a Uint8Array, and the store may hand back either view. */
function plain(entries: Entry[]) {
  return entries.map((e) => ({
    index: e.index,
    term: e.term,
    type: e.type,
    data: Buffer.from(e.data).toString('hex'),
  }));
}

function meta(index: number, term: number): SnapshotMeta {
  return {
    index,
    term,
    config: {
      servers: [
        { id: 'a', address: '10.0.0.1:8300', suffrage: 'voter' },
        { id: 'b', address: '10.0.0.2:8300', suffrage: 'nonvoter' },
      ],
    },
  };
}

/** Writes in uneven pieces so that store chunking does not line up with the caller's. */
async function writeAll(sink: SnapshotSink, data: Uint8Array): Promise<void> {
  const pieces = [700_000, 1, 2_000_000];
  let off = 0;
  for (const n of pieces) {
    await sink.write(data.subarray(off, off + n));
    off += n;
  }
  await sink.write(data.subarray(off));
}

async function readAll(snapshot: StoredSnapshot): Promise<{ data: Buffer; chunks: number }> {
  const chunks: Buffer[] = [];
  for await (const c of snapshot.chunks()) chunks.push(Buffer.from(c));
  return { data: Buffer.concat(chunks), chunks: chunks.length };
}

async function commitSnapshot(
  store: RaftStorage,
  kind: 'create' | 'receive',
  m: SnapshotMeta,
  data: Uint8Array,
): Promise<void> {
  const sink = kind === 'create' ? await store.createSnapshot(m) : await store.receiveSnapshot(m);
  await writeAll(sink, data);
  await sink.commit();
}

/** A store under test, and how to simulate a restart of the server that owns it. */
interface Harness {
  store: RaftStorage;
  reopen(): Promise<RaftStorage>;
  dispose(): Promise<void>;
}

async function levelHarness(): Promise<Harness & { dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'meshd-raft-storage-'));
  const h = {
    dir,
    store: (await LevelRaftStorage.open(dir)) as RaftStorage,
    async reopen() {
      await h.store.close();
      h.store = await LevelRaftStorage.open(dir);
      return h.store;
    },
    async dispose() {
      await h.store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return h;
}

async function memoryHarness(): Promise<Harness> {
  let store = new MemoryRaftStorage();
  const h = {
    store: store as RaftStorage,
    async reopen() {
      const copy = store.crashCopy();
      await store.close();
      store = copy;
      h.store = copy;
      return copy;
    },
    async dispose() {
      await store.close();
    },
  };
  return h;
}

// ---- The conformance suite, run against both stores ----

function storageSuite(name: string, open: () => Promise<Harness>): void {
  const setup = async (t: { teardown(fn: () => Promise<void>): void }) => {
    const h = await open();
    t.teardown(() => h.dispose());
    return h;
  };

  test(`${name}: a new store loads empty`, async (t) => {
    const h = await setup(t);
    t.deepEqual(await h.store.load(), {
      hardState: { term: 0, vote: '', commit: 0 },
      snapshot: null,
      entries: [],
    });
    t.is(await h.store.currentSnapshot(), null);
    await h.reopen();
    t.deepEqual(await h.store.load(), {
      hardState: { term: 0, vote: '', commit: 0 },
      snapshot: null,
      entries: [],
    });
  });

  test(`${name}: appended entries and hard state survive a restart`, async (t) => {
    const h = await setup(t);
    const first = [
      entry(1, 1, 'noop', ''),
      entry(2, 1, 'config', '{"servers":[]}'),
      entry(3, 2),
      { index: 4, term: 2, type: 'normal' as const, data: new Uint8Array(randomBytes(70_000)) },
    ];
    await h.store.persist({ hardState: { term: 2, vote: 'a', commit: 2 }, entries: first });
    await h.store.persist({ entries: range(5, 9, 3) });
    const expected = plain([...first, ...range(5, 9, 3)]);
    t.deepEqual(plain((await h.store.load()).entries), expected);
    await h.reopen();
    const loaded = await h.store.load();
    t.deepEqual(plain(loaded.entries), expected);
    t.deepEqual(loaded.hardState, { term: 2, vote: 'a', commit: 2 });
    t.is(loaded.snapshot, null);
  });

  test(`${name}: entries at or below the last index replace the stored suffix`, async (t) => {
    const h = await setup(t);
    await h.store.persist({ entries: range(1, 10, 1) });
    await h.store.persist({ entries: range(6, 7, 2) });
    const expected = [...range(1, 5, 1), ...range(6, 7, 2)];
    t.deepEqual(plain((await h.store.load()).entries), plain(expected));
    await h.reopen();
    t.deepEqual(plain((await h.store.load()).entries), plain(expected));
    // The log goes on from the new end, and a replacement from index 1 replaces everything.
    await h.store.persist({ entries: [entry(8, 2)] });
    t.deepEqual(plain((await h.store.load()).entries), plain([...expected, entry(8, 2)]));
    await h.store.persist({ entries: range(1, 3, 4) });
    await h.reopen();
    t.deepEqual(plain((await h.store.load()).entries), plain(range(1, 3, 4)));
  });

  test(`${name}: hard state is replaced only when a batch carries one`, async (t) => {
    const h = await setup(t);
    await h.store.persist({ hardState: { term: 1, vote: 'a', commit: 0 } });
    await h.store.persist({ hardState: { term: 3, vote: '', commit: 0 } });
    await h.store.persist({ entries: range(1, 4, 3), hardState: null });
    await h.store.persist({ hardState: { term: 3, vote: 'b', commit: 4 } });
    await h.store.persist({ entries: [entry(5, 3)] });
    await h.reopen();
    const loaded = await h.store.load();
    t.deepEqual(loaded.hardState, { term: 3, vote: 'b', commit: 4 });
    t.is(loaded.entries.length, 5);
  });

  test(`${name}: a batch that would break an invariant is refused whole`, async (t) => {
    const h = await setup(t);
    await h.store.persist({ hardState: { term: 1, vote: '', commit: 0 }, entries: range(1, 3, 1) });
    const refused = [
      { entries: [entry(5, 1)] }, // gap after 3
      { entries: [entry(4, 1), entry(6, 1)] }, // not contiguous
      { entries: [entry(4, 2), entry(5, 1)] }, // decreasing term
      { hardState: { term: 2, vote: '', commit: 9 }, entries: [entry(4, 2)] }, // commit past the end
    ];
    for (const batch of refused) {
      await t.throwsAsync(h.store.persist(batch), { instanceOf: StorageMisuseError });
    }
    await h.reopen();
    const loaded = await h.store.load();
    t.deepEqual(loaded.hardState, { term: 1, vote: '', commit: 0 });
    t.deepEqual(plain(loaded.entries), plain(range(1, 3, 1)));
  });

  test(`${name}: a created snapshot becomes current and reads back byte for byte`, async (t) => {
    const h = await setup(t);
    await h.store.persist({ hardState: { term: 2, vote: 'a', commit: 8 }, entries: range(1, 8, 2) });
    const data = randomBytes(3 * 1024 * 1024 + 123);
    const sink = await h.store.createSnapshot(meta(8, 2));
    await writeAll(sink, data);
    t.is(await h.store.currentSnapshot(), null, 'not current before commit');
    await sink.commit();
    for (let round = 0; round < 2; round++) {
      const snap = await h.store.currentSnapshot();
      if (!snap) return t.fail('no current snapshot');
      t.deepEqual(snap.meta, meta(8, 2));
      t.is(snap.size, data.byteLength);
      const read = await readAll(snap);
      t.true(read.data.equals(data));
      t.true(read.chunks > 1);
      t.deepEqual((await h.store.load()).snapshot, meta(8, 2));
      await h.reopen();
    }
  });

  test(`${name}: a newer snapshot replaces the current one; an aborted one leaves no trace`, async (t) => {
    const h = await setup(t);
    await h.store.persist({ entries: range(1, 12, 1) });
    await commitSnapshot(h.store, 'create', meta(5, 1), randomBytes(1000));
    const newer = randomBytes(1_500_000);
    await commitSnapshot(h.store, 'create', meta(9, 1), newer);
    const aborted = await h.store.createSnapshot(meta(12, 1));
    await writeAll(aborted, randomBytes(2_500_000));
    await aborted.abort();
    await t.throwsAsync(aborted.write(new Uint8Array(1)), { instanceOf: StorageMisuseError });
    // Committing a snapshot older than the current one would lose entries the log no longer has.
    const older = await h.store.createSnapshot(meta(7, 1));
    await older.write(randomBytes(10));
    await t.throwsAsync(older.commit(), { instanceOf: StorageMisuseError });
    await h.reopen();
    const snap = await h.store.currentSnapshot();
    t.deepEqual(snap?.meta, meta(9, 1));
    t.true(snap && (await readAll(snap)).data.equals(newer));
  });

  test(`${name}: a received snapshot is staged, then persist({snapshot}) installs it and drops the log`, async (t) => {
    const h = await setup(t);
    await h.store.persist({ hardState: { term: 1, vote: 'a', commit: 5 }, entries: range(1, 10, 1) });
    const data = randomBytes(2 * 1024 * 1024 + 7);
    await commitSnapshot(h.store, 'receive', meta(20, 3), data);
    t.is(await h.store.currentSnapshot(), null, 'staged is not current');
    t.is((await h.store.load()).snapshot, null);
    await h.reopen(); // staging is durable: a restart between commit and install loses nothing
    await h.store.persist({
      snapshot: meta(20, 3),
      hardState: { term: 3, vote: '', commit: 20 },
      entries: range(21, 22, 3),
    });
    for (let round = 0; round < 2; round++) {
      const loaded = await h.store.load();
      t.deepEqual(loaded.snapshot, meta(20, 3));
      t.deepEqual(loaded.hardState, { term: 3, vote: '', commit: 20 });
      t.deepEqual(plain(loaded.entries), plain(range(21, 22, 3)));
      const snap = await h.store.currentSnapshot();
      t.true(snap && (await readAll(snap)).data.equals(data));
      await h.reopen();
    }
    // Installed once, it is no longer staged.
    await t.throwsAsync(h.store.persist({ snapshot: meta(20, 3) }), { instanceOf: StorageMisuseError });
  });

  test(`${name}: installing a snapshot drops the whole log, even entries above its index`, async (t) => {
    const h = await setup(t);
    // The log runs past the snapshot: all of it goes, even entries above the snapshot index.
    await h.store.persist({ entries: range(1, 30, 1) });
    await commitSnapshot(h.store, 'receive', meta(20, 2), randomBytes(10));
    await h.store.persist({ snapshot: meta(20, 2) });
    await h.reopen();
    const loaded = await h.store.load();
    t.deepEqual(loaded.entries, []);
    t.deepEqual(loaded.snapshot, meta(20, 2));
    await h.store.persist({ entries: range(21, 21, 2) });
    t.deepEqual(plain((await h.store.load()).entries), plain(range(21, 21, 2)));
  });

  test(`${name}: persist({snapshot}) without that staged snapshot throws and changes nothing`, async (t) => {
    const h = await setup(t);
    await h.store.persist({ entries: range(1, 4, 1) });
    await t.throwsAsync(h.store.persist({ snapshot: meta(10, 2), entries: range(11, 11, 2) }), {
      instanceOf: StorageMisuseError,
    });
    await commitSnapshot(h.store, 'receive', meta(10, 2), randomBytes(10));
    await t.throwsAsync(h.store.persist({ snapshot: meta(10, 3) }), { instanceOf: StorageMisuseError });
    // Taking a local snapshot at or past a staged one makes the staged one pointless: it is dropped.
    await h.store.persist({ entries: range(5, 12, 2) });
    await commitSnapshot(h.store, 'create', meta(11, 2), randomBytes(10));
    await t.throwsAsync(h.store.persist({ snapshot: meta(10, 2) }), { instanceOf: StorageMisuseError });
    const loaded = await h.store.load();
    t.deepEqual(loaded.snapshot, meta(11, 2));
    t.deepEqual(plain(loaded.entries), plain(range(12, 12, 2)));
  });

  test(`${name}: compactLog drops entries the snapshot covers, and no more`, async (t) => {
    const h = await setup(t);
    await h.store.persist({ hardState: { term: 1, vote: '', commit: 10 }, entries: range(1, 10, 1) });
    await commitSnapshot(h.store, 'create', meta(6, 1), randomBytes(100));
    await t.throwsAsync(h.store.compactLog(8), { instanceOf: StorageMisuseError });
    await h.store.compactLog(6);
    t.deepEqual(plain((await h.store.load()).entries), plain(range(7, 10, 1)));
    await h.reopen();
    const loaded = await h.store.load();
    t.deepEqual(loaded.snapshot, meta(6, 1));
    t.deepEqual(plain(loaded.entries), plain(range(7, 10, 1)));
    await h.store.persist({ entries: [entry(11, 1)] });
    t.is((await h.store.load()).entries.length, 5);
  });

  test(`${name}: entries appended while the log is compacted land, and the log stays whole`, async (t) => {
    const h = await setup(t);
    await h.store.persist({ hardState: { term: 1, vote: '', commit: 10 }, entries: range(1, 10, 1) });
    await commitSnapshot(h.store, 'create', meta(10, 1), randomBytes(100));
    // The whole log compacted while entries are appended after it; then a suffix replaced.
    await Promise.all([h.store.compactLog(10), h.store.persist({ entries: range(11, 13, 1) })]);
    await h.store.persist({ entries: [entry(13, 2), entry(14, 2)] });
    const expected = plain([...range(11, 12, 1), entry(13, 2), entry(14, 2)]);
    t.deepEqual(plain((await h.store.load()).entries), expected);
    await h.reopen();
    t.deepEqual(plain((await h.store.load()).entries), expected);
  });

  test(`${name}: entries at or below the snapshot index are ignored on load`, async (t) => {
    const h = await setup(t);
    await h.store.persist({
      hardState: { term: 2, vote: '', commit: 6 },
      entries: range(1, 10, (i) => (i < 5 ? 1 : 2)),
    });
    await commitSnapshot(h.store, 'create', meta(6, 2), randomBytes(100));
    t.deepEqual(plain((await h.store.load()).entries), plain(range(7, 10, 2)));
    await h.reopen();
    t.deepEqual(plain((await h.store.load()).entries), plain(range(7, 10, 2)));
    // A replacement starting under the snapshot is stored, but only what lies above the snapshot loads.
    await h.store.persist({ entries: range(5, 8, 2) });
    t.deepEqual(plain((await h.store.load()).entries), plain(range(7, 8, 2)));
  });

  test(`${name}: a closed store refuses calls`, async (t) => {
    const h = await setup(t);
    const sink = await h.store.createSnapshot(meta(1, 1));
    await h.store.close();
    await t.throwsAsync(h.store.load(), { instanceOf: StorageClosedError });
    await t.throwsAsync(h.store.persist({ entries: [entry(1, 1)] }), { instanceOf: StorageClosedError });
    await t.throwsAsync(h.store.compactLog(0), { instanceOf: StorageClosedError });
    await t.throwsAsync(h.store.createSnapshot(meta(1, 1)), { instanceOf: StorageClosedError });
    await t.throwsAsync(h.store.currentSnapshot(), { instanceOf: StorageClosedError });
    await t.throwsAsync(sink.write(new Uint8Array(1)), { instanceOf: StorageClosedError });
    await h.reopen();
    t.deepEqual((await h.store.load()).entries, []);
  });
}

storageSuite('memory', memoryHarness);
storageSuite('level', levelHarness);

// ---- Memory only ----

test('memory: crashCopy keeps what was persisted and committed, not an open sink', async (t) => {
  const store = new MemoryRaftStorage();
  await store.persist({ hardState: { term: 1, vote: 'a', commit: 2 }, entries: range(1, 3, 1) });
  await commitSnapshot(store, 'create', meta(2, 1), utf8.encode('state at 2'));
  const open = await store.createSnapshot(meta(3, 1));
  await open.write(utf8.encode('state at 3'));
  const copy = store.crashCopy();
  await open.commit();
  await store.persist({ entries: [entry(4, 1)] });
  const loaded = await copy.load();
  t.deepEqual(loaded.snapshot, meta(2, 1));
  t.deepEqual(plain(loaded.entries), plain([entry(3, 1)]));
  const snap = await copy.currentSnapshot();
  t.is(snap && (await readAll(snap)).data.toString(), 'state at 2');
});

// ---- LevelDB only: what is actually on disk ----

async function raw<T>(dir: string, fn: (db: Level<string, Uint8Array>) => Promise<T>): Promise<T> {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

/** The store's own record framing (big-endian CRC32, then the payload), to forge valid-looking records. */
function sealed(payload: Uint8Array): Uint8Array {
  const out = Buffer.alloc(4 + payload.byteLength);
  out.writeUInt32BE(crc32(payload), 0);
  out.set(payload, 4);
  return out;
}

function forgeEntry(index: number, term: number): Uint8Array {
  const payload = Buffer.alloc(17);
  payload.writeUInt32BE(0, 0);
  payload.writeUInt32BE(index, 4);
  payload.writeUInt32BE(0, 8);
  payload.writeUInt32BE(term, 12);
  payload.writeUInt8(0, 16);
  return sealed(payload);
}

const entryKey = (index: number) => `e/${index.toString(16).padStart(16, '0')}`;

/** A closed store holding entries 1..10 (term 1) and commit 5; returns its dir. */
async function storeWithLog(
  t: { teardown(fn: () => Promise<void>): void },
  withSnapshot = false,
): Promise<string> {
  const h = await levelHarness();
  t.teardown(() => rm(h.dir, { recursive: true, force: true }));
  await h.store.persist({ hardState: { term: 1, vote: 'a', commit: 5 }, entries: range(1, 10, 1) });
  if (withSnapshot) await commitSnapshot(h.store, 'create', meta(4, 1), randomBytes(2_500_000));
  await h.store.close();
  return h.dir;
}

async function loadError(dir: string): Promise<CorruptStoreError> {
  const store = await LevelRaftStorage.open(dir);
  try {
    await store.load();
  } catch (err) {
    if (err instanceof CorruptStoreError) return err;
    throw err;
  } finally {
    await store.close();
  }
  throw new Error('load() succeeded on a corrupt store');
}

test('level: the untouched fixture store loads', async (t) => {
  const dir = await storeWithLog(t, true);
  const store = await LevelRaftStorage.open(dir);
  const loaded = await store.load();
  await store.close();
  t.deepEqual(plain(loaded.entries), plain(range(5, 10, 1)));
});

test('level: a flipped byte in an entry fails the load, naming the index', async (t) => {
  const dir = await storeWithLog(t);
  await raw(dir, async (db) => {
    const value = Buffer.from((await db.get(entryKey(7)))!);
    value[value.length - 1] ^= 0x01;
    await db.put(entryKey(7), value);
  });
  const err = await loadError(dir);
  t.regex(err.message, /entry 7: checksum mismatch/);
  t.is(err.path, dir);
});

test('level: a missing middle entry is reported as a gap', async (t) => {
  const dir = await storeWithLog(t);
  await raw(dir, (db) => db.del(entryKey(6)));
  t.regex((await loadError(dir)).message, /log gap: entry 6 is missing/);
});

test('level: a missing first entry, a misplaced record and a decreasing term are detected', async (t) => {
  const dir = await storeWithLog(t);
  await raw(dir, (db) => db.del(entryKey(1)));
  t.regex((await loadError(dir)).message, /log starts at entry 2, expected 1/);
  await raw(dir, async (db) => db.put(entryKey(1), (await db.get(entryKey(2)))!));
  t.regex((await loadError(dir)).message, /entry 1: record holds index 2/);
  await raw(dir, async (db) => {
    await db.put(entryKey(1), forgeEntry(1, 1));
    await db.put(entryKey(8), forgeEntry(8, 0));
  });
  t.regex((await loadError(dir)).message, /entry 8 has term 0, below the term 1/);
});

test('level: a commit index past the log end is detected', async (t) => {
  const dir = await storeWithLog(t);
  await raw(dir, (db) => db.put('h', sealed(utf8.encode('{"term":1,"vote":"a","commit":11}'))));
  t.regex((await loadError(dir)).message, /commit 11 is past the last index 10/);
});

test('level: a damaged hard state record is refused', async (t) => {
  const dir = await storeWithLog(t);
  await raw(dir, async (db) => {
    const value = Buffer.from((await db.get('h'))!);
    value[6] ^= 0x20;
    await db.put('h', value);
  });
  const err = await t.throwsAsync(LevelRaftStorage.open(dir), { instanceOf: CorruptStoreError });
  t.regex(err.message, /record "h": checksum mismatch/);
});

test('level: a missing or damaged snapshot chunk fails the load and the read', async (t) => {
  const dir = await storeWithLog(t, true);
  const chunkKeys = await raw(dir, (db) => db.keys({ gte: 's/', lt: 's0' }).all());
  t.is(chunkKeys.length, 20, '2.5 MB in 128 KiB chunks');
  await raw(dir, async (db) => {
    const value = Buffer.from((await db.get(chunkKeys[1]))!);
    value[1000] ^= 0xff;
    await db.put(chunkKeys[1], value);
  });
  t.regex((await loadError(dir)).message, /snapshot 4\/1: chunk 1 checksum mismatch/);
  const store = await LevelRaftStorage.open(dir);
  const snap = await store.currentSnapshot();
  await t.throwsAsync(readAll(snap!), { instanceOf: CorruptStoreError });
  await store.close();
  await raw(dir, (db) => db.del(chunkKeys[1]));
  t.regex((await loadError(dir)).message, /snapshot 4\/1: chunk 1 missing/);
  await raw(dir, (db) =>
    db.del(chunkKeys[19]).then(() => db.put(chunkKeys[1], sealed(new Uint8Array(128 * 1024)))),
  );
  t.regex((await loadError(dir)).message, /found 19 chunks .* record says 20/);
});

test('level: an unknown or missing format version is refused at open', async (t) => {
  const dir = await storeWithLog(t);
  await raw(dir, (db) => db.put('v', sealed(utf8.encode('{"version":2}'))));
  const wrong = await t.throwsAsync(LevelRaftStorage.open(dir), { instanceOf: CorruptStoreError });
  t.regex(wrong.message, /format version 2/);
  await raw(dir, (db) => db.del('v'));
  const missing = await t.throwsAsync(LevelRaftStorage.open(dir), { instanceOf: CorruptStoreError });
  t.regex(missing.message, /no format version key/);
});

test("level: appends do not wait for the log compaction's delete", async (t) => {
  const h = await levelHarness();
  t.teardown(() => h.dispose());
  await h.store.persist({ hardState: { term: 1, vote: '', commit: 10 }, entries: range(1, 10, 1) });
  await commitSnapshot(h.store, 'create', meta(8, 1), randomBytes(100));
  // Hold LevelDB's range delete until the append is done: with the delete in the append queue,
  // the append would never finish and this test would time out.
  const db = (h.store as unknown as { db: { clear(o: object): Promise<void> } }).db;
  const clear = db.clear.bind(db);
  let release!: () => void;
  const held = new Promise<void>((r) => {
    release = r;
  });
  db.clear = async (o) => {
    await held;
    return clear(o);
  };
  const compacting = h.store.compactLog(8);
  await h.store.persist({ entries: range(11, 12, 1) });
  release();
  await compacting;
  t.deepEqual(plain((await h.store.load()).entries), plain(range(9, 12, 1)));
});

test('level: chunks of replaced, aborted and interrupted snapshots are deleted', async (t) => {
  const h = await levelHarness();
  t.teardown(() => h.dispose());
  const chunkKeys = () => raw(h.dir, (db) => db.keys({ gte: 's/', lt: 's0' }).all());
  await h.store.persist({ entries: range(1, 10, 1) });
  await commitSnapshot(h.store, 'create', meta(3, 1), randomBytes(2_500_000));
  await commitSnapshot(h.store, 'receive', meta(20, 2), randomBytes(10));
  await commitSnapshot(h.store, 'receive', meta(30, 2), randomBytes(10));
  await commitSnapshot(h.store, 'create', meta(5, 1), randomBytes(1_500_000));
  const aborted = await h.store.createSnapshot(meta(9, 1));
  await aborted.write(randomBytes(1_100_000));
  await aborted.abort();
  const interrupted = await h.store.createSnapshot(meta(9, 1));
  await interrupted.write(randomBytes(1_100_000)); // 8 chunks reach the disk; then the server stops
  await h.store.close();
  const id = (key: string) => key.split('/')[1];
  t.is(new Set((await chunkKeys()).map(id)).size, 3, 'current, staged, interrupted');
  await h.reopen(); // open() collects the orphans
  await h.store.close();
  const left = await chunkKeys();
  t.is(left.length, 12 + 1, 'the 1.5 MB current snapshot and the staged one');
  t.true(left.every((k) => k.startsWith('s/0000000000000005-') || k.startsWith('s/000000000000001e-')));
  await h.reopen();
  t.deepEqual((await h.store.load()).snapshot, meta(5, 1));
  await h.store.persist({ snapshot: meta(30, 2) });
  await h.store.close();
  t.deepEqual(
    (await chunkKeys()).map((k) => k.slice(0, 19)),
    ['s/000000000000001e-'],
    'installing the staged snapshot deleted the previous current one',
  );
  await h.reopen();
  t.deepEqual((await h.store.load()).snapshot, meta(30, 2));
});

// ---- LevelDB only: kill -9 in the middle of writing ----

const fixture = fileURLToPath(new URL('./fixtures/persist-loop.ts', import.meta.url));

/** Runs the writer child until it has acknowledged `wanted` batches, then SIGKILLs it. */
function writeUntilKilled(dir: string, wanted: number, deadlineMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fixture, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let pending = '';
    let stderr = '';
    let acks = 0;
    let lastAck = 0;
    let killed = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`only ${acks} of ${wanted} acks within ${deadlineMs} ms; stderr: ${stderr}`));
    }, deadlineMs);
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout.on('data', (d: Buffer) => {
      const lines = (pending + d.toString()).split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        lastAck = Number(line);
        acks++;
      }
      if (acks >= wanted && !killed) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    // 'close' comes after stdout is drained, so every ack the child printed has been counted.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (killed && signal === 'SIGKILL') resolve(lastAck);
      else reject(new Error(`writer exited on its own (code ${code}, signal ${signal}): ${stderr}`));
    });
  });
}

test('level: every acknowledged entry survives kill -9 of the writer', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshd-raft-kill-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let previous = 0;
  for (let round = 1; round <= 4; round++) {
    const lastAck = await writeUntilKilled(dir, 200, 60_000);
    t.true(lastAck > previous, `round ${round} made progress`);
    const store = await LevelRaftStorage.open(dir);
    const { hardState, snapshot, entries } = await store.load();
    const snapIndex = snapshot?.index ?? 0;
    t.true(snapIndex > 0, 'the writer took snapshots');
    t.true(entries.length > 0 && entries[entries.length - 1].index >= lastAck, `entries up to ${lastAck}`);
    // Contiguity from the snapshot is load()'s own check; here each entry is compared with what was written.
    const expected = entries.map((e) => entryFor(e.index));
    t.deepEqual(plain(entries), plain(expected), `round ${round} entries intact`);
    t.is(entries[0].index, snapIndex + 1);
    t.true(hardState.commit >= lastAck - 9 && hardState.commit <= entries[entries.length - 1].index);
    const snap = await store.currentSnapshot();
    t.true(snap && (await readAll(snap)).data.equals(snapshotDataFor(snapIndex)), 'snapshot intact');
    await store.close();
    previous = lastAck;
  }
});
