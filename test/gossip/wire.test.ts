/** The gossip wire format: round trips, and garbage of every kind refused with one clear error. */

import test from 'ava';
import fc from 'fast-check';
import { type GossipMessage, MAX_USER_MESSAGE_LENGTH } from '../../src/agent/gossip/core/types.ts';
import {
  decodeMessage,
  encodeMessage,
  GossipWireError,
  MAX_FRAME_BYTES,
} from '../../src/agent/gossip/wire.ts';

const from = { name: 'a', addr: '127.0.0.1:8301' };
const samples: GossipMessage[] = [
  { type: 'ping', seq: 1, target: 'b', from, updates: [] },
  { type: 'ack', seq: 2, from, updates: [{ kind: 'suspect', name: 'c', inc: 3, by: 'a' }] },
  { type: 'nack', seq: 3, from, updates: [{ kind: 'left', name: 'c', inc: 4 }] },
  { type: 'ping-req', seq: 4, target: 'b', targetAddr: '127.0.0.2:8301', from, updates: [] },
  {
    type: 'push-pull',
    seq: 5,
    join: true,
    reply: false,
    state: [{ kind: 'alive', name: 'a', id: 'x', addr: '127.0.0.1:8301', meta: { role: 'node' }, inc: 1 }],
    from,
    updates: [{ kind: 'dead', name: 'd', inc: 1, by: 'a' }],
  },
  { type: 'gossip', from, updates: [] },
  { type: 'gossip', from, updates: [], user: ['{"ID":"e1"}', 'two'] },
  {
    type: 'push-pull',
    seq: 6,
    join: false,
    reply: true,
    state: [],
    recent: [{ body: '{"ID":"e1"}', ageMs: 1_500 }],
    from,
    updates: [],
    user: ['x'],
  },
];

test('every message type round-trips', (t) => {
  for (const m of samples) t.deepEqual(decodeMessage(encodeMessage(m)), m);
});

test('fields a later agent adds are dropped, not the message (how user and recent stay compatible)', (t) => {
  const later = { v: 1, type: 'ping', seq: 1, target: 'b', from, updates: [], somethingNew: [1, 2] };
  t.deepEqual(decodeMessage(new TextEncoder().encode(JSON.stringify(later))), samples[0]);
});

test('garbage, other versions, wrong types and oversize frames are refused with a one-line reason', (t) => {
  const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  const cases: [Uint8Array, RegExp][] = [
    [Uint8Array.of(0xff, 0xfe, 0x00), /not UTF-8 JSON/],
    [enc({ v: 2, type: 'ping' }), /unsupported wire version 2/],
    [enc({ v: 1, type: 'bogus', from, updates: [] }), /invalid message/],
    [enc({ v: 1, type: 'ping', seq: '1', target: 'b', from, updates: [] }), /invalid message at seq/],
    [enc({ v: 1, type: 'ack', seq: -1, from, updates: [] }), /seq/],
    [enc({ v: 1, type: 'gossip', from, updates: [{ kind: 'alive', name: 'x', inc: 1 }] }), /updates\.0/],
    [enc({ v: 1, type: 'gossip', from: { name: 'x'.repeat(300), addr: 'a:1' }, updates: [] }), /from\.name/],
    [new Uint8Array(MAX_FRAME_BYTES + 1), /exceeds/],
    [enc({ v: 1, type: 'gossip', from, updates: [], user: [''] }), /user\.0/],
    [
      enc({ v: 1, type: 'gossip', from, updates: [], user: ['x'.repeat(MAX_USER_MESSAGE_LENGTH + 1)] }),
      /user\.0/,
    ],
    [enc({ v: 1, type: 'gossip', from, updates: [], user: 'x' }), /user/],
    [
      enc({
        v: 1,
        type: 'push-pull',
        seq: 1,
        join: false,
        reply: false,
        state: [],
        from,
        updates: [],
        recent: [{ body: 'x', ageMs: -1 }],
      }),
      /recent\.0\.ageMs/,
    ],
  ];
  for (const [bytes, re] of cases) {
    const err = t.throws(() => decodeMessage(bytes), { instanceOf: GossipWireError });
    t.regex(err.message, re);
    t.false(err.message.includes('\n'));
  }
});

test('fuzz: random and mutated frames never throw anything but GossipWireError', (t) => {
  const valid = samples.map(encodeMessage);
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 512 }),
        fc
          .tuple(
            fc.constantFrom(...valid),
            fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
          )
          .map(([bytes, edits]) => {
            const copy = Uint8Array.from(bytes);
            for (const [i, b] of edits) copy[i % copy.length] = b;
            return copy;
          }),
        fc.json().map((j) => new TextEncoder().encode(j)),
      ),
      (bytes) => {
        try {
          decodeMessage(bytes);
        } catch (err) {
          if (!(err instanceof GossipWireError)) throw err;
        }
      },
    ),
    { numRuns: 2_000 },
  );
  t.pass();
});
