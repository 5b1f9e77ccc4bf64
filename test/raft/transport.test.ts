import { randomBytes } from 'node:crypto';
import { setImmediate as nextTick } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import { pino } from 'pino';
import {
  ADDRESS_METADATA_KEY,
  GrpcTransport,
  type GrpcTransportOptions,
  loadRaftService,
  PROTOCOL_METADATA_KEY,
} from '../../src/raft/grpc-transport.ts';
import type { TransportHandler } from '../../src/raft/transport.ts';
import type { HeartbeatMessage, Message, SnapshotMessage } from '../../src/raft/types.ts';
import { encodeMessage, encodeSnapshotHeader } from '../../src/raft/wire.ts';
import { RAFT_PROTOCOL_VERSION } from '../../src/version.ts';
import { samples, snapshotSample } from './samples.ts';

const logger = pino({ level: process.env.LOG_LEVEL ?? 'silent' });
const svc = loadRaftService();
const MiB = 1024 * 1024;

/** Polls `cond` until it holds; fails the wait (not the process) at the deadline. */
async function until(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

interface ReceivedSnapshot {
  msg: SnapshotMessage;
  chunks: Uint8Array[];
  /** Why the handler rejected, if it did. */
  error?: unknown;
}

class Recorder implements TransportHandler {
  messages: Message[] = [];
  /** The fromAddress that came with each message. */
  froms: (string | undefined)[] = [];
  snapshots: ReceivedSnapshot[] = [];
  /** What onSnapshot does after reading every chunk; resolves at once by default. */
  afterSnapshot: (s: ReceivedSnapshot) => Promise<void> = async () => {};

  onMessage(msg: Message, fromAddress?: string): void {
    this.messages.push(msg);
    this.froms.push(fromAddress);
  }

  async onSnapshot(msg: SnapshotMessage, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const s: ReceivedSnapshot = { msg, chunks: [] };
    this.snapshots.push(s);
    try {
      for await (const chunk of chunks) s.chunks.push(chunk);
      await this.afterSnapshot(s);
    } catch (err) {
      s.error = err;
      throw err;
    }
  }
}

interface Node {
  transport: GrpcTransport;
  address: string;
  recorder: Recorder;
  unreachable: string[];
}

async function node(
  t: ExecutionContext,
  options: Partial<GrpcTransportOptions> = {},
  listen = '127.0.0.1:0',
): Promise<Node> {
  const transport = new GrpcTransport({ listen, logger, backoff: { initialMs: 20, maxMs: 200 }, ...options });
  const recorder = new Recorder();
  const unreachable: string[] = [];
  transport.onUnreachable = (id) => unreachable.push(id);
  t.teardown(() => transport.close());
  const address = await transport.start(recorder);
  return { transport, address, recorder, unreachable };
}

const heartbeat = (readCtx: number, to = 'n2'): HeartbeatMessage => ({
  type: 'heartbeat',
  from: 'n1',
  to,
  term: 3,
  commit: 0,
  readCtx,
});

async function* chunksOf(...parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield p;
}

function concat(chunks: Uint8Array[]): Buffer {
  return Buffer.concat(chunks);
}

function versionMetadata(version: string | null = String(RAFT_PROTOCOL_VERSION)): grpc.Metadata {
  const md = new grpc.Metadata();
  if (version !== null) md.set(PROTOCOL_METADATA_KEY, version);
  return md;
}

/** A client that bypasses GrpcTransport and its checks, writing frames exactly as given. */
function rawCall(
  address: string,
  path: string,
  frames: Buffer[],
  metadata = versionMetadata(),
): Promise<grpc.ServiceError | null> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': -1,
  });
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest<Buffer, Buffer>(
      path,
      (b) => b,
      (b) => b,
      metadata,
      {},
      (err) => {
        client.close();
        resolve(err);
      },
    );
    call.on('error', () => {});
    for (const f of frames) call.write(f);
    call.end();
  });
}

const SEND = '/meshd.raft.v1.Raft/Send';
const INSTALL = '/meshd.raft.v1.Raft/InstallSnapshot';
const batchFrame = (messages: object[]) => svc.Send.requestSerialize({ messages });
const chunkFrame = (chunk: object) => svc.InstallSnapshot.requestSerialize(chunk);

test('every message type crosses the wire unchanged, both ways', async (t) => {
  const a = await node(t);
  const b = await node(t);
  for (const msg of samples) a.transport.send(b.address, msg);
  await until(() => b.recorder.messages.length === samples.length, 'all samples at b');
  t.deepEqual(b.recorder.messages, samples);
  for (const m of b.recorder.messages) {
    if (m.type === 'append')
      for (const e of m.entries) t.is(Object.getPrototypeOf(e.data), Uint8Array.prototype);
  }

  for (const msg of samples) b.transport.send(a.address, msg);
  await until(() => a.recorder.messages.length === samples.length, 'all samples at a');
  t.deepEqual(a.recorder.messages, samples);
  t.deepEqual(new Set(b.recorder.froms), new Set([a.address]));
  t.deepEqual(new Set(a.recorder.froms), new Set([b.address]));

  await a.transport.sendSnapshot(b.address, snapshotSample, chunksOf());
  t.is(b.recorder.snapshots.length, 1);
  t.deepEqual(b.recorder.snapshots[0].msg, snapshotSample);
  t.deepEqual(b.recorder.snapshots[0].chunks, []);
  t.is(a.transport.stats.dropped, 0);
  t.is(b.transport.stats.received, samples.length);
});

test('many messages on one peer stream keep their order and are batched', async (t) => {
  const a = await node(t);
  const b = await node(t);
  const rounds = 20;
  const perRound = 500;
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < perRound; i++) a.transport.send(b.address, heartbeat(r * perRound + i));
    await nextTick();
  }
  await until(() => b.recorder.messages.length === rounds * perRound, 'every message');
  t.deepEqual(
    b.recorder.messages.map((m) => (m as HeartbeatMessage).readCtx),
    Array.from({ length: rounds * perRound }, (_, i) => i),
  );
  t.is(a.transport.stats.sent, rounds * perRound);
  t.true(a.transport.stats.batches <= rounds * 2, `${a.transport.stats.batches} batches`);
  t.is(a.transport.stats.dropped, 0);
});

test('a full peer queue drops new messages, counts them and reports the peer unreachable', async (t) => {
  const a = await node(t, { maxQueuedMessages: 10 });
  const b = await node(t);
  for (let i = 0; i < 50; i++) a.transport.send(b.address, heartbeat(i));
  await until(() => b.recorder.messages.length === 10, 'the queued ten');
  t.deepEqual(
    b.recorder.messages.map((m) => (m as HeartbeatMessage).readCtx),
    Array.from({ length: 10 }, (_, i) => i),
  );
  t.is(a.transport.stats.dropped, 40);
  t.deepEqual(a.unreachable, ['n2']);
});

test('a message too large for one frame is dropped at the sender', async (t) => {
  const a = await node(t, { maxMessageBytes: 64 * 1024 });
  const b = await node(t);
  const big: Message = {
    type: 'append',
    from: 'n1',
    to: 'n2',
    term: 1,
    prevIndex: 0,
    prevTerm: 0,
    entries: [{ index: 1, term: 1, type: 'normal', data: new Uint8Array(64 * 1024) }],
    commit: 0,
  };
  t.notThrows(() => a.transport.send(b.address, big));
  a.transport.send(b.address, heartbeat(1));
  await until(() => b.recorder.messages.length === 1, 'the heartbeat');
  t.is(b.recorder.messages[0].type, 'heartbeat');
  t.is(a.transport.stats.dropped, 1);
  t.notThrows(() => a.transport.send(b.address, { ...heartbeat(2), term: -1 }));
  t.notThrows(() => a.transport.send(b.address, snapshotSample));
  t.notThrows(() => a.transport.send(b.address, null as never));
  t.is(a.transport.stats.dropped, 4);
});

test('a 5 MiB snapshot arrives byte-identical in chunks, acked only after the handler resolves', async (t) => {
  const a = await node(t);
  const b = await node(t);
  const data = new Uint8Array(randomBytes(5 * MiB));
  const gate = deferred();
  const order: string[] = [];
  b.recorder.afterSnapshot = async () => {
    order.push('stored');
    await gate.promise;
    order.push('handler resolved');
  };
  let settled = false;
  const sending = a.transport.sendSnapshot(
    b.address,
    snapshotSample,
    // Uneven pieces, one larger than a chunk, so the sender has to split.
    chunksOf(
      data.subarray(0, 700 * 1024),
      data.subarray(700 * 1024, 3 * MiB + 5),
      data.subarray(3 * MiB + 5),
    ),
  );
  sending.then(
    () => {
      settled = true;
      order.push('acked');
    },
    () => {},
  );
  await until(() => order.includes('stored'), 'the handler to read every chunk');
  // A message round trip after the handler read everything: an early ack would have had time to land.
  a.transport.send(b.address, heartbeat(1));
  await until(() => b.recorder.messages.length === 1, 'a message round trip');
  b.transport.send(a.address, { ...heartbeat(2), from: 'n2', to: 'n1' });
  await until(() => a.recorder.messages.length === 1, 'a message round trip back');
  t.false(settled);
  gate.resolve();
  await sending;
  t.deepEqual(order, ['stored', 'handler resolved', 'acked']);

  const received = b.recorder.snapshots[0];
  t.deepEqual(received.msg, snapshotSample);
  t.true(concat(received.chunks).equals(data));
  t.true(received.chunks.length >= 5);
  for (const c of received.chunks) {
    t.true(c.byteLength <= MiB);
    t.is(Object.getPrototypeOf(c), Uint8Array.prototype);
  }
  t.is(a.transport.stats.snapshotsSent, 1);
  t.is(b.transport.stats.snapshotsReceived, 1);
});

test('a snapshot send rejects when the receiving handler rejects', async (t) => {
  const a = await node(t);
  const b = await node(t);
  b.recorder.afterSnapshot = async () => {
    throw new Error('disk full');
  };
  const data = new Uint8Array(randomBytes(2 * MiB));
  await t.throwsAsync(a.transport.sendSnapshot(b.address, snapshotSample, chunksOf(data)), {
    message: /ABORTED.*disk full/,
  });
  t.is(a.transport.stats.snapshotsFailed, 1);
  t.is(b.transport.stats.snapshotsFailed, 1);
  // The server and the message stream are unaffected.
  a.transport.send(b.address, heartbeat(1));
  await until(() => b.recorder.messages.length === 1, 'a message after the failed snapshot');
  t.pass();
});

test('a snapshot send rejects on timeout and when its source fails', async (t) => {
  const a = await node(t, { snapshotTimeoutMs: 300 });
  const b = await node(t);
  b.recorder.afterSnapshot = () => new Promise(() => {});
  await t.throwsAsync(a.transport.sendSnapshot(b.address, snapshotSample, chunksOf(new Uint8Array(10))), {
    message: /timed out/,
  });

  b.recorder.afterSnapshot = async () => {};
  // Told apart by term: under load the timed-out send above may or may not have reached b.
  const truncated = () => b.recorder.snapshots.find((s) => s.msg.term === 8);
  async function* failing(): AsyncGenerator<Uint8Array> {
    yield new Uint8Array(100);
    // Fail only once the receiver is reading, so the cancel lands mid-stream.
    await until(() => truncated()?.chunks.length === 1, 'the receiver to read the first chunk');
    throw new Error('read error');
  }
  const a2 = await node(t);
  await t.throwsAsync(a2.transport.sendSnapshot(b.address, { ...snapshotSample, term: 8 }, failing()), {
    message: 'read error',
  });
  // The stream never reached its trailer, so the receiving handler's read failed instead of ending.
  await until(() => truncated()?.error !== undefined, 'the receiver to fail the truncated snapshot');
  t.true(b.transport.stats.snapshotsFailed >= 1);

  await t.throwsAsync(a2.transport.sendSnapshot(b.address, { ...snapshotSample, term: -1 }, chunksOf()), {
    message: /term/,
  });
});

test.serial('sending to a dead address does not throw and reports the peer unreachable', async (t) => {
  // A long backoff, so the second send surely falls within it.
  const a = await node(t, { backoff: { initialMs: 10_000, maxMs: 10_000 } });
  const gone = await node(t);
  await gone.transport.close();
  t.notThrows(() => a.transport.send(gone.address, heartbeat(1, 'n9')));
  await until(() => a.unreachable.includes('n9'), 'onUnreachable(n9)');
  t.true(a.transport.stats.streamFailures >= 1);
  // Within the backoff the message is dropped at once, and reported again.
  a.unreachable.length = 0;
  t.notThrows(() => a.transport.send(gone.address, heartbeat(2, 'n9')));
  await until(() => a.unreachable.includes('n9'), 'onUnreachable(n9) during backoff');
  t.true(a.transport.stats.dropped >= 1);
  await t.throwsAsync(a.transport.sendSnapshot(gone.address, snapshotSample, chunksOf(new Uint8Array(10))), {
    message: /UNAVAILABLE/,
  });
  // Nor does an address grpc cannot even parse.
  t.notThrows(() => a.transport.send('', heartbeat(3, 'n8')));
  await until(() => a.unreachable.includes('n8'), 'onUnreachable(n8)');
  await t.throwsAsync(a.transport.sendSnapshot('', snapshotSample, chunksOf()));
});

test.serial('after the peer restarts on the same port, messages flow again', async (t) => {
  const a = await node(t);
  const b = await node(t);
  a.transport.send(b.address, heartbeat(1));
  await until(() => b.recorder.messages.length === 1, 'the first message');
  await b.transport.close();
  await until(() => {
    a.transport.send(b.address, heartbeat(2));
    return a.unreachable.includes('n2');
  }, 'the stream to notice the peer is gone');

  const port = b.address.slice(b.address.lastIndexOf(':') + 1);
  const b2 = await node(t, {}, `127.0.0.1:${port}`);
  t.is(b2.address, b.address);
  let seq = 100;
  await until(() => {
    a.transport.send(b.address, heartbeat(seq++));
    return b2.recorder.messages.length > 0;
  }, 'messages at the restarted peer');
  // Once through, the stream is healthy: a burst arrives whole and in order (behind any stragglers).
  for (let i = 0; i < 100; i++) a.transport.send(b.address, heartbeat(1000 + i));
  const burst = () =>
    b2.recorder.messages.map((m) => (m as HeartbeatMessage).readCtx).filter((c) => c >= 1000);
  await until(() => burst().length === 100, 'the burst');
  t.deepEqual(
    burst(),
    Array.from({ length: 100 }, (_, i) => 1000 + i),
  );
});

test('invalid and oversized frames are rejected and counted, and the server keeps working', async (t) => {
  const b = await node(t, { maxMessageBytes: 64 * 1024 });
  const hb = encodeMessage(heartbeat(1));

  let err = await rawCall(b.address, SEND, [batchFrame([{ ...hb, type: 'appendEntriesV2' }])]);
  t.is(err?.code, grpc.status.INVALID_ARGUMENT);
  t.regex(err?.details ?? '', /unknown message type/);

  // A peer that encodes index as a signed int64: -1 arrives as 2^64 - 1, beyond the safe range.
  const resp = svc.Send.requestSerialize({
    messages: [{ type: 'appendResp', from: 'x', to: 'n2', term: 1 }],
  });
  t.true(resp[1] < 0x70);
  const negative = Buffer.from([0x48, ...new Array(9).fill(0xff), 0x01]);
  const frame = Buffer.concat([Buffer.from([0x0a, resp[1] + negative.length]), resp.subarray(2), negative]);
  err = await rawCall(b.address, SEND, [frame]);
  t.is(err?.code, grpc.status.INVALID_ARGUMENT);
  t.regex(err?.details ?? '', /index: not a non-negative safe integer/);

  const entry = (bytes: number) => ({ index: 1, term: 1, type: 'normal', data: new Uint8Array(bytes) });
  const appendOf = (bytes: number) => ({
    ...encodeMessage(heartbeat(1)),
    type: 'append',
    entries: [entry(bytes)],
  });
  err = await rawCall(b.address, SEND, [batchFrame([appendOf(70 * 1024)])]);
  t.is(err?.code, grpc.status.RESOURCE_EXHAUSTED);
  t.regex(err?.details ?? '', /exceeds the 65536-byte limit/);
  // Far above the limit, grpc itself refuses the frame before our deserializer sees it.
  err = await rawCall(b.address, SEND, [batchFrame([appendOf(1 * MiB)])]);
  t.is(err?.code, grpc.status.RESOURCE_EXHAUSTED);

  err = await rawCall(b.address, SEND, [Buffer.from([0x0a, 0x05, 0xff, 0xff])]);
  t.is(err?.code, grpc.status.INVALID_ARGUMENT);
  t.regex(err?.details ?? '', /undecodable frame/);

  err = await rawCall(b.address, SEND, [batchFrame([hb, encodeMessage(snapshotSample)])]);
  t.is(err?.code, grpc.status.INVALID_ARGUMENT);

  err = await rawCall(b.address, INSTALL, [chunkFrame({ data: new Uint8Array(3) })]);
  t.is(err?.code, grpc.status.INVALID_ARGUMENT);
  t.regex(err?.details ?? '', /must start with its header/);
  err = await rawCall(b.address, INSTALL, [chunkFrame({ header: hb })]);
  t.is(err?.code, grpc.status.INVALID_ARGUMENT);
  err = await rawCall(b.address, INSTALL, [
    chunkFrame(encodeSnapshotHeader(snapshotSample)),
    chunkFrame({ data: new Uint8Array(3) }),
  ]);
  t.regex(err?.details ?? '', /ended without its trailer/);
  err = await rawCall(b.address, INSTALL, [
    chunkFrame(encodeSnapshotHeader(snapshotSample)),
    chunkFrame({ data: new Uint8Array(3) }),
    chunkFrame({ trailer: { totalBytes: 4 } }),
  ]);
  t.is(err?.code, grpc.status.DATA_LOSS);

  t.deepEqual(b.recorder.messages, []);
  t.is(b.transport.stats.oversized, 1);
  t.is(b.transport.stats.invalid, 7);

  const a = await node(t);
  a.transport.send(b.address, heartbeat(7));
  await until(() => b.recorder.messages.length === 1, 'a valid message after the garbage');
  t.deepEqual(b.recorder.messages, [heartbeat(7)]);
  // Messages for another server pass through: the core, not the transport, rejects them.
  a.transport.send(b.address, heartbeat(8, 'someone-else'));
  await until(() => b.recorder.messages.length === 2, 'a message for another server');
});

test('a missing or different protocol version is rejected', async (t) => {
  const b = await node(t);
  const frames = [batchFrame([encodeMessage(heartbeat(1))])];
  let err = await rawCall(b.address, SEND, frames, versionMetadata('999'));
  t.is(err?.code, grpc.status.FAILED_PRECONDITION);
  t.regex(
    err?.details ?? '',
    new RegExp(`version mismatch: peer speaks 999, this server speaks ${RAFT_PROTOCOL_VERSION}`),
  );
  err = await rawCall(b.address, SEND, frames, versionMetadata(null));
  t.is(err?.code, grpc.status.FAILED_PRECONDITION);
  t.regex(err?.details ?? '', /missing meshd-raft-protocol/);
  err = await rawCall(
    b.address,
    INSTALL,
    [chunkFrame(encodeSnapshotHeader(snapshotSample))],
    versionMetadata('0'),
  );
  t.is(err?.code, grpc.status.FAILED_PRECONDITION);
  t.deepEqual(b.recorder.messages, []);
  t.deepEqual(b.recorder.snapshots, []);
  t.is(b.transport.stats.versionRejected, 3);
  err = await rawCall(b.address, SEND, frames);
  t.is(err, null);
  t.is(b.recorder.messages.length, 1);
  t.deepEqual(b.recorder.froms, [undefined]);
  // An advertised address is a hint: a malformed one is ignored, not trusted.
  const md = versionMetadata();
  md.set(ADDRESS_METADATA_KEY, 'not an address');
  t.is(await rawCall(b.address, SEND, frames, md), null);
  md.set(ADDRESS_METADATA_KEY, '[::1]:8300');
  t.is(await rawCall(b.address, SEND, frames, md), null);
  t.deepEqual(b.recorder.froms, [undefined, undefined, '[::1]:8300']);
});

test('close ends streams promptly, is idempotent, and later calls neither throw nor hang', async (t) => {
  // A grace generous enough for a loaded machine to connect and flush within it.
  const a = await node(t, { closeGraceMs: 10_000 });
  const b = await node(t);
  for (let i = 0; i < 10; i++) a.transport.send(b.address, heartbeat(i));
  // Messages sent just before close still go out.
  await a.transport.close();
  await until(() => b.recorder.messages.length === 10, 'messages flushed by close');
  await a.transport.close();
  t.notThrows(() => a.transport.send(b.address, heartbeat(1)));
  await t.throwsAsync(a.transport.sendSnapshot(b.address, snapshotSample, chunksOf()), { message: /closed/ });
  await t.throwsAsync(a.transport.start(new Recorder()), { message: /closed/ });
  t.deepEqual(a.unreachable, []);
});

test('the advertised address defaults to the bound one, never to a wildcard, and is validated', async (t) => {
  t.throws(() => new GrpcTransport({ listen: '127.0.0.1:0', logger, advertise: 'nope' }), {
    instanceOf: RangeError,
  });
  const b = await node(t);
  const wild = await node(t, {}, '0.0.0.0:0');
  const told = await node(t, { advertise: 'raft-3.example:8300' });
  wild.transport.send(b.address, heartbeat(1));
  told.transport.send(b.address, heartbeat(2));
  await until(() => b.recorder.messages.length === 2, 'both messages');
  const fromOf = (readCtx: number) =>
    b.recorder.froms[b.recorder.messages.findIndex((m) => (m as HeartbeatMessage).readCtx === readCtx)];
  t.is(fromOf(1), undefined);
  t.is(fromOf(2), 'raft-3.example:8300');
});
