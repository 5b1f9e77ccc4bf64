import fc from 'fast-check';
import type { Entry, EntryType, Message, SnapshotMessage } from '../../src/raft/types.ts';

const bytes = (...b: number[]) => new Uint8Array(b);

export const snapshotSample: SnapshotMessage = {
  type: 'snapshot',
  from: 'n1',
  to: 'n2',
  term: 7,
  snapshot: {
    index: 1200,
    term: 6,
    config: {
      servers: [
        { id: 'n1', address: '10.0.0.1:8300', suffrage: 'voter' },
        { id: 'n2', address: '10.0.0.2:8300', suffrage: 'voter' },
        { id: 'n3', address: '10.0.0.3:8300', suffrage: 'nonvoter' },
      ],
    },
  },
};

/** One message of every type, with values that survive only an exact encoding. */
export const samples: Message[] = [
  {
    type: 'append',
    from: 'n1',
    to: 'n2',
    term: 7,
    prevIndex: 41,
    prevTerm: 6,
    entries: [
      { index: 42, term: 6, type: 'normal', data: bytes(1, 2, 3) },
      { index: 43, term: 7, type: 'noop', data: bytes() },
      { index: 44, term: 7, type: 'config', data: new TextEncoder().encode('{"servers":[]}') },
    ],
    commit: 40,
  },
  { type: 'append', from: 'n1', to: 'n2', term: 1, prevIndex: 0, prevTerm: 0, entries: [], commit: 0 },
  {
    type: 'appendResp',
    from: 'n2',
    to: 'n1',
    term: 7,
    index: 44,
    reject: true,
    hintIndex: 30,
    hintTerm: 5,
  },
  {
    type: 'vote',
    from: 'n3',
    to: 'n1',
    term: Number.MAX_SAFE_INTEGER,
    pre: true,
    lastIndex: 2 ** 40,
    lastTerm: 9,
    transfer: true,
  },
  { type: 'voteResp', from: 'n1', to: 'n3', term: 8, pre: true, granted: true },
  { type: 'heartbeat', from: 'n1', to: 'n2', term: 7, commit: 44, readCtx: 12 },
  { type: 'heartbeatResp', from: 'n2', to: 'n1', term: 7, readCtx: 12 },
  { type: 'timeoutNow', from: 'n1', to: 'n2', term: 7 },
  { type: 'readIndex', from: 'n2', to: 'n1', term: 7, readCtx: 99 },
  { type: 'readIndexResp', from: 'n1', to: 'n2', term: 7, readCtx: 99, index: 0 },
];

const id = fc.string({ minLength: 1, maxLength: 24, unit: 'binary' });
const big = fc.oneof(fc.nat(1000), fc.maxSafeNat());
const entryType = fc.constantFrom<EntryType>('normal', 'noop', 'config');

const appendArb = fc
  .record({
    from: id,
    to: id,
    prevIndex: fc.nat(2 ** 40),
    prevTerm: fc.nat(1000),
    steps: fc.array(fc.record({ dt: fc.nat(2), type: entryType, data: fc.uint8Array({ maxLength: 48 }) }), {
      maxLength: 6,
    }),
    extraTerm: fc.nat(3),
    commit: big,
  })
  .map(({ from, to, prevIndex, prevTerm, steps, extraTerm, commit }): Message => {
    let t = prevTerm;
    const entries: Entry[] = steps.map((s, i) => {
      t += s.dt;
      return { index: prevIndex + 1 + i, term: t, type: s.type, data: s.data };
    });
    return { type: 'append', from, to, term: t + extraTerm, prevIndex, prevTerm, entries, commit };
  });

const snapshotArb = fc
  .record({
    from: id,
    to: id,
    term: big,
    index: big,
    sterm: big,
    servers: fc.uniqueArray(
      fc.record({
        id,
        address: fc.string({ maxLength: 40 }),
        suffrage: fc.constantFrom<'voter' | 'nonvoter'>('voter', 'nonvoter'),
      }),
      { selector: (s) => s.id, maxLength: 5 },
    ),
  })
  .map(
    ({ from, to, term, index, sterm, servers }): SnapshotMessage => ({
      type: 'snapshot',
      from,
      to,
      term,
      snapshot: { index, term: sterm, config: { servers: servers.map((s) => ({ ...s })) } },
    }),
  );

/** Random valid messages of every type but snapshot (those travel apart). */
export const batchableMessageArb: fc.Arbitrary<Message> = fc
  .oneof(
    appendArb,
    fc.record({
      type: fc.constant('appendResp' as const),
      from: id,
      to: id,
      term: big,
      index: big,
      reject: fc.boolean(),
      hintIndex: big,
      hintTerm: big,
    }),
    fc.record({
      type: fc.constant('vote' as const),
      from: id,
      to: id,
      term: big,
      pre: fc.boolean(),
      lastIndex: big,
      lastTerm: big,
      transfer: fc.boolean(),
    }),
    fc.record({
      type: fc.constant('voteResp' as const),
      from: id,
      to: id,
      term: big,
      pre: fc.boolean(),
      granted: fc.boolean(),
    }),
    fc.record({
      type: fc.constant('heartbeat' as const),
      from: id,
      to: id,
      term: big,
      commit: big,
      readCtx: big,
    }),
    fc.record({ type: fc.constant('heartbeatResp' as const), from: id, to: id, term: big, readCtx: big }),
    fc.record({ type: fc.constant('timeoutNow' as const), from: id, to: id, term: big }),
    fc.record({ type: fc.constant('readIndex' as const), from: id, to: id, term: big, readCtx: big }),
    fc.record({
      type: fc.constant('readIndexResp' as const),
      from: id,
      to: id,
      term: big,
      readCtx: big,
      index: big,
    }),
  )
  // fast-check may build records without a prototype; decoded messages are plain objects.
  .map((m) => ({ ...m }));

export const messageArb: fc.Arbitrary<Message> = fc.oneof(batchableMessageArb, snapshotArb);
