import test from 'ava';
import fc from 'fast-check';
import { CatalogFsm, readSnapshot, SnapshotFormatError } from '../../src/catalog/fsm.ts';
import { type QueryName, runQuery } from '../../src/catalog/queries.ts';
import { CatalogState } from '../../src/catalog/state.ts';
import type { CatalogCommand, SessionRow, TxnResult } from '../../src/catalog/types.ts';
import { WatchRegistry } from '../../src/catalog/watch.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const NOW = 1_700_000_000_000;

function session(
  id: string,
  over: Partial<SessionRow> = {},
): Omit<SessionRow, 'CreateIndex' | 'ModifyIndex'> {
  return {
    ID: id,
    Name: '',
    Node: 'n1',
    NodeChecks: [],
    ServiceChecks: [],
    LockDelay: 15e9,
    Behavior: 'release',
    TTL: '',
    ...over,
  };
}

/** A state with node n1 (check `alive`, passing) registered at index 1. */
function withNode(): { s: CatalogState; next: () => number } {
  const s = new CatalogState();
  let i = 0;
  const next = () => ++i;
  s.apply(next(), {
    type: 'register',
    node: { Node: 'n1', Address: '10.0.0.1' },
    checks: [{ CheckID: 'alive', Name: 'alive', Status: 'passing' }],
    now: NOW,
  });
  return { s, next };
}

test('session create refuses a missing node, a missing check and a critical check', (t) => {
  const { s, next } = withNode();
  let r = s.apply(next(), { type: 'session-create', session: session('a', { Node: 'nope' }), now: NOW });
  t.deepEqual(r, { ok: false, error: 'Missing node registration' });
  r = s.apply(next(), { type: 'session-create', session: session('a', { NodeChecks: ['gone'] }), now: NOW });
  t.false(r.ok);
  s.apply(next(), {
    type: 'register',
    node: { Node: 'n1', Address: '10.0.0.1' },
    checks: [{ CheckID: 'bad', Status: 'critical' }],
    now: NOW,
  });
  r = s.apply(next(), { type: 'session-create', session: session('a', { NodeChecks: ['bad'] }), now: NOW });
  t.deepEqual(r, { ok: false, error: "Check 'bad' is in critical state" });
  t.is(s.sessions.size, 0);
});

test('a lock is released when its check goes critical, and the lock delay then holds others off', (t) => {
  const { s, next } = withNode();
  t.true(
    s.apply(next(), { type: 'session-create', session: session('s1', { NodeChecks: ['alive'] }), now: NOW })
      .ok,
  );
  t.true(s.apply(next(), { type: 'session-create', session: session('s2'), now: NOW }).ok);
  const lock = (sess: string, now: number) =>
    s.apply(next(), {
      type: 'kv',
      op: { Verb: 'lock', Key: 'leader', Value: b64(sess), Session: sess },
      now,
    });
  t.deepEqual(lock('s1', NOW), { ok: true, value: true });
  t.deepEqual(lock('s2', NOW), { ok: true, value: false }, 'held by s1');
  t.is(s.kv.get('leader')?.LockIndex, 1);

  // The check fails: s1 is invalidated, its key released (value kept), lock delay armed.
  s.apply(next(), {
    type: 'register',
    node: { Node: 'n1', Address: '10.0.0.1' },
    checks: [{ CheckID: 'alive', Name: 'alive', Status: 'critical' }],
    now: NOW + 1000,
  });
  t.is(s.sessions.get('s1'), undefined);
  t.is(s.kv.get('leader')?.Session, undefined);
  t.is(Buffer.from(s.kv.get('leader')?.Value ?? []).toString(), 's1');
  t.deepEqual(lock('s2', NOW + 2000), { ok: true, value: false }, 'inside the 15 s lock delay');
  t.deepEqual(lock('s2', NOW + 17_000), { ok: true, value: true }, 'after it');
  t.is(s.kv.get('leader')?.LockIndex, 2);
});

test('destroying a delete-behavior session deletes its keys; node deregistration destroys its sessions', (t) => {
  const { s, next } = withNode();
  s.apply(next(), {
    type: 'session-create',
    session: session('d', { Behavior: 'delete', LockDelay: 0 }),
    now: NOW,
  });
  s.apply(next(), { type: 'kv', op: { Verb: 'lock', Key: 'eph', Value: b64('x'), Session: 'd' }, now: NOW });
  s.apply(next(), { type: 'session-destroy', id: 'd', now: NOW });
  t.is(s.kv.get('eph'), undefined);

  s.apply(next(), { type: 'session-create', session: session('r'), now: NOW });
  s.apply(next(), { type: 'kv', op: { Verb: 'lock', Key: 'held', Value: b64('x'), Session: 'r' }, now: NOW });
  s.apply(next(), { type: 'deregister', node: 'n1', now: NOW });
  t.is(s.sessions.size, 0);
  t.is(s.kv.get('held')?.Session, undefined);
  t.deepEqual(s.kv.heldBy('r'), []);
});

test('a txn is all or nothing: the failing op rolls back every write and wakes nobody', async (t) => {
  const { s, next } = withNode();
  s.apply(next(), { type: 'kv', op: { Verb: 'set', Key: 'a', Value: b64('1') }, now: NOW });
  const indexBefore = s.kv.tableIndex;
  const ac = new AbortController();
  let woke = false;
  void s.watches.waitForChange(['kv:key:b'], s.watches.lastIndex, ac.signal).then(
    () => {
      woke = true;
    },
    () => undefined,
  );
  const r = s.apply(next(), {
    type: 'txn',
    ops: [
      { KV: { Verb: 'set', Key: 'b', Value: b64('2') } },
      { KV: { Verb: 'delete', Key: 'a' } },
      { KV: { Verb: 'cas', Key: 'a', Value: b64('3'), Index: 999 } },
    ],
    now: NOW,
  });
  const value = (r as { value: TxnResult }).value;
  t.is(value.Results, null);
  t.deepEqual(value.Errors, [{ OpIndex: 2, What: 'failed to set key "a", index is stale' }]);
  t.is(s.kv.get('b'), undefined);
  t.is(Buffer.from(s.kv.get('a')?.Value ?? []).toString(), '1');
  t.is(s.kv.tableIndex, indexBefore);
  await new Promise((res) => setImmediate(res));
  t.false(woke);
  ac.abort();

  const ok = s.apply(next(), {
    type: 'txn',
    ops: [
      { KV: { Verb: 'set', Key: 'b', Value: b64('2') } },
      { KV: { Verb: 'get', Key: 'a' } },
      { KV: { Verb: 'check-not-exists', Key: 'zzz' } },
    ],
    now: NOW,
  });
  const okValue = (ok as { value: TxnResult }).value;
  t.is(okValue.Errors, null);
  t.deepEqual(
    okValue.Results?.map((x) => [x.KV.Key, x.KV.Value]),
    [
      ['b', null],
      ['a', b64('1')],
    ],
  );
});

test('a txn over the op limit is refused with 413', (t) => {
  const { s, next } = withNode();
  const ops = Array.from({ length: 129 }, (_, i) => ({ KV: { Verb: 'set' as const, Key: `k${i}` } }));
  const r = s.apply(next(), { type: 'txn', ops, now: NOW });
  t.deepEqual(r, { ok: false, error: 'Transaction contains too many operations (129 > 128)', status: 413 });
});

test('the snapshot format has a header and refuses a newer version or a truncated stream', async (t) => {
  const fsm = new CatalogFsm();
  const chunks: Uint8Array[] = [];
  for await (const c of fsm.snapshot().chunks()) chunks.push(c);
  const text = Buffer.concat(chunks).toString();
  t.regex(text.split('\n')[0], /"format":"meshd-catalog","version":1/);
  const bump = async function* () {
    yield new TextEncoder().encode(`${text.replace('"version":1', '"version":2')}`);
  };
  await t.throwsAsync(readSnapshot(bump(), new WatchRegistry()), {
    instanceOf: SnapshotFormatError,
    message: /version 2/,
  });
  const cut = async function* () {
    yield new TextEncoder().encode(text.slice(0, -1));
  };
  await t.throwsAsync(readSnapshot(cut(), new WatchRegistry()), { instanceOf: SnapshotFormatError });
});

// ---- property: snapshot → restore reproduces every query exactly ----

const names = fc.constantFrom('a', 'b', 'c');
const keys = fc.constantFrom('x', 'x/1', 'x/2', 'y', 'y/z');
const commandArb: fc.Arbitrary<CatalogCommand> = fc.oneof(
  fc.record({
    type: fc.constant('register' as const),
    node: fc.record({ Node: names, Address: fc.constantFrom('10.0.0.1', '10.0.0.2') }),
    service: fc.option(
      fc.record({ Service: fc.constantFrom('web', 'db'), Tags: fc.subarray(['v1', 'v2']), Port: fc.nat(9) }),
      { nil: undefined },
    ),
    checks: fc.option(
      fc.array(
        fc.record({
          CheckID: fc.constantFrom('c1', 'c2'),
          Status: fc.constantFrom('passing', 'warning', 'critical'),
        }),
        { maxLength: 2 },
      ),
      { nil: undefined },
    ),
    now: fc.constant(NOW),
  }) as fc.Arbitrary<CatalogCommand>,
  fc.record({ type: fc.constant('deregister' as const), node: names, now: fc.constant(NOW) }),
  fc.record({
    type: fc.constant('kv' as const),
    op: fc.oneof(
      fc.record({ Verb: fc.constant('set' as const), Key: keys, Value: fc.base64String({ maxLength: 8 }) }),
      fc.record({ Verb: fc.constant('delete' as const), Key: keys }),
      fc.record({ Verb: fc.constant('delete-tree' as const), Key: fc.constantFrom('x', 'y') }),
      fc.record({ Verb: fc.constant('lock' as const), Key: keys, Session: fc.constantFrom('s-a', 's-b') }),
      fc.record({ Verb: fc.constant('unlock' as const), Key: keys, Session: fc.constantFrom('s-a', 's-b') }),
    ),
    now: fc.constant(NOW),
  }),
  fc.record({
    type: fc.constant('session-create' as const),
    session: fc.record({
      ID: fc.constantFrom('s-a', 's-b'),
      Name: fc.constant(''),
      Node: names,
      NodeChecks: fc.subarray(['c1']),
      ServiceChecks: fc.constant([] as { ID: string; Namespace: string }[]),
      LockDelay: fc.constantFrom(0, 15e9),
      Behavior: fc.constantFrom('release' as const, 'delete' as const),
      TTL: fc.constantFrom('', '10s'),
    }),
    now: fc.constant(NOW),
  }),
  fc.record({
    type: fc.constant('session-destroy' as const),
    id: fc.constantFrom('s-a', 's-b'),
    now: fc.constant(NOW),
  }),
  fc.record({ type: fc.constant('tombstone-reap' as const), upToIndex: fc.nat(30), now: fc.constant(NOW) }),
);

const probes: [QueryName, Record<string, unknown>][] = [
  ['kv.list', { prefix: '' }],
  ['kv.get', { key: 'x' }],
  ['kv.list', { prefix: 'x' }],
  ['kv.keys', { prefix: '', separator: '/' }],
  ['catalog.nodes', {}],
  ['catalog.services', {}],
  ['catalog.service', { service: 'web' }],
  ['catalog.node', { node: 'a' }],
  ['health.state', { state: 'any' }],
  ['health.service', { service: 'db', passingOnly: true }],
  ['session.list', {}],
];

test('snapshot then restore answers every query with the same data and index (property)', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(commandArb, { maxLength: 40 }), async (cmds) => {
      const fsm = new CatalogFsm();
      for (const [i, cmd] of cmds.entries()) fsm.state.apply(i + 1, cmd);
      const chunks: Uint8Array[] = [];
      for await (const c of fsm.snapshot().chunks()) chunks.push(c);
      const copy = new CatalogFsm();
      await copy.restore(
        (async function* () {
          yield* chunks;
        })(),
      );
      t.is(copy.state.lastIndex, fsm.state.lastIndex);
      for (const [name, args] of probes) {
        const a = runQuery(fsm.state, name, args as never);
        const b = runQuery(copy.state, name, args as never);
        if (JSON.stringify([a.index, a.result]) !== JSON.stringify([b.index, b.result])) {
          throw new Error(`${name} differs after restore`);
        }
      }
      // Applying the same next command to both keeps them identical.
      const nextCmd: CatalogCommand = {
        type: 'kv',
        op: { Verb: 'set', Key: 'x/9', Value: b64('z') },
        now: NOW,
      };
      fsm.state.apply(cmds.length + 1, nextCmd);
      copy.state.apply(cmds.length + 1, nextCmd);
      const a = runQuery(fsm.state, 'kv.list', { prefix: '' });
      const b = runQuery(copy.state, 'kv.list', { prefix: '' });
      return JSON.stringify(a) === JSON.stringify(b);
    }),
    { numRuns: 200 },
  );
  t.pass();
});

test('restore wakes every parked blocking query', async (t) => {
  const fsm = new CatalogFsm();
  fsm.state.apply(1, { type: 'kv', op: { Verb: 'set', Key: 'k', Value: b64('1') }, now: NOW });
  const chunks: Uint8Array[] = [];
  for await (const c of fsm.snapshot().chunks()) chunks.push(c);
  const ac = new AbortController();
  const parked = fsm.watches.waitForChange(['kv:key:k'], fsm.watches.lastIndex, ac.signal);
  await fsm.restore(
    (async function* () {
      yield* chunks;
    })(),
  );
  await parked;
  t.pass();
});
