/**
 * EntryColumns, the Raft log's columnar entry store: it must behave exactly like an array of
 * entries, keep every view it handed out intact, and let go of payload chunks once compaction
 * passes them.
 */
import test from 'ava';
import fc from 'fast-check';
import { EntryColumns } from '../../src/raft/entry-columns.ts';
import type { Entry, EntryType } from '../../src/raft/types.ts';

const entry = (term: number, type: EntryType, bytes: number[]): Entry => ({
  index: 0,
  term,
  type,
  data: Uint8Array.from(bytes),
});

const plain = (e: Entry) => ({ term: e.term, type: e.type, data: [...e.data] });

test('entries come back with their term, type and bytes; the stored bytes are a copy', (t) => {
  const cols = new EntryColumns();
  const a = entry(1, 'noop', []);
  const b = entry(2, 'normal', [1, 2, 3]);
  const c = entry(2, 'config', [9]);
  for (const e of [a, b, c]) cols.push(e);
  b.data[0] = 99; // the caller reusing its buffer changes nothing stored
  t.is(cols.length, 3);
  t.deepEqual(plain(cols.at(0, 5)), { term: 1, type: 'noop', data: [] });
  t.deepEqual(plain(cols.at(1, 6)), { term: 2, type: 'normal', data: [1, 2, 3] });
  t.deepEqual(plain(cols.at(2, 7)), { term: 2, type: 'config', data: [9] });
  t.is(cols.at(2, 7).index, 7);
  t.is(cols.term(1), 2);
  t.is(cols.size(1), 3 + 24);
});

test('a payload larger than a chunk gets a chunk of its own', (t) => {
  const cols = new EntryColumns();
  const big = new Uint8Array(200 * 1024).map((_, i) => i % 251);
  cols.push(entry(1, 'normal', [7]));
  cols.push({ index: 0, term: 1, type: 'normal', data: big });
  cols.push(entry(1, 'normal', [8]));
  t.deepEqual(cols.at(1, 2).data, big);
  t.deepEqual([...cols.at(2, 3).data], [8]);
});

test('truncation never overwrites bytes already handed out', (t) => {
  const cols = new EntryColumns();
  cols.push(entry(1, 'normal', [1, 1]));
  cols.push(entry(1, 'normal', [2, 2]));
  const held = cols.at(1, 2).data; // e.g. in a write or a message still in flight
  cols.truncate(1);
  cols.push(entry(2, 'normal', [3, 3]));
  t.deepEqual([...held], [2, 2]);
  t.deepEqual([...cols.at(1, 2).data], [3, 3]);
  t.is(cols.term(1), 2);
});

test('dropping entries from the front releases the chunks no remaining entry uses', (t) => {
  const cols = new EntryColumns();
  const payload = new Array(1000).fill(5);
  for (let i = 0; i < 300; i++) cols.push(entry(1, 'normal', payload)); // ~300 KB: several chunks
  const before = cols.chunkBytes();
  t.true(before >= 300 * 1000);
  cols.dropFront(200);
  t.true(cols.chunkBytes() < before / 2, `${cols.chunkBytes()} of ${before} bytes still held`);
  t.is(cols.length, 100);
  t.deepEqual([...cols.at(99, 300).data], payload);
  cols.clear();
  t.is(cols.length, 0);
  t.is(cols.chunkBytes(), 0);
  cols.push(entry(3, 'normal', [4]));
  t.deepEqual(plain(cols.at(0, 301)), { term: 3, type: 'normal', data: [4] });
});

type Op =
  | { op: 'push'; term: number; type: EntryType; size: number }
  | { op: 'truncate'; keep: number }
  | { op: 'dropFront'; k: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      op: fc.constant('push' as const),
      term: fc.nat({ max: 5 }),
      type: fc.constantFrom<EntryType>('normal', 'noop', 'config'),
      size: fc.oneof(fc.nat({ max: 40 }), fc.integer({ min: 20_000, max: 70_000 })),
    }),
    weight: 6,
  },
  { arbitrary: fc.record({ op: fc.constant('truncate' as const), keep: fc.nat({ max: 60 }) }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('dropFront' as const), k: fc.nat({ max: 20 }) }), weight: 1 },
);

test('behaves as an array of entries under any mix of pushes, truncations and compactions', (t) => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 120 }), (ops) => {
      const cols = new EntryColumns();
      const model: Entry[] = [];
      // Views handed out, each with the byte it was filled with (every payload is one repeated byte).
      const views: [Uint8Array, number][] = [];
      let seq = 0;
      for (const o of ops) {
        if (o.op === 'push') {
          const data = new Uint8Array(o.size).fill(seq++ % 256);
          const e: Entry = { index: 0, term: o.term, type: o.type, data };
          cols.push(e);
          model.push({ ...e, data: data.slice() });
        } else if (o.op === 'truncate') {
          cols.truncate(o.keep);
          model.length = Math.min(model.length, o.keep);
        } else {
          cols.dropFront(o.k);
          model.splice(0, o.k);
        }
        if (model.length > 0)
          views.push([cols.at(model.length - 1, 0).data, model[model.length - 1].data[0]]);
      }
      if (cols.length !== model.length) return false;
      for (const [i, e] of model.entries()) {
        const got = cols.at(i, i);
        if (got.term !== e.term || got.type !== e.type || cols.term(i) !== e.term) return false;
        if (Buffer.compare(got.data, e.data) !== 0 || cols.size(i) !== e.data.byteLength + 24) return false;
      }
      // Every view handed out still reads what it read then.
      return views.every(([v, byte]) => v.every((b) => b === byte));
    }),
    { numRuns: 300 },
  );
  t.pass();
});
