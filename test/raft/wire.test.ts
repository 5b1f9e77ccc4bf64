import assert from 'node:assert/strict';
import test from 'ava';
import fc from 'fast-check';
import { loadRaftService } from '../../src/raft/grpc-transport.ts';
import type { Message } from '../../src/raft/types.ts';
import {
  decodeBatch,
  decodeMessage,
  decodeSnapshotChunk,
  encodedSizeBound,
  encodeMessage,
  encodeSnapshotHeader,
  parseAdvertisedAddress,
  WireError,
} from '../../src/raft/wire.ts';
import { batchableMessageArb, messageArb, samples, snapshotSample } from './samples.ts';

const svc = loadRaftService();
/** Through the real protobuf encoding, as the transport does. */
const overTheWire = (msgs: Message[]): unknown =>
  svc.Send.requestDeserialize(svc.Send.requestSerialize({ messages: msgs.map(encodeMessage) }));

function rejects(t: import('ava').ExecutionContext, v: unknown, pattern: RegExp): void {
  const err = t.throws(() => decodeMessage(v), { instanceOf: WireError });
  t.regex(err?.message ?? '', pattern);
}

test('every sample message survives encode and decode unchanged', (t) => {
  for (const msg of [...samples, snapshotSample]) t.deepEqual(decodeMessage(encodeMessage(msg)), msg);
});

test('every sample survives the protobuf encoding', (t) => {
  t.deepEqual(decodeBatch(overTheWire(samples)), samples);
});

test('decoded entry data is a plain Uint8Array copy, not a Buffer view of the frame', (t) => {
  const [append] = decodeBatch(overTheWire([samples[0]]));
  t.is(append.type, 'append');
  if (append.type !== 'append') return;
  const data = append.entries[0].data;
  t.is(Object.getPrototypeOf(data), Uint8Array.prototype);
  t.is(data.byteOffset, 0);
  t.is(data.buffer.byteLength, 3);
});

test('encode drops fields that do not belong to the type and does not copy data', (t) => {
  const msg = { ...samples[7], commit: 5, extra: 'x' } as unknown as Message;
  t.deepEqual(encodeMessage(msg), { type: 'timeoutNow', from: 'n1', to: 'n2', term: 7 });
  const append = samples[0];
  if (append.type !== 'append') return t.fail();
  t.is(encodeMessage(append).entries?.[0].data, append.entries[0].data);
});

test('property: decode(encode(m)) is the identity', (t) => {
  fc.assert(fc.property(messageArb, (msg) => assert.deepStrictEqual(decodeMessage(encodeMessage(msg)), msg)));
  t.pass();
});

test('property: a batch survives the protobuf encoding and fits its size bound', (t) => {
  fc.assert(
    fc.property(fc.array(batchableMessageArb, { maxLength: 5 }), (msgs) => {
      const wire = { messages: msgs.map(encodeMessage) };
      const frame = svc.Send.requestSerialize(wire);
      const bound = msgs.reduce((n, m) => n + encodedSizeBound(m), 0);
      assert.ok(frame.length <= bound + 64, `frame of ${frame.length} bytes above its bound ${bound + 64}`);
      assert.deepStrictEqual(decodeBatch(svc.Send.requestDeserialize(frame)), msgs);
    }),
  );
  t.pass();
});

test('unknown types and entry types are rejected', (t) => {
  rejects(t, { ...samples[7], type: 'appendEntries' }, /message\.type: unknown message type/);
  rejects(t, { ...samples[7], type: 5 }, /expected a string, got number/);
  const append = samples[0];
  if (append.type !== 'append') return;
  const entries = append.entries.map((e) => ({ ...e }));
  entries[1] = { ...entries[1], type: 'bogus' as 'noop' };
  rejects(t, { ...append, entries }, /entries\[1\]\.type: unknown entry type/);
});

test('numbers must be non-negative safe integers', (t) => {
  const hb = samples[5];
  rejects(t, { ...hb, commit: -1 }, /commit: not a non-negative safe integer/);
  rejects(t, { ...hb, commit: 1.5 }, /commit/);
  rejects(t, { ...hb, term: 2 ** 64 }, /term/);
  rejects(t, { ...hb, readCtx: Number.NaN }, /readCtx/);
  rejects(t, { ...hb, readCtx: '3' }, /readCtx: expected a number, got string/);
  rejects(t, { ...hb, readCtx: 3n }, /readCtx: expected a number, got bigint/);
  t.is((decodeMessage({ ...hb, commit: -0 }) as { commit: number }).commit, 0);
  t.true(Object.is((decodeMessage({ ...hb, commit: -0 }) as { commit: number }).commit, 0));
});

test('strings are bounded and ids non-empty', (t) => {
  const hb = samples[5];
  rejects(t, { ...hb, from: '' }, /from: empty/);
  rejects(t, { ...hb, to: 'x'.repeat(257) }, /to: longer than 256/);
  t.notThrows(() => decodeMessage({ ...hb, to: 'x'.repeat(256) }));
});

test('append entries must follow prevIndex contiguously with sane terms', (t) => {
  const append = samples[0];
  if (append.type !== 'append') return;
  const withEntries = (patch: (es: Record<string, unknown>[]) => void, extra: object = {}) => {
    const entries = append.entries.map((e) => ({ ...e }) as Record<string, unknown>);
    patch(entries);
    return { ...append, entries, ...extra };
  };
  rejects(
    t,
    withEntries((es) => {
      es[1].index = 44;
    }),
    /entries\[1\]\.index: .*contiguously/,
  );
  rejects(
    t,
    withEntries(() => {}, { prevIndex: 40 }),
    /entries\[0\]\.index/,
  );
  rejects(
    t,
    withEntries((es) => {
      es[2].term = 6;
    }),
    /entries\[2\]\.term: entry terms must not decrease/,
  );
  rejects(
    t,
    withEntries((es) => {
      es[0].term = 5;
    }),
    /entries\[0\]\.term: entry terms must not decrease/,
  );
  rejects(
    t,
    withEntries(() => {}, { term: 6 }),
    /entry term above the message term/,
  );
  rejects(
    t,
    withEntries(() => {}, { prevTerm: 8 }),
    /prevTerm: above the message term/,
  );
  rejects(
    t,
    withEntries((es) => {
      es[0].data = [1, 2];
    }),
    /entries\[0\]\.data: expected bytes, got array/,
  );
  rejects(t, { ...append, entries: { length: 1 } }, /entries: expected an array/);
  rejects(
    t,
    withEntries((es) => {
      es.push(null as never);
    }),
    /entries\[3\]: expected an object, got null/,
  );
});

test('snapshot metadata is validated', (t) => {
  const servers = snapshotSample.snapshot.config.servers;
  const withServers = (s: unknown[]) => ({
    ...snapshotSample,
    snapshot: { ...snapshotSample.snapshot, config: { servers: s } },
  });
  rejects(t, withServers([...servers, servers[0]]), /servers\[3\]\.id: duplicate server id/);
  rejects(t, withServers([{ ...servers[0], suffrage: 'observer' }]), /suffrage: unknown suffrage/);
  rejects(t, { ...snapshotSample, snapshot: null }, /message\.snapshot: expected an object, got null/);
  rejects(t, { ...snapshotSample, snapshot: { ...snapshotSample.snapshot, config: null } }, /config/);
});

test('a batch may not carry a snapshot, and must be a list', (t) => {
  const err = t.throws(() => decodeBatch({ messages: [samples[5], snapshotSample] }), {
    instanceOf: WireError,
  });
  t.regex(err?.message ?? '', /batch\.messages\[1\]\.type: snapshots travel on InstallSnapshot/);
  t.throws(() => decodeBatch({ messages: 'x' }), { instanceOf: WireError });
  t.throws(() => decodeBatch(null), { instanceOf: WireError });
});

test('snapshot chunks decode by part', (t) => {
  const header = encodeSnapshotHeader(snapshotSample);
  const chunk = (v: object) =>
    svc.InstallSnapshot.requestDeserialize(svc.InstallSnapshot.requestSerialize(v));
  t.deepEqual(decodeSnapshotChunk(chunk(header)), { part: 'header', msg: snapshotSample });
  const data = decodeSnapshotChunk(chunk({ data: new Uint8Array([9, 8, 7]) }));
  t.is(data.part, 'data');
  if (data.part === 'data') t.deepEqual(data.data, new Uint8Array([9, 8, 7]));
  t.deepEqual(decodeSnapshotChunk(chunk({ trailer: { totalBytes: 3 } })), { part: 'trailer', totalBytes: 3 });
  t.throws(() => decodeSnapshotChunk(chunk({ header: encodeMessage(samples[5]) })), {
    instanceOf: WireError,
    message: /expected a snapshot message/,
  });
  t.throws(() => decodeSnapshotChunk(chunk({})), { instanceOf: WireError, message: /chunk\.part/ });
  t.throws(() => encodeSnapshotHeader(samples[5] as never), { instanceOf: WireError });
});

test('encode refuses what the receiver would reject', (t) => {
  t.throws(() => encodeMessage({ ...samples[5], term: -1 }), { instanceOf: WireError });
  t.throws(() => encodeMessage({ ...samples[5], from: '' }), { instanceOf: WireError });
  t.throws(() => encodeMessage(null as never), { instanceOf: WireError });
});

/** Only a WireError may escape; anything that does decode must be a fixed point of the codec. */
function decodesCleanly(decode: (v: unknown) => unknown, v: unknown): boolean {
  try {
    decode(v);
    return true;
  } catch (err) {
    return err instanceof WireError;
  }
}

test('property: decoding junk throws nothing but WireError', (t) => {
  const junk = fc.anything({
    withBigInt: true,
    withTypedArray: true,
    withNullPrototype: true,
    withMap: true,
  });
  fc.assert(
    fc.property(junk, (v) => {
      return (
        decodesCleanly(decodeMessage, v) &&
        decodesCleanly(decodeBatch, v) &&
        decodesCleanly(decodeSnapshotChunk, v) &&
        decodesCleanly(decodeBatch, { messages: [v] }) &&
        decodesCleanly(decodeSnapshotChunk, { part: 'header', header: v })
      );
    }),
    { numRuns: 500 },
  );
  t.pass();
});

test('property: a valid message with one field replaced by junk decodes cleanly or not at all', (t) => {
  const junk = fc.anything({ withBigInt: true, withTypedArray: true, withNullPrototype: true });
  fc.assert(
    fc.property(messageArb, fc.nat(), junk, (msg, pick, value) => {
      const wire = encodeMessage(msg) as Record<string, unknown>;
      const keys = Object.keys(wire);
      const mutated = { ...wire, [keys[pick % keys.length]]: value };
      let decoded: Message;
      try {
        decoded = decodeMessage(mutated);
      } catch (err) {
        return err instanceof WireError;
      }
      assert.deepStrictEqual(decodeMessage(encodeMessage(decoded)), decoded);
      return true;
    }),
    { numRuns: 500 },
  );
  t.pass();
});

test('advertised addresses must be host:port', (t) => {
  for (const ok of ['10.0.0.1:8300', 'raft-1.dc1.consul:8300', '[::1]:1', '[fe80::1]:8300']) {
    t.is(parseAdvertisedAddress(ok), ok);
  }
  for (const bad of ['', 'host', 'host:0', 'host:65536', ':8300', 'a b:1', '::1:8300', 'h:8300\n', 7, null]) {
    t.is(parseAdvertisedAddress(bad), undefined, String(bad));
  }
  t.is(parseAdvertisedAddress(`${'a'.repeat(1100)}:1`), undefined);
});
