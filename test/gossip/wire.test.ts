/** The gossip wire format: round trips, and garbage of every kind refused with one clear error. */

import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { deflateRawSync } from 'node:zlib';
import test from 'ava';
import fc from 'fast-check';
import { z } from 'zod';
import { type GossipMessage, MAX_USER_MESSAGE_LENGTH } from '../../src/agent/gossip/core/types.ts';
import {
  decodeMessage,
  encodeCompact,
  encodeMessage,
  encodePushPullParts,
  GossipWireError,
  MAX_FRAME_BYTES,
  MAX_PACKET_MESSAGE_BYTES,
  STATE_PART,
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

test('fuzz: random and mutated frames, plain or deflated, never throw anything but GossipWireError', (t) => {
  // Deflated copies too (the samples are too small for encodeCompact to deflate them itself).
  const deflated = samples.map((m) => Uint8Array.from([0, ...deflateRawSync(encodeMessage(m))]));
  const valid = [...samples.map(encodeMessage), ...deflated];
  for (const [i, d] of deflated.entries()) t.deepEqual(decodeMessage(d), samples[i]);
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 512 }),
        fc.uint8Array({ maxLength: 512 }).map((b) => Uint8Array.from([0, ...b])),
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
        for (const max of [MAX_FRAME_BYTES, MAX_PACKET_MESSAGE_BYTES]) {
          try {
            decodeMessage(bytes, max);
          } catch (err) {
            if (!(err instanceof GossipWireError)) throw err;
          }
        }
      },
    ),
    { numRuns: 2_000 },
  );
});

/** The zod schema the hand-written validator replaced: the reference it must agree with. */
function referenceSchema() {
  const name = z.string().min(1).max(256);
  const addr = z.string().min(3).max(300);
  const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
  const meta = z
    .record(z.string().max(128), z.string().max(512))
    .refine((m) => Object.keys(m).length <= 64, { message: 'more than 64 tags' });
  const update = z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('alive'), name, id: z.string().max(64), addr, meta, inc: count }),
    z.object({ kind: z.literal('suspect'), name, inc: count, by: name }),
    z.object({ kind: z.literal('dead'), name, inc: count, by: name }),
    z.object({ kind: z.literal('left'), name, inc: count }),
  ]);
  const body = z.string().min(1).max(MAX_USER_MESSAGE_LENGTH);
  const base = {
    v: z.literal(1),
    from: z.object({ name, addr }),
    updates: z.array(update).max(256),
    user: z.array(body).max(64).optional(),
  };
  return z.discriminatedUnion('type', [
    z.object({ ...base, type: z.literal('ping'), seq: count, target: name }),
    z.object({ ...base, type: z.literal('ack'), seq: count }),
    z.object({ ...base, type: z.literal('nack'), seq: count }),
    z.object({ ...base, type: z.literal('ping-req'), seq: count, target: name, targetAddr: addr }),
    z.object({
      ...base,
      type: z.literal('push-pull'),
      seq: count,
      join: z.boolean(),
      reply: z.boolean(),
      state: z.array(update).max(20_000),
      recent: z
        .array(z.object({ body, ageMs: count }))
        .max(256)
        .optional(),
    }),
    z.object({ ...base, type: z.literal('gossip') }),
  ]);
}

/** Every path to a value inside `v` (object keys and array indexes). */
function paths(v: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (typeof v !== 'object' || v === null) return [prefix];
  const keys: (string | number)[] = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
  return [prefix, ...keys.flatMap((k) => paths((v as Record<string | number, unknown>)[k], [...prefix, k]))];
}

function setAt(root: unknown, path: (string | number)[], value: unknown, remove: boolean): unknown {
  if (path.length === 0) return value;
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let parent = copy;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const last = path[path.length - 1];
  if (remove && !Array.isArray(parent)) delete parent[last];
  else parent[last] = value;
  return copy;
}

test('the hand-written validator accepts exactly what the zod schema it replaced accepts, with the same output', (t) => {
  const reference = referenceSchema();
  const objects = samples.map((m) => JSON.parse(JSON.stringify({ v: 1, ...m })) as unknown);
  // Values at and around every bound, and of every JSON type.
  const edge = fc.oneof(
    fc
      .constantFrom(0, 1, 2, 3, 63, 64, 65, 128, 129, 255, 256, 257, 300, 301, 512, 513)
      .map((n) => 'x'.repeat(n)),
    fc.constantFrom(-1, 0, 1, 1.5, -0, 2 ** 53 - 1, 2 ** 53, 1e300),
    fc.constantFrom(
      true,
      false,
      null,
      'alive',
      'suspect',
      'dead',
      'left',
      'ping',
      'push-pull',
      'gossip',
      'bogus',
    ),
    fc
      .constantFrom(65, 257)
      .map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']))),
    fc.constantFrom(64, 65, 256, 257).map((n) => Array.from({ length: n }, () => 'b')),
    fc.jsonValue({ maxDepth: 2 }),
  );
  fc.assert(
    fc.property(
      fc.constantFrom(...objects),
      fc.array(fc.tuple(fc.nat(), edge, fc.boolean()), { minLength: 1, maxLength: 3 }),
      (start, edits) => {
        let value = start;
        for (const [pick, replacement, remove] of edits) {
          const all = paths(value);
          value = setAt(value, all[pick % all.length], replacement, remove);
        }
        const json = JSON.stringify(value);
        // The reference sees what JSON carries (-0 arrives as 0).
        const expected = reference.safeParse(JSON.parse(json));
        const bytes = new TextEncoder().encode(json);
        let got: GossipMessage | undefined;
        try {
          got = decodeMessage(bytes);
        } catch (err) {
          if (!(err instanceof GossipWireError)) throw err;
        }
        const versionError = typeof value === 'object' && value !== null && 'v' in value && value.v !== 1;
        if (expected.success && !versionError) {
          const { v: _v, ...want } = expected.data;
          return got !== undefined && isDeepStrictEqual(got, want);
        }
        return got === undefined;
      },
    ),
    { numRuns: 5_000 },
  );
  t.pass();
});

test('every bound: accepted at the limit, refused one past it, naming the field', (t) => {
  const alive = (meta: Record<string, string>, extra: Record<string, unknown> = {}) => ({
    v: 1,
    type: 'gossip',
    from,
    updates: [{ kind: 'alive', name: 'n', id: 'i', addr: '1.2.3.4:1', meta, inc: 1, ...extra }],
  });
  const tags = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));
  const cases: [string, (n: number) => unknown, number, RegExp][] = [
    ['tag count', (n) => alive(tags(n)), 64, /updates\.0\.meta/],
    ['tag name', (n) => alive({ ['k'.repeat(n)]: 'v' }), 128, /updates\.0\.meta/],
    ['tag value', (n) => alive({ k: 'v'.repeat(n) }), 512, /updates\.0\.meta\.k/],
    ['node ID', (n) => alive({}, { id: 'i'.repeat(n) }), 64, /updates\.0\.id/],
    ['member name', (n) => alive({}, { name: 'n'.repeat(n) }), 256, /updates\.0\.name/],
    ['address', (n) => alive({}, { addr: 'a'.repeat(n) }), 300, /updates\.0\.addr/],
    [
      'updates',
      (n) => ({ v: 1, type: 'gossip', from, updates: Array(n).fill({ kind: 'left', name: 'x', inc: 1 }) }),
      256,
      /updates/,
    ],
    [
      'user messages',
      (n) => ({ v: 1, type: 'gossip', from, updates: [], user: Array(n).fill('u') }),
      64,
      /user/,
    ],
    [
      'user message length',
      (n) => ({ v: 1, type: 'gossip', from, updates: [], user: ['u'.repeat(n)] }),
      MAX_USER_MESSAGE_LENGTH,
      /user\.0/,
    ],
  ];
  const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  for (const [what, make, limit, re] of cases) {
    t.notThrows(() => decodeMessage(enc(make(limit))), `${what} at ${limit}`);
    const err = t.throws(
      () => decodeMessage(enc(make(limit + 1))),
      { instanceOf: GossipWireError },
      `${what} past ${limit}`,
    );
    t.regex(err.message, re, what);
  }
  const tooShort = { v: 1, type: 'gossip', from: { name: 'a', addr: 'ab' }, updates: [] };
  t.throws(() => decodeMessage(enc(tooShort)), { message: /from\.addr/ });
});

test('a push-pull split into packet-sized parts: each part fits, together they carry the whole state, updates and user messages once', (t) => {
  const alive = (i: number) => ({
    kind: 'alive' as const,
    name: `member-${i}-ü`,
    id: `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`,
    addr: `10.0.${i >> 8}.${i & 255}:8301`,
    meta: { role: 'node', dc: 'dc1', vsn: '2', build: '0.1.0' },
    inc: i,
  });
  const m: Extract<GossipMessage, { type: 'push-pull' }> = {
    type: 'push-pull',
    seq: 9,
    join: true,
    reply: true,
    from,
    updates: [{ kind: 'suspect', name: 'member-3-ü', inc: 3, by: 'a' }],
    user: ['{"ID":"u1"}'],
    state: Array.from({ length: 40 }, (_, i) => alive(i)),
    recent: Array.from({ length: 5 }, (_, i) => ({
      body: `{"ID":"r${i}","Payload":"${'x'.repeat(300)}"}`,
      ageMs: i,
    })),
  };
  const parts = encodePushPullParts(m, 1_373, 32);
  if (!parts) return t.fail('expected parts');
  t.true(parts.length > 1);
  for (const p of parts) t.true(p.byteLength <= 1_373, `${p.byteLength} bytes`);
  const decoded = parts.map((p) => decodeMessage(p) as Extract<GossipMessage, { type: 'push-pull' }>);
  for (const d of decoded) {
    t.like(d, { type: 'push-pull', seq: 9, join: true, reply: true, from });
  }
  for (const key of ['state', 'recent', 'updates', 'user'] as const) {
    const together: unknown[] = decoded.flatMap((d): unknown[] => d[key] ?? []);
    t.deepEqual(together, m[key], key);
  }
  // One part when it all fits; nothing when it takes more parts than allowed or one item alone
  // does not fit in a part.
  t.is(encodePushPullParts({ ...m, state: m.state.slice(0, 1), recent: [] }, 1_373, 32)?.length, 1);
  t.is(encodePushPullParts(m, 1_373, parts.length - 1), undefined);
  const incompressible = randomBytes(1_500).toString('base64');
  t.is(encodePushPullParts({ ...m, recent: [{ body: incompressible, ageMs: 0 }] }, 1_373, 32), undefined);
  // A request asks once: its first part is the request, the others are replies with sequence
  // number 0, so that the receiver answers one part and no part passes for a join's answer.
  const request = encodePushPullParts({ ...m, join: false, reply: false }, 1_373, 32) ?? [];
  t.is(request.length, parts.length);
  const asked = request.map((p) => decodeMessage(p) as Extract<GossipMessage, { type: 'push-pull' }>);
  t.like(asked[0], { seq: 9, reply: false, join: false });
  for (const d of asked.slice(1)) t.like(d, { ...STATE_PART, join: false });
  t.deepEqual(
    asked.flatMap((d) => d.state),
    m.state,
  );
});

test('a message of more than a few hundred bytes goes deflated and comes back the same; a deflated frame that is garbage or inflates past the bound is refused', (t) => {
  const small: GossipMessage = { type: 'ping', seq: 1, target: 'b', from, updates: [] };
  t.deepEqual(encodeCompact(small), encodeMessage(small));
  const big: GossipMessage = {
    type: 'gossip',
    from,
    updates: Array.from({ length: 16 }, (_, i) => ({
      kind: 'alive' as const,
      name: `m${i}`,
      id: `id-${i}`,
      addr: `127.0.1.${i}:8301`,
      meta: { role: 'node', dc: 'dc1', vsn: '2' },
      inc: 1,
    })),
  };
  const wire = encodeCompact(big);
  t.is(wire[0], 0);
  t.true(wire.byteLength * 3 < encodeMessage(big).byteLength, `${wire.byteLength} bytes`);
  t.deepEqual(decodeMessage(wire), big);
  // Garbage after the marker, and a bomb: 1 MiB of spaces deflates to ~1 KiB.
  t.throws(() => decodeMessage(Uint8Array.of(0, 1, 2, 3)), {
    instanceOf: GossipWireError,
    message: 'deflated frame does not inflate',
  });
  const bomb = Buffer.concat([Buffer.of(0), deflateRawSync(Buffer.alloc(1 << 20, 0x20))]);
  t.true(bomb.byteLength < MAX_PACKET_MESSAGE_BYTES);
  t.throws(() => decodeMessage(bomb, MAX_PACKET_MESSAGE_BYTES), {
    instanceOf: GossipWireError,
    message: `deflated frame inflates to more than ${MAX_PACKET_MESSAGE_BYTES} bytes`,
  });
});
