import assert from 'node:assert/strict';
import test from 'ava';
import fc from 'fast-check';
import {
  type KvEntry,
  KvTable,
  kvChangeWatches,
  kvKeyWatch,
  kvPrefixWatch,
  SortedKeys,
} from '../../src/catalog/kv.ts';
import { WatchRegistry } from '../../src/catalog/watch.ts';
import { RecordingRegistry } from '../support/recording-watches.ts';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined): string | undefined => (b ? new TextDecoder().decode(b) : undefined);

test('set creates, then updates keeping CreateIndex; get and indexes follow', (t) => {
  const kv = new KvTable();
  t.true(kv.set(3, 'web/a', bytes('1'), 42));
  t.deepEqual(kv.get('web/a'), {
    Key: 'web/a',
    Value: bytes('1'),
    Flags: 42,
    CreateIndex: 3,
    ModifyIndex: 3,
    LockIndex: 0,
  });
  t.true(kv.set(5, 'web/a', bytes('2'), 0));
  const e = kv.get('web/a');
  t.is(text(e?.Value), '2');
  t.is(e?.Flags, 0);
  t.is(e?.CreateIndex, 3);
  t.is(e?.ModifyIndex, 5);
  t.is(kv.tableIndex, 5);
  t.is(kv.keyIndex('web/a'), 5);
  t.is(kv.keyIndex('missing'), 5, 'a missing key reports the table index');
  t.is(kv.get('missing'), undefined);
});

test('the stored value is a copy of the caller buffer', (t) => {
  const kv = new KvTable();
  const buf = bytes('abc');
  kv.set(1, 'k', buf, 0);
  buf[0] = 0x7a;
  t.is(text(kv.get('k')?.Value), 'abc');
});

test('cas: 0 means only if absent; otherwise the ModifyIndex must match', (t) => {
  const kv = new KvTable();
  t.true(kv.cas(1, 'k', bytes('a'), 0, 0));
  t.false(kv.cas(2, 'k', bytes('b'), 0, 0), 'already exists');
  t.false(kv.cas(3, 'k', bytes('b'), 0, 7), 'wrong index');
  t.is(kv.tableIndex, 1, 'failed CAS changes nothing');
  t.true(kv.cas(4, 'k', bytes('b'), 9, 1));
  t.like(kv.get('k'), { CreateIndex: 1, ModifyIndex: 4, Flags: 9 });
  t.false(kv.cas(5, 'absent', bytes('x'), 0, 4), 'non-zero index on a missing key');
  t.is(kv.get('absent'), undefined);
});

test('delete and deleteCas, with tombstones moving the prefix index forward', (t) => {
  const kv = new KvTable();
  kv.set(1, 'a/1', bytes('x'), 0);
  kv.set(2, 'a/2', bytes('y'), 0);
  t.is(kv.prefixIndex('a/'), 2);
  t.true(kv.delete(3, 'a/2'));
  t.is(kv.get('a/2'), undefined);
  t.is(kv.prefixIndex('a/'), 3, 'the tombstone at 3 beats the live max 1');
  t.is(kv.tombstoneCount, 1);
  t.true(kv.delete(4, 'a/nope'), 'deleting a missing key is true');
  t.is(kv.tableIndex, 3, 'and does not bump the index');

  t.false(kv.deleteCas(5, 'a/1', 99));
  t.truthy(kv.get('a/1'));
  t.true(kv.deleteCas(5, 'a/1', 1));
  t.is(kv.get('a/1'), undefined);
  t.true(kv.deleteCas(6, 'a/1', 1), 'Consul: a missing key is already deleted');
  t.is(kv.tableIndex, 5);
  t.is(kv.prefixIndex('a/'), 5);
  t.is(kv.prefixIndex('b/'), 5, 'nothing matches: the table index');
  t.is(kv.prefixIndex(''), 5);
});

test('deleteTree removes exactly the prefix range', (t) => {
  const kv = new KvTable();
  for (const [i, k] of ['a', 'a/', 'a/b', 'a/b/c', 'a0', 'ab', 'b'].entries()) kv.set(i + 1, k, bytes(k), 0);
  t.true(kv.deleteTree(10, 'a/'));
  t.deepEqual(kv.keys(''), ['a', 'a0', 'ab', 'b']);
  t.is(kv.tableIndex, 10);
  t.is(kv.prefixIndex('a/'), 10);
  t.is(kv.prefixIndex('a/b/'), 10);
  t.is(kv.prefixIndex('ab'), 6);
  t.true(kv.deleteTree(11, 'zzz'));
  t.is(kv.tableIndex, 10, 'no match, no change');
  t.true(kv.deleteTree(12, ''));
  t.is(kv.size, 0);
});

test('re-creating a key drops its tombstone; reaping bounds tombstones without moving indexes back', (t) => {
  const kv = new KvTable();
  kv.set(1, 'p/a', bytes('1'), 0);
  kv.set(2, 'p/b', bytes('2'), 0);
  kv.delete(3, 'p/b');
  kv.set(4, 'q/x', bytes('3'), 0);
  kv.delete(5, 'q/x');
  kv.set(6, 'q/x', bytes('4'), 0);
  t.is(kv.tombstoneCount, 1, 'q/x re-created');
  t.is(kv.prefixIndex('p/'), 3);
  t.is(kv.reapTombstones(2), 0);
  t.is(kv.reapTombstones(3), 1);
  t.is(kv.tombstoneCount, 0);
  t.is(kv.reapedIndex, 3);
  t.is(kv.prefixIndex('p/'), 3, 'the reap floor keeps the index from going back to 1');
  t.is(kv.tableIndex, 6, 'reaping is not a visible change');
});

test('lock/unlock follow Consul acquire/release semantics', (t) => {
  const kv = new KvTable();
  t.true(kv.lock(1, 'lock', bytes('a'), 0, 's1'), 'acquire a new key');
  t.like(kv.get('lock'), { Session: 's1', LockIndex: 1, CreateIndex: 1, ModifyIndex: 1 });
  t.false(kv.lock(2, 'lock', bytes('b'), 0, 's2'), 'held by another session');
  t.true(kv.lock(3, 'lock', bytes('c'), 0, 's1'), 're-acquire by the holder');
  t.like(kv.get('lock'), { Session: 's1', LockIndex: 1, ModifyIndex: 3 });
  t.is(text(kv.get('lock')?.Value), 'c');

  t.true(kv.set(4, 'lock', bytes('d'), 0), 'a plain PUT keeps the holder');
  t.like(kv.get('lock'), { Session: 's1', LockIndex: 1, ModifyIndex: 4 });

  t.false(kv.unlock(5, 'lock', bytes('e'), 0, 's2'), 'release by a non-holder');
  t.false(kv.unlock(5, 'missing', bytes('e'), 0, 's1'), 'release of a missing key');
  t.is(kv.tableIndex, 4);
  t.true(kv.unlock(6, 'lock', bytes('f'), 7, 's1'));
  const released = kv.get('lock');
  t.is(released?.Session, undefined);
  t.like(released, { LockIndex: 1, ModifyIndex: 6, Flags: 7 });
  t.false(kv.unlock(7, 'lock', bytes('g'), 0, 's1'), 'no longer held');

  t.true(kv.lock(8, 'lock', bytes('h'), 0, 's2'), 'acquire after release');
  t.like(kv.get('lock'), { Session: 's2', LockIndex: 2, CreateIndex: 1 });

  t.true(kv.set(9, 'plain', bytes('x'), 0));
  t.true(kv.lock(10, 'plain', bytes('y'), 0, 's1'), 'acquire an existing unlocked key');
  t.like(kv.get('plain'), { Session: 's1', LockIndex: 1, CreateIndex: 9 });
});

test('list returns sorted entries under a plain string prefix', (t) => {
  const kv = new KvTable();
  for (const [i, k] of ['web/b', 'web/a', 'webby', 'api/x', 'web/sub/c'].entries())
    kv.set(i + 1, k, bytes(k), 0);
  t.deepEqual(
    kv.list('web/').map((e) => e.Key),
    ['web/a', 'web/b', 'web/sub/c'],
  );
  t.deepEqual(
    kv.list('web').map((e) => e.Key),
    ['web/a', 'web/b', 'web/sub/c', 'webby'],
  );
  t.deepEqual(kv.list('nope/'), []);
  t.is(kv.list('').length, 5);
  t.is(kv.prefixIndex('web/'), 5);
});

test('keys with a separator (Consul KV API ?keys&separator=/)', (t) => {
  const kv = new KvTable();
  const keys = ['web/bar', 'web/foo', 'web/subdir/baz', 'web/subdir/qux', 'web/subdir/deep/x', 'other'];
  for (const [i, k] of keys.entries()) kv.set(i + 1, k, bytes(''), 0);
  t.deepEqual(kv.keys('web/'), [
    'web/bar',
    'web/foo',
    'web/subdir/baz',
    'web/subdir/deep/x',
    'web/subdir/qux',
  ]);
  t.deepEqual(kv.keys('web/', '/'), ['web/bar', 'web/foo', 'web/subdir/']);
  t.deepEqual(kv.keys('', '/'), ['other', 'web/']);
  t.deepEqual(kv.keys('web/s', '/'), ['web/subdir/']);
  t.deepEqual(kv.keys('web/subdir/', '/'), ['web/subdir/baz', 'web/subdir/deep/', 'web/subdir/qux']);
  t.deepEqual(kv.keys('web', '/'), ['web/'], 'the separator right after the prefix');
  t.deepEqual(kv.keys('web/', '::'), kv.keys('web/'), 'a separator that never occurs');
});

test('commands at an index below the table index throw', (t) => {
  const kv = new KvTable();
  kv.set(5, 'a', bytes('1'), 0);
  t.true(kv.set(5, 'b', bytes('1'), 0), 'the same index (one transaction) is fine');
  t.throws(() => kv.set(4, 'c', bytes('1'), 0), { instanceOf: RangeError });
  t.is(kv.get('c'), undefined);
});

test('each command notifies the watch keys of what it changed', (t) => {
  const reg = new RecordingRegistry();
  // Watch keys are only built while some query is parked.
  const parked = new AbortController();
  reg.waitForChange(['elsewhere'], 0, parked.signal).catch(() => {});
  const kv = new KvTable(reg);
  kv.set(1, 'a/b', bytes('1'), 0);
  t.is(reg.changedAt(kvKeyWatch('a/b')), 1);
  t.deepEqual(
    [...kvChangeWatches('a/b')],
    [kvKeyWatch('a/b'), kvPrefixWatch(''), kvPrefixWatch('a'), kvPrefixWatch('a/'), kvPrefixWatch('a/b')],
  );
  for (const w of kvChangeWatches('a/b')) t.is(reg.changedAt(w), 1);
  t.is(reg.changedAt(kvKeyWatch('a')), 0);
  kv.lock(2, 'a/b', bytes('1'), 0, 's');
  kv.unlock(3, 'a/b', bytes('1'), 0, 's');
  t.is(reg.changedAt(kvPrefixWatch('a/')), 3);
  kv.delete(4, 'a/b');
  t.is(reg.changedAt(kvKeyWatch('a/b')), 4);
  kv.set(5, 'x/1', bytes('1'), 0);
  kv.set(5, 'x/2', bytes('1'), 0);
  kv.deleteTree(6, 'x/');
  t.is(reg.changedAt(kvKeyWatch('x/1')), 6);
  t.is(reg.changedAt(kvKeyWatch('x/2')), 6);
  t.is(reg.changedAt(kvPrefixWatch('x/')), 6);
  parked.abort();
});

test('with nobody parked a change only moves the index (no watch keys built)', (t) => {
  const reg = new RecordingRegistry();
  const kv = new KvTable(reg);
  kv.set(1, 'a/b', bytes('1'), 0);
  kv.delete(2, 'a/b');
  t.is(reg.fired.size, 0);
  t.is(reg.lastIndex, 2);
});

test('a transaction fires its keys once, on commit, and a rollback fires nothing', (t) => {
  const reg = new RecordingRegistry();
  const parked = new AbortController();
  reg.waitForChange(['elsewhere'], 0, parked.signal).catch(() => {});
  const kv = new KvTable(reg);
  kv.beginTxn(1);
  kv.set(1, 't/a', bytes('1'), 0);
  kv.set(1, 't/b', bytes('1'), 0);
  t.is(reg.fired.size, 0, 'nothing before commit');
  kv.commitTxn();
  t.is(reg.changedAt(kvKeyWatch('t/a')), 1);
  t.is(reg.changedAt(kvKeyWatch('t/b')), 1);
  kv.beginTxn(2);
  kv.set(2, 't/c', bytes('1'), 0);
  kv.rollbackTxn();
  t.is(reg.changedAt(kvKeyWatch('t/c')), 0);
  parked.abort();
});

// ---- property: the table behaves like a Map-based model ----

interface ModelEntry {
  value: string;
  flags: number;
  create: number;
  modify: number;
  lock: number;
  session?: string;
}

class Model {
  entries = new Map<string, ModelEntry>();
  tombs = new Map<string, number>();
  tableIndex = 0;
  reaped = 0;

  write(
    index: number,
    key: string,
    value: string,
    flags: number,
    session: string | undefined,
    lockInc: boolean,
  ) {
    const old = this.entries.get(key);
    const e: ModelEntry = {
      value,
      flags,
      create: old?.create ?? index,
      modify: index,
      lock: (old?.lock ?? 0) + (lockInc ? 1 : 0),
    };
    if (session !== undefined) e.session = session;
    this.entries.set(key, e);
    this.tombs.delete(key);
    this.tableIndex = index;
  }
  del(index: number, key: string) {
    if (!this.entries.delete(key)) return;
    this.tombs.set(key, index);
    this.tableIndex = index;
  }
  prefixIndex(prefix: string): number {
    if (prefix === '') return this.tableIndex;
    let max = 0;
    for (const [k, e] of this.entries) if (k.startsWith(prefix)) max = Math.max(max, e.modify);
    for (const [k, i] of this.tombs) if (k.startsWith(prefix)) max = Math.max(max, i);
    return max === 0 ? this.tableIndex : Math.max(max, this.reaped);
  }
}

type Op =
  | { op: 'set'; key: string; value: string; flags: number }
  | { op: 'cas'; key: string; value: string; flags: number; cas: number | 'current' }
  | { op: 'delete'; key: string }
  | { op: 'deleteCas'; key: string; cas: number | 'current' }
  | { op: 'deleteTree'; prefix: string }
  | { op: 'lock' | 'unlock'; key: string; value: string; flags: number; session: string }
  | { op: 'reap'; back: number };

const keyArb = fc.constantFrom('a', 'a/', 'a/b', 'a/b/c', 'a/c', 'ab', 'b', 'b/x');
const prefixArb = fc.constantFrom('', 'a', 'a/', 'a/b', 'b', 'c');
const valueArb = fc.string({ maxLength: 4 });
const flagsArb = fc.constantFrom(0, 1, 2 ** 53 - 1);
const casArb = fc.oneof(fc.constant<'current'>('current'), fc.nat({ max: 30 }));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), key: keyArb, value: valueArb, flags: flagsArb }),
  fc.record({ op: fc.constant('cas' as const), key: keyArb, value: valueArb, flags: flagsArb, cas: casArb }),
  fc.record({ op: fc.constant('delete' as const), key: keyArb }),
  fc.record({ op: fc.constant('deleteCas' as const), key: keyArb, cas: casArb }),
  fc.record({ op: fc.constant('deleteTree' as const), prefix: prefixArb }),
  fc.record({
    op: fc.constantFrom('lock' as const, 'unlock' as const),
    key: keyArb,
    value: valueArb,
    flags: flagsArb,
    session: fc.constantFrom('s1', 's2'),
  }),
  fc.record({ op: fc.constant('reap' as const), back: fc.nat({ max: 5 }) }),
);

/** Applies `op` at `index` to both; returns the two boolean results. */
function applyBoth(kv: KvTable, m: Model, op: Op, index: number): [boolean | number, boolean | number] {
  const casOf = (c: number | 'current', key: string) =>
    c === 'current' ? (m.entries.get(key)?.modify ?? 0) : c;
  switch (op.op) {
    case 'set':
      m.write(index, op.key, op.value, op.flags, m.entries.get(op.key)?.session, false);
      return [kv.set(index, op.key, bytes(op.value), op.flags), true];
    case 'cas': {
      const c = casOf(op.cas, op.key);
      const old = m.entries.get(op.key);
      const ok = c === 0 ? old === undefined : old?.modify === c;
      if (ok) m.write(index, op.key, op.value, op.flags, old?.session, false);
      return [kv.cas(index, op.key, bytes(op.value), op.flags, c), ok];
    }
    case 'delete':
      m.del(index, op.key);
      return [kv.delete(index, op.key), true];
    case 'deleteCas': {
      const c = casOf(op.cas, op.key);
      const old = m.entries.get(op.key);
      const ok = old === undefined || old.modify === c;
      if (old && ok) m.del(index, op.key);
      return [kv.deleteCas(index, op.key, c), ok];
    }
    case 'deleteTree':
      for (const k of [...m.entries.keys()]) if (k.startsWith(op.prefix)) m.del(index, k);
      return [kv.deleteTree(index, op.prefix), true];
    case 'lock': {
      const old = m.entries.get(op.key);
      const ok = old?.session === undefined || old.session === op.session;
      if (ok) m.write(index, op.key, op.value, op.flags, op.session, old?.session !== op.session);
      return [kv.lock(index, op.key, bytes(op.value), op.flags, op.session), ok];
    }
    case 'unlock': {
      const old = m.entries.get(op.key);
      const ok = old !== undefined && old.session === op.session;
      if (ok) m.write(index, op.key, op.value, op.flags, undefined, false);
      return [kv.unlock(index, op.key, bytes(op.value), op.flags, op.session), ok];
    }
    case 'reap': {
      const upTo = index - op.back;
      for (const [k, i] of [...m.tombs]) {
        if (i <= upTo) {
          m.tombs.delete(k);
          m.reaped = Math.max(m.reaped, i);
        }
      }
      return [kv.reapTombstones(upTo) >= 0, true];
    }
  }
}

function view(kv: KvTable) {
  return kv.list('').map((e: Readonly<KvEntry>) => ({
    key: e.Key,
    value: text(e.Value),
    flags: e.Flags,
    create: e.CreateIndex,
    modify: e.ModifyIndex,
    lock: e.LockIndex,
    session: e.Session,
  }));
}

function modelView(m: Model) {
  return [...m.entries.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, e]) => ({
      key,
      value: e.value,
      flags: e.flags,
      create: e.create,
      modify: e.modify,
      lock: e.lock,
      session: e.session,
    }));
}

test('property: random KV commands match a Map model (results, entries, indexes)', (t) => {
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
        const kv = new KvTable(new WatchRegistry());
        const m = new Model();
        for (const [i, op] of ops.entries()) {
          const index = i + 1;
          const [got, want] = applyBoth(kv, m, op, index);
          if (got !== want) return false;
          assert.deepEqual(view(kv), modelView(m));
          if (kv.tableIndex !== m.tableIndex) return false;
          for (const p of ['', 'a', 'a/', 'a/b', 'b', 'c'])
            if (kv.prefixIndex(p) !== m.prefixIndex(p)) return false;
          for (const k of ['a', 'a/b', 'zz']) {
            if (kv.keyIndex(k) !== (m.entries.get(k)?.modify ?? m.tableIndex)) return false;
          }
        }
        return true;
      }),
      { numRuns: 300 },
    ),
  );
});

test('property: snapshot → restore round-trips exactly, state and subsequent behaviour', (t) => {
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), fc.array(opArb, { maxLength: 20 }), (before, after) => {
        const kv = new KvTable();
        const m = new Model();
        let index = 0;
        for (const op of before) applyBoth(kv, m, op, ++index);
        const snap = kv.toSnapshot();
        const restored = KvTable.fromSnapshot(structuredClone(snap));
        assert.deepEqual(restored.toSnapshot(), snap);
        assert.equal(restored.tableIndex, kv.tableIndex);
        assert.equal(restored.reapedIndex, kv.reapedIndex);
        // Drive the original and the copy with the same commands: same answers, same final state.
        for (const op of after) {
          index++;
          const resolved = resolveCas(op, kv);
          assert.deepEqual(applyOne(kv, resolved, index), applyOne(restored, resolved, index));
        }
        assert.deepEqual(restored.toSnapshot(), kv.toSnapshot());
        for (const p of ['', 'a', 'a/', 'b']) {
          assert.equal(restored.prefixIndex(p), kv.prefixIndex(p));
          assert.deepEqual(restored.keys(p, '/'), kv.keys(p, '/'));
        }
      }),
      { numRuns: 200 },
    ),
  );
});

/** Turns a symbolic `'current'` CAS index into the number read from `kv`, so both tables get the same command. */
function resolveCas(op: Op, kv: KvTable): Op {
  if ((op.op === 'cas' || op.op === 'deleteCas') && op.cas === 'current') {
    return { ...op, cas: kv.get(op.key)?.ModifyIndex ?? 0 };
  }
  return op;
}

function applyOne(kv: KvTable, op: Op, index: number): boolean | number {
  const num = (c: number | 'current') => (c === 'current' ? 0 : c);
  switch (op.op) {
    case 'set':
      return kv.set(index, op.key, bytes(op.value), op.flags);
    case 'cas':
      return kv.cas(index, op.key, bytes(op.value), op.flags, num(op.cas));
    case 'delete':
      return kv.delete(index, op.key);
    case 'deleteCas':
      return kv.deleteCas(index, op.key, num(op.cas));
    case 'deleteTree':
      return kv.deleteTree(index, op.prefix);
    case 'lock':
      return kv.lock(index, op.key, bytes(op.value), op.flags, op.session);
    case 'unlock':
      return kv.unlock(index, op.key, bytes(op.value), op.flags, op.session);
    case 'reap':
      return kv.reapTombstones(index - op.back);
  }
}

test('SortedKeys matches a sorted array under random inserts, value updates, removes, prefix removals and scans (chunks split and merge)', (t) => {
  const { CHUNK_MAX } = SortedKeys;
  // Short keys over a small alphabet: many shared prefixes; enough operations to split chunks.
  const key = fc.stringMatching(/^[ab/]{0,6}$/);
  const op = fc.oneof(
    { weight: 6, arbitrary: key.map((k) => ({ kind: 'insert' as const, k })) },
    { weight: 2, arbitrary: key.map((k) => ({ kind: 'setValue' as const, k })) },
    { weight: 3, arbitrary: key.map((k) => ({ kind: 'remove' as const, k })) },
    { weight: 1, arbitrary: key.map((k) => ({ kind: 'removePrefixed' as const, k: k.slice(0, 2) })) },
    { weight: 1, arbitrary: key.map((k) => ({ kind: 'from' as const, k })) },
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 300 }), fc.integer({ min: 0, max: 3 * CHUNK_MAX }), (ops, bulk) => {
      const sk = new SortedKeys<number>();
      const model: string[] = [];
      const values = new Map<string, number>();
      let version = 0;
      const add = (k: string): void => {
        if (model.includes(k)) return;
        sk.insert(k, ++version);
        values.set(k, version);
        model.push(k);
        model.sort();
      };
      const same = (): boolean =>
        JSON.stringify(sk.values()) === JSON.stringify(model.map((k) => values.get(k))) &&
        JSON.stringify(sk.entries()) === JSON.stringify(model.map((k) => [k, values.get(k)]));
      // A bulk load first, so chunks split (CHUNK_MAX keys per chunk at most).
      for (let i = 0; i < bulk; i++) add(`bulk/${String(i).padStart(5, '0')}`);
      for (const o of ops) {
        if (o.kind === 'insert') add(o.k);
        else if (o.kind === 'setValue') {
          if (!values.has(o.k)) continue;
          sk.setValue(o.k, ++version);
          values.set(o.k, version);
        } else if (o.kind === 'remove') {
          const at = model.indexOf(o.k);
          if (at < 0) continue;
          sk.remove(o.k);
          model.splice(at, 1);
          values.delete(o.k);
        } else if (o.kind === 'removePrefixed') {
          const expected = model.filter((k) => k.startsWith(o.k));
          if (JSON.stringify(sk.removePrefixed(o.k)) !== JSON.stringify(expected)) return false;
          for (const k of expected) {
            model.splice(model.indexOf(k), 1);
            values.delete(k);
          }
          if (!same()) return false;
        } else {
          const got = [...sk.from(o.k)];
          if (JSON.stringify(got) !== JSON.stringify(model.filter((k) => k >= o.k))) return false;
        }
        if (sk.size !== model.length) return false;
      }
      return JSON.stringify([...sk.from('')]) === JSON.stringify(model) && same();
    }),
    { numRuns: 200 },
  );
  t.pass();
});
