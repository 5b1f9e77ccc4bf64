import test from 'ava';
import { KvTable, kvKeyWatch, kvPrefixWatch } from '../../src/catalog/kv.ts';
import { blockingQuery, jitteredWait, TooManyWaitersError, WatchRegistry } from '../../src/catalog/watch.ts';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
/** Lets every settled promise run its reactions (not a sleep: no time passes on any clock we test). */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Parks a waiter and reports whether it has woken. */
function park(reg: WatchRegistry, keys: string[], after: number, signal = new AbortController().signal) {
  const state = { woken: false, error: undefined as unknown };
  reg.waitForChange(keys, after, signal).then(
    () => {
      state.woken = true;
    },
    (err: unknown) => {
      state.error = err;
    },
  );
  return state;
}

test('notify wakes waiters of the changed keys only, and removes them', async (t) => {
  const reg = new WatchRegistry();
  const a = park(reg, ['a'], 0);
  const b = park(reg, ['b'], 0);
  const ab = park(reg, ['a', 'b'], 0);
  t.is(reg.waiterCount, 3);
  t.is(reg.watchedKeyCount, 2);
  reg.notify(['a'], 5);
  await flush();
  t.true(a.woken);
  t.false(b.woken);
  t.true(ab.woken);
  t.is(reg.waiterCount, 1);
  t.is(reg.watchedKeyCount, 1, 'the two-key waiter left key b too');
  t.is(reg.lastIndex, 5);
  reg.notify(['b'], 6);
  await flush();
  t.true(b.woken);
  t.is(reg.waiterCount, 0);
  t.is(reg.watchedKeyCount, 0);
});

test('a wait after an index older than the last change resolves at once; a current one parks', async (t) => {
  const reg = new WatchRegistry();
  reg.notify(['a'], 7);
  const late = park(reg, ['a'], 6);
  // No per-key history: a late wait on a key that never changed wakes too (extra, never missed).
  const lateOther = park(reg, ['b'], 3);
  const current = park(reg, ['a'], 7);
  const currentOther = park(reg, ['b'], 7);
  await flush();
  t.true(late.woken);
  t.true(lateOther.woken);
  t.false(current.woken);
  t.false(currentOther.woken);
  t.is(reg.waiterCount, 2);
  reg.notify(['b'], 8);
  await flush();
  t.false(current.woken, 'a did not change');
  t.true(currentOther.woken);
});

test('notify with nobody parked only moves the index; wakeAll moves it too', async (t) => {
  const reg = new WatchRegistry();
  reg.notify(['a', 'b'], 4);
  t.is(reg.lastIndex, 4);
  t.is(reg.watchedKeyCount, 0);
  const parked = park(reg, ['a'], 4);
  reg.wakeAll(9);
  await flush();
  t.true(parked.woken);
  t.is(reg.lastIndex, 9);
  t.is(reg.resets, 1);
});

test('abort rejects with the signal reason and removes the waiter', async (t) => {
  const reg = new WatchRegistry();
  const ac = new AbortController();
  const p = reg.waitForChange(['a', 'b'], 0, ac.signal);
  t.is(reg.waiterCount, 1);
  const reason = new Error('client gone');
  ac.abort(reason);
  await t.throwsAsync(p, { is: reason });
  t.is(reg.waiterCount, 0);
  t.is(reg.watchedKeyCount, 0);
  await t.throwsAsync(reg.waitForChange(['a'], 0, ac.signal), { is: reason }, 'already aborted');
  t.is(reg.waiterCount, 0);
});

test('10,000 aborted waits leave the registry empty', async (t) => {
  const reg = new WatchRegistry();
  const waits: Promise<void>[] = [];
  const controllers: AbortController[] = [];
  for (let i = 0; i < 10_000; i++) {
    const ac = new AbortController();
    controllers.push(ac);
    waits.push(reg.waitForChange([`k${i % 100}`, 'shared'], 0, ac.signal));
  }
  t.is(reg.waiterCount, 10_000);
  t.is(reg.watchedKeyCount, 101);
  for (const ac of controllers) ac.abort();
  const settled = await Promise.allSettled(waits);
  t.true(settled.every((s) => s.status === 'rejected'));
  t.is(reg.waiterCount, 0);
  t.is(reg.watchedKeyCount, 0);
});

test('a woken waiter ignores a later abort', async (t) => {
  const reg = new WatchRegistry();
  const ac = new AbortController();
  const p = reg.waitForChange(['a'], 0, ac.signal);
  reg.notify(['a'], 1);
  ac.abort();
  await t.notThrowsAsync(p);
  t.is(reg.waiterCount, 0);
});

test('maxWaiters bounds parked waiters', async (t) => {
  const reg = new WatchRegistry({ maxWaiters: 2 });
  const ac = new AbortController();
  const p1 = reg.waitForChange(['a'], 0, ac.signal);
  const p2 = reg.waitForChange(['a'], 0, ac.signal);
  await t.throwsAsync(reg.waitForChange(['a'], 0, ac.signal), { instanceOf: TooManyWaitersError });
  reg.notify(['a'], 1);
  await Promise.all([p1, p2]);
  const p3 = reg.waitForChange(['a'], 1, ac.signal);
  t.is(reg.waiterCount, 1, 'room again');
  ac.abort();
  await t.throwsAsync(p3);
  t.is(reg.waiterCount, 0);
});

// ---- KV prefix watches ----

test('a KV write wakes watchers of the key and of every prefix, not siblings or descendants', async (t) => {
  const reg = new WatchRegistry();
  const kv = new KvTable(reg);
  const after = 0;
  const woken = {
    key: park(reg, [kvKeyWatch('a/b/c')], after),
    pAB: park(reg, [kvPrefixWatch('a/b/')], after),
    pA: park(reg, [kvPrefixWatch('a/')], after),
    pAll: park(reg, [kvPrefixWatch('')], after),
    pPartial: park(reg, [kvPrefixWatch('a/b')], after),
    sibling: park(reg, [kvPrefixWatch('a/x')], after),
    siblingKey: park(reg, [kvKeyWatch('a/b')], after),
    deeper: park(reg, [kvPrefixWatch('a/b/c/')], after),
    other: park(reg, [kvPrefixWatch('b/')], after),
  };
  kv.set(1, 'a/b/c', bytes('v'), 0);
  await flush();
  const got = Object.fromEntries(Object.entries(woken).map(([k, v]) => [k, v.woken]));
  t.deepEqual(got, {
    key: true,
    pAB: true,
    pA: true,
    pAll: true,
    pPartial: true,
    sibling: false,
    siblingKey: false,
    deeper: false,
    other: false,
  });
});

test('failed CAS and deletes of missing keys wake nobody', async (t) => {
  const reg = new WatchRegistry();
  const kv = new KvTable(reg);
  kv.set(1, 'a', bytes('v'), 0);
  const w = park(reg, [kvPrefixWatch('')], reg.lastIndex);
  t.false(kv.cas(2, 'a', bytes('w'), 0, 99));
  t.true(kv.delete(3, 'missing'));
  t.true(kv.deleteTree(4, 'zzz/'));
  await flush();
  t.false(w.woken);
  t.is(kv.tableIndex, 1);
});

test('deleteTree wakes the prefix, its ancestors, and watchers of deleted keys and sub-prefixes only', async (t) => {
  const reg = new WatchRegistry();
  const kv = new KvTable(reg);
  kv.set(1, 'a/b/c', bytes('1'), 0);
  kv.set(2, 'a/b/d', bytes('2'), 0);
  kv.set(3, 'a/x', bytes('3'), 0);
  const after = reg.lastIndex;
  const w = {
    key: park(reg, [kvKeyWatch('a/b/c')], after),
    sub: park(reg, [kvPrefixWatch('a/b/')], after),
    self: park(reg, [kvPrefixWatch('a/')], after),
    root: park(reg, [kvPrefixWatch('')], after),
    sibling: park(reg, [kvKeyWatch('a/x')], after),
    siblingPrefix: park(reg, [kvPrefixWatch('a/x')], after),
  };
  kv.deleteTree(4, 'a/b/');
  await flush();
  t.deepEqual(Object.fromEntries(Object.entries(w).map(([k, v]) => [k, v.woken])), {
    key: true,
    sub: true,
    self: true,
    root: true,
    sibling: false,
    siblingPrefix: false,
  });
});

// ---- blockingQuery ----

function kvQuery(kv: KvTable, prefix: string) {
  return () => ({
    index: kv.prefixIndex(prefix),
    result: kv.list(prefix).map((e) => e.Key),
    watch: [kvPrefixWatch(prefix)],
  });
}

test('jitter adds up to wait/16', (t) => {
  t.is(
    jitteredWait(1600, () => 0),
    1600,
  );
  t.is(
    jitteredWait(1600, () => 0.999_999),
    1699,
  );
  t.is(
    jitteredWait(1600, () => 0.5),
    1650,
  );
});

test('blockingQuery returns at once for minIndex 0 or an index already past it', async (t) => {
  const reg = new WatchRegistry();
  const kv = new KvTable(reg);
  kv.set(5, 'a/1', bytes('x'), 0);
  const started = performance.now();
  const r0 = await blockingQuery({
    minIndex: 0,
    waitMs: 10_000,
    registry: reg,
    run: kvQuery(kv, 'a/'),
    random: () => 0,
  });
  const r1 = await blockingQuery({
    minIndex: 4,
    waitMs: 10_000,
    registry: reg,
    run: kvQuery(kv, 'a/'),
    random: () => 0,
  });
  t.true(performance.now() - started < 1_000);
  t.deepEqual(r0, { index: 5, result: ['a/1'] });
  t.deepEqual(r1, { index: 5, result: ['a/1'] });
  t.is(reg.waiterCount, 0);
});

test('blockingQuery never reports index 0', async (t) => {
  const reg = new WatchRegistry();
  const kv = new KvTable(reg);
  const r = await blockingQuery({
    minIndex: 0,
    waitMs: 50,
    registry: reg,
    run: kvQuery(kv, 'a/'),
    random: () => 0,
  });
  t.deepEqual(r, { index: 1, result: [] });
});

test('blockingQuery times out with the same index and data when nothing changed', async (t) => {
  const reg = new WatchRegistry();
  const kv = new KvTable(reg);
  kv.set(5, 'a/1', bytes('x'), 0);
  const started = performance.now();
  const r = await blockingQuery({
    minIndex: 5,
    waitMs: 100,
    registry: reg,
    run: kvQuery(kv, 'a/'),
    random: () => 0,
  });
  t.true(performance.now() - started >= 95, 'waited the full wait');
  t.deepEqual(r, { index: 5, result: ['a/1'] });
  t.is(reg.waiterCount, 0);
});

test('blockingQuery wakes early on a relevant change', async (t) => {
  const reg = new WatchRegistry();
  const kv = new KvTable(reg);
  kv.set(5, 'a/1', bytes('x'), 0);
  const started = performance.now();
  const pending = blockingQuery({
    minIndex: 5,
    waitMs: 10_000,
    registry: reg,
    run: kvQuery(kv, 'a/'),
    random: () => 0,
  });
  t.is(reg.waiterCount, 1, 'parked');
  kv.set(6, 'a/2', bytes('y'), 0);
  const r = await pending;
  t.true(performance.now() - started < 1_000);
  t.deepEqual(r, { index: 6, result: ['a/1', 'a/2'] });
  t.is(reg.waiterCount, 0);
});

test('blockingQuery is not woken by an unrelated change', async (t) => {
  const reg = new WatchRegistry();
  const kv = new KvTable(reg);
  kv.set(5, 'a/1', bytes('x'), 0);
  let runs = 0;
  const run = kvQuery(kv, 'a/');
  const started = performance.now();
  const pending = blockingQuery({
    minIndex: 5,
    waitMs: 150,
    registry: reg,
    run: () => {
      runs++;
      return run();
    },
    random: () => 0,
  });
  kv.set(6, 'b/1', bytes('y'), 0);
  kv.set(7, 'a', bytes('z'), 0); // 'a' is not under 'a/'
  const r = await pending;
  t.true(performance.now() - started >= 145, 'took the whole wait');
  t.deepEqual(r, { index: 5, result: ['a/1'] });
  t.is(runs, 1, 'never rerun');
});

test('blockingQuery reruns on a watched change that leaves the index alone, then keeps waiting', async (t) => {
  const reg = new WatchRegistry();
  let runs = 0;
  const pending = blockingQuery({
    minIndex: 3,
    waitMs: 100,
    registry: reg,
    run: () => {
      runs++;
      return { index: 3, result: 'same', watch: ['k'] };
    },
    random: () => 0,
  });
  reg.notify(['k'], 4);
  const r = await pending;
  t.deepEqual(r, { index: 3, result: 'same' });
  t.is(runs, 2, 'one rerun, no busy loop');
});

test('blockingQuery reports the truthful index when it went below minIndex (client resets)', async (t) => {
  const reg = new WatchRegistry();
  const kv = new KvTable(reg);
  kv.set(5, 'a/1', bytes('x'), 0);
  const r = await blockingQuery({
    minIndex: 50,
    waitMs: 60,
    registry: reg,
    run: kvQuery(kv, 'a/'),
    random: () => 0,
  });
  t.deepEqual(r, { index: 5, result: ['a/1'] });
});

test('blockingQuery rejects with the reason when its signal aborts, and cleans up', async (t) => {
  const reg = new WatchRegistry();
  const kv = new KvTable(reg);
  kv.set(5, 'a/1', bytes('x'), 0);
  const ac = new AbortController();
  const pending = blockingQuery({
    minIndex: 5,
    waitMs: 10_000,
    signal: ac.signal,
    registry: reg,
    run: kvQuery(kv, 'a/'),
    random: () => 0,
  });
  const reason = new Error('gone');
  ac.abort(reason);
  await t.throwsAsync(pending, { is: reason });
  t.is(reg.waiterCount, 0);
});
