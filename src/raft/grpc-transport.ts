import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from 'pino';
import { RAFT_PROTOCOL_VERSION } from '../version.ts';
import type { RaftTransport, TransportHandler } from './transport.ts';
import type { Message, SnapshotMessage } from './types.ts';
import {
  decodeBatch,
  decodeSnapshotChunk,
  encodedSizeBound,
  encodeMessage,
  encodeSnapshotHeader,
  parseAdvertisedAddress,
  type SnapshotPart,
  type WireBatch,
  WireError,
  type WireMessage,
  type WireSnapshotChunk,
} from './wire.ts';

/** Metadata key carrying {@link RAFT_PROTOCOL_VERSION} on every call, and in the server's reply headers. */
export const PROTOCOL_METADATA_KEY = 'meshd-raft-protocol';
/** Metadata key on `Send` carrying the sender's advertised "host:port", handed on as `fromAddress`. */
export const ADDRESS_METADATA_KEY = 'meshd-raft-address';

const SEND_PATH = '/meshd.raft.v1.Raft/Send';
const SNAPSHOT_PATH = '/meshd.raft.v1.Raft/InstallSnapshot';

const MiB = 1024 * 1024;
const DEFAULT_MAX_MESSAGE_BYTES = 8 * MiB;
const DEFAULT_MAX_QUEUED = 4096;
const DEFAULT_BACKOFF = { initialMs: 50, maxMs: 2000 };
const DEFAULT_SNAPSHOT_TIMEOUT_MS = 30_000;
const DEFAULT_CLOSE_GRACE_MS = 1000;
const SNAPSHOT_CHUNK_BYTES = MiB;
/** Room for the batch's own framing around the per-message bounds of {@link encodedSizeBound}. */
const BATCH_OVERHEAD = 64;
/**
 * grpc-js rejects frames above its receive limit before any of our code runs, so nothing would count or
 * log them. The server lets frames a little above `maxMessageBytes` through to its own check, which does;
 * grpc still caps memory at this much more.
 */
const RECEIVE_SLACK = 64 * 1024;

/**
 * Statuses that mean the peer (or something posing as it) refused us, a misconfiguration worth an error
 * each time; anything else (UNAVAILABLE, or CANCELLED when the peer shuts down) is the churn of a peer
 * going away.
 */
const WILDCARD_HOSTS: ReadonlySet<string> = new Set(['', '0.0.0.0', '[::]', '::']);

const REJECTIONS: ReadonlySet<grpc.status> = new Set([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.UNIMPLEMENTED,
  grpc.status.UNAUTHENTICATED,
  grpc.status.PERMISSION_DENIED,
]);

export interface GrpcTransportCredentials {
  server(): grpc.ServerCredentials;
  client(address: string): grpc.ChannelCredentials;
}

export interface GrpcTransportOptions {
  /** "host:port" to bind; port 0 picks a free one, reported by {@link GrpcTransport.start}. */
  listen: string;
  /**
   * "host:port" peers should use to reach this server, sent with every message stream so a peer can
   * answer a server it does not know yet. Defaults to the bound address unless that is a wildcard.
   */
  advertise?: string;
  logger: Logger;
  /** The mTLS seam; insecure when absent. */
  credentials?: GrpcTransportCredentials;
  /** Largest frame sent or accepted: a batch of messages, or one snapshot chunk. Default 8 MiB. */
  maxMessageBytes?: number;
  /** Messages waiting per peer for its stream to become writable; further ones are dropped. Default 4096. */
  maxQueuedMessages?: number;
  /** Delay before reconnecting after a stream failure, doubling per failure, jittered. Default 50 ms..2 s. */
  backoff?: { initialMs: number; maxMs: number };
  /** A snapshot send fails after this long without progress (a chunk accepted, or the ack). Default 30 s. */
  snapshotTimeoutMs?: number;
  /** How long {@link GrpcTransport.close} lets outbound streams flush before cutting them. Default 1 s. */
  closeGraceMs?: number;
  /**
   * Other gRPC services served on the same port (the agent's server RPC: forwarding, discovery),
   * as Consul multiplexes everything on its server port.
   */
  services?: { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation }[];
}

export interface TransportStats {
  /** Outbound messages written to a peer stream. */
  sent: number;
  /** Outbound frames (batches) written. */
  batches: number;
  /** Outbound messages dropped: peer in backoff, queue full, stream failed, invalid, too large, closed. */
  dropped: number;
  /** Outbound streams that ended in an error. */
  streamFailures: number;
  /** Inbound messages handed to the handler. */
  received: number;
  /** Inbound frames rejected as undecodable or structurally invalid. */
  invalid: number;
  /** Inbound frames rejected for exceeding maxMessageBytes. */
  oversized: number;
  /** Inbound calls rejected for a missing or different protocol version. */
  versionRejected: number;
  snapshotsSent: number;
  snapshotsReceived: number;
  snapshotsFailed: number;
}

type MethodDefinition = grpc.MethodDefinition<object, object>;

export interface RaftService {
  Send: MethodDefinition;
  InstallSnapshot: MethodDefinition;
}

let raftService: RaftService | undefined;

/** The `meshd.raft.v1.Raft` service as proto-loader builds it (also what tests use to craft raw frames). */
export function loadRaftService(): RaftService {
  if (raftService === undefined) {
    const pkg = protoLoader.loadSync(fileURLToPath(new URL('./proto/raft.proto', import.meta.url)), {
      keepCase: false,
      longs: Number,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    raftService = pkg['meshd.raft.v1.Raft'] as unknown as RaftService;
  }
  return raftService;
}

/** What the server's deserializer yields instead of throwing, so a bad frame is counted and answered. */
class RejectedFrame {
  readonly code: grpc.status;
  readonly reason: string;
  constructor(code: grpc.status, reason: string) {
    this.code = code;
    this.reason = reason;
  }
}

/** An error that becomes the gRPC status of an inbound call. */
class CallRejection extends Error {
  readonly code: grpc.status;
  constructor(code: grpc.status, message: string) {
    super(message);
    this.code = code;
  }
}

function guardedDeserializer(inner: (buf: Buffer) => object, maxBytes: number): (buf: Buffer) => unknown {
  return (buf) => {
    if (buf.length > maxBytes) {
      return new RejectedFrame(
        grpc.status.RESOURCE_EXHAUSTED,
        `frame of ${buf.length} bytes exceeds the ${maxBytes}-byte limit`,
      );
    }
    try {
      return inner(buf);
    } catch (err) {
      return new RejectedFrame(grpc.status.INVALID_ARGUMENT, `undecodable frame: ${errorMessage(err)}`);
    }
  };
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function versionMetadata(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(PROTOCOL_METADATA_KEY, String(RAFT_PROTOCOL_VERSION));
  return md;
}

interface QueuedMessage {
  wire: WireMessage;
  size: number;
  to: string;
}

interface Peer {
  address: string;
  client: grpc.Client | null;
  call: grpc.ClientWritableStream<WireBatch> | null;
  /** Resolves when `call` has ended, for a graceful close. */
  callDone: Promise<void>;
  /** False while the stream's buffer is full and a 'drain' is awaited. */
  writable: boolean;
  queue: QueuedMessage[];
  flushScheduled: boolean;
  /** Stream failures since a stream last reached the server. */
  failures: number;
  /** No new stream before this time (ms since epoch). */
  retryAt: number;
  /** The server id last addressed at this peer, to report when its stream fails. */
  lastTo: string;
  /** Whether the queue overflowed since it last drained, so overflow is logged once per episode. */
  overflowing: boolean;
}

/**
 * {@link RaftTransport} over gRPC. Each peer gets one long-lived client-streaming `Send` call that carries
 * every message but snapshots; messages sent within one tick are coalesced into one `RaftBatch` frame,
 * and while the stream is not writable they wait in a bounded per-peer queue. Snapshots get their own
 * channel and `InstallSnapshot` call, so a bulk transfer never shares fate with the message stream.
 */
export class GrpcTransport implements RaftTransport {
  onUnreachable?: (serverId: string) => void;
  readonly stats: TransportStats = {
    sent: 0,
    batches: 0,
    dropped: 0,
    streamFailures: 0,
    received: 0,
    invalid: 0,
    oversized: 0,
    versionRejected: 0,
    snapshotsSent: 0,
    snapshotsReceived: 0,
    snapshotsFailed: 0,
  };

  private readonly listen: string;
  private readonly log: Logger;
  private readonly credentials: GrpcTransportCredentials;
  private readonly maxMessageBytes: number;
  private readonly maxQueued: number;
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly snapshotTimeoutMs: number;
  private readonly closeGraceMs: number;
  private readonly peers = new Map<string, Peer>();
  /** Aborts for snapshot sends in flight, so close() can end them. */
  private readonly snapshotSends = new Set<(reason: Error) => void>();
  /** Server ids to report unreachable at the end of this tick, deduplicated. */
  private readonly unreachable = new Set<string>();
  private server: grpc.Server | null = null;
  private advertise: string | undefined;
  private handler: TransportHandler | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;
  private boundAddress: string | null = null;
  private readonly services: NonNullable<GrpcTransportOptions['services']>;

  constructor(options: GrpcTransportOptions) {
    this.listen = options.listen;
    this.services = options.services ?? [];
    this.advertise = options.advertise;
    this.log = options.logger.child({ component: 'raft-transport' });
    this.credentials = options.credentials ?? {
      server: () => grpc.ServerCredentials.createInsecure(),
      client: () => grpc.credentials.createInsecure(),
    };
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.maxQueued = options.maxQueuedMessages ?? DEFAULT_MAX_QUEUED;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.snapshotTimeoutMs = options.snapshotTimeoutMs ?? DEFAULT_SNAPSHOT_TIMEOUT_MS;
    this.closeGraceMs = options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS;
    if (!Number.isSafeInteger(this.maxMessageBytes) || this.maxMessageBytes < 4096) {
      throw new RangeError('maxMessageBytes must be an integer of at least 4096');
    }
    if (this.advertise !== undefined && parseAdvertisedAddress(this.advertise) === undefined) {
      throw new RangeError(`advertise must be "host:port", got ${JSON.stringify(this.advertise)}`);
    }
    if (!Number.isSafeInteger(this.maxQueued) || this.maxQueued < 1) {
      throw new RangeError('maxQueuedMessages must be a positive integer');
    }
    loadRaftService();
  }

  /**
   * Attaches Raft's handler, binding the port first unless {@link bind} already did. Until then,
   * inbound Raft messages are dropped (a server that has not started Raft yet has nothing to say).
   */
  async start(handler: TransportHandler): Promise<string> {
    if (this.closed) throw new Error('transport is closed');
    if (this.handler !== null) throw new Error('transport already started');
    const address = this.boundAddress ?? (await this.bind());
    this.handler = handler;
    return address;
  }

  /** Binds the port and serves Raft and the other services; returns the bound "host:port". */
  async bind(): Promise<string> {
    if (this.closed) throw new Error('transport is closed');
    if (this.server !== null) throw new Error('transport already bound');
    const svc = loadRaftService();
    const maxFrame = this.maxMessageBytes;
    const definition: grpc.ServiceDefinition = {
      Send: { ...svc.Send, requestDeserialize: guardedDeserializer(svc.Send.requestDeserialize, maxFrame) },
      InstallSnapshot: {
        ...svc.InstallSnapshot,
        requestDeserialize: guardedDeserializer(svc.InstallSnapshot.requestDeserialize, maxFrame),
      },
    };
    const server = new grpc.Server({
      'grpc.max_receive_message_length': maxFrame + RECEIVE_SLACK,
      'grpc.max_send_message_length': maxFrame,
      // Reaps inbound streams from peers that vanished without closing their connection.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    });
    const impl: grpc.UntypedServiceImplementation = {
      Send: (call: grpc.ServerReadableStream<unknown, object>, callback: grpc.sendUnaryData<object>) =>
        this.handleSend(call, callback),
      InstallSnapshot: (
        call: grpc.ServerReadableStream<unknown, object>,
        callback: grpc.sendUnaryData<object>,
      ) => this.handleInstallSnapshot(call, callback),
    };
    server.addService(definition, impl);
    for (const extra of this.services) server.addService(extra.definition, extra.implementation);
    this.server = server;
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(this.listen, this.credentials.server(), (err, p) => (err ? reject(err) : resolve(p)));
    }).catch((err: unknown) => {
      this.server = null;
      server.forceShutdown();
      throw err;
    });
    if (this.closed) throw new Error('transport closed while starting');
    const host = this.listen.slice(0, this.listen.lastIndexOf(':'));
    const address = `${host}:${port}`;
    if (this.advertise === undefined && !WILDCARD_HOSTS.has(host)) this.advertise = address;
    this.log.info({ address }, 'raft transport listening');
    this.boundAddress = address;
    return address;
  }

  send(address: string, msg: Message): void {
    if (this.closed) {
      this.stats.dropped++;
      return;
    }
    let queued: QueuedMessage;
    try {
      const wire = encodeMessage(msg);
      if (wire.type === 'snapshot') throw new WireError('snapshot messages go through sendSnapshot');
      queued = { wire, size: encodedSizeBound(msg), to: msg.to };
    } catch (err) {
      this.stats.dropped++;
      this.log.error({ err, address }, 'dropping an invalid outbound raft message');
      return;
    }
    if (queued.size + BATCH_OVERHEAD > this.maxMessageBytes) {
      // The receiver would refuse the frame and tear down the stream with everything behind it.
      this.stats.dropped++;
      this.log.error(
        { address, to: queued.to, type: queued.wire.type, bytes: queued.size, limit: this.maxMessageBytes },
        'dropping a raft message larger than maxMessageBytes',
      );
      return;
    }
    const peer = this.peer(address);
    peer.lastTo = queued.to;
    if (peer.call === null && Date.now() < peer.retryAt) {
      this.stats.dropped++;
      this.reportUnreachable(queued.to);
      return;
    }
    if (peer.queue.length >= this.maxQueued) {
      // Dropping the newest keeps what is queued a contiguous prefix of what the core sent, which is
      // what a follower can still use; the core learns through onUnreachable to back off.
      this.stats.dropped++;
      if (!peer.overflowing) {
        peer.overflowing = true;
        this.log.warn({ address, queued: peer.queue.length }, 'raft peer queue full, dropping messages');
      }
      this.reportUnreachable(queued.to);
      return;
    }
    peer.queue.push(queued);
    if (!peer.flushScheduled) {
      peer.flushScheduled = true;
      // Deferred so everything the driver sends in this tick goes out as one frame.
      queueMicrotask(() => this.flush(peer));
    }
  }

  async sendSnapshot(
    address: string,
    msg: SnapshotMessage,
    chunks: AsyncIterable<Uint8Array>,
  ): Promise<void> {
    if (this.closed) throw new Error('transport is closed');
    const header = encodeSnapshotHeader(msg);
    const client = new grpc.Client(address, this.credentials.client(address), this.channelOptions());
    const started = Date.now();
    try {
      const bytes = await this.streamSnapshot(client, address, header, chunks);
      this.stats.snapshotsSent++;
      this.log.info(
        { address, to: msg.to, index: msg.snapshot.index, bytes, ms: Date.now() - started },
        'raft snapshot sent',
      );
    } catch (err) {
      this.stats.snapshotsFailed++;
      this.log.warn({ err, address, to: msg.to, index: msg.snapshot.index }, 'raft snapshot send failed');
      throw err;
    } finally {
      client.close();
    }
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    // Let what the core already sent (a TimeoutNow before a leader steps down, say) reach the peers.
    const pending: Promise<void>[] = [];
    for (const peer of this.peers.values()) {
      if (peer.queue.length > 0 && peer.writable) this.flush(peer);
      if (peer.call !== null) {
        peer.call.end();
        pending.push(peer.callDone);
      }
    }
    this.closed = true;
    for (const abort of this.snapshotSends) abort(new Error('transport closed'));
    if (pending.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(pending),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, this.closeGraceMs);
        }),
      ]);
      clearTimeout(timer);
    }
    for (const peer of this.peers.values()) {
      this.stats.dropped += peer.queue.length;
      peer.queue = [];
      const call = peer.call;
      peer.call = null;
      call?.cancel();
      peer.client?.close();
      peer.client = null;
    }
    this.peers.clear();
    this.server?.forceShutdown();
    this.server = null;
    this.log.debug('raft transport closed');
  }

  private channelOptions(): grpc.ChannelOptions {
    return {
      'grpc.max_send_message_length': this.maxMessageBytes,
      'grpc.max_receive_message_length': this.maxMessageBytes,
      // Each channel gets its own connection; otherwise a fresh channel could be handed a pooled subchannel
      // still sitting in grpc's own reconnect backoff, overriding ours.
      'grpc.use_local_subchannel_pool': 1,
      // Raft retries at its own level; grpc's retry buffer would only hold a second copy of every message.
      'grpc.enable_retries': 0,
      'grpc.enable_http_proxy': 0,
      // Detects a peer that vanished without a FIN, which would otherwise stall the stream silently.
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
    };
  }

  private peer(address: string): Peer {
    let peer = this.peers.get(address);
    if (peer === undefined) {
      peer = {
        address,
        client: null,
        call: null,
        callDone: Promise.resolve(),
        writable: true,
        queue: [],
        flushScheduled: false,
        failures: 0,
        retryAt: 0,
        lastTo: '',
        overflowing: false,
      };
      this.peers.set(address, peer);
    }
    return peer;
  }

  private flush(peer: Peer): void {
    peer.flushScheduled = false;
    if (this.closed || peer.queue.length === 0 || !peer.writable) return;
    let call: grpc.ClientWritableStream<WireBatch>;
    try {
      call = peer.call ?? this.openStream(peer);
    } catch (err) {
      // A target grpc cannot parse, or credentials that cannot be built: as good as unreachable.
      this.peerFailed(peer, null, errorMessage(err));
      return;
    }
    while (peer.queue.length > 0) {
      const messages = this.takeBatch(peer);
      this.stats.sent += messages.length;
      this.stats.batches++;
      if (!call.write({ messages })) {
        peer.writable = false;
        call.once('drain', () => {
          if (peer.call !== call) return;
          peer.writable = true;
          this.flush(peer);
        });
        return;
      }
    }
    peer.overflowing = false;
  }

  /** Takes the longest prefix of the queue that fits one frame (always at least one message). */
  private takeBatch(peer: Peer): WireMessage[] {
    const queue = peer.queue;
    let bytes = BATCH_OVERHEAD + queue[0].size;
    let n = 1;
    while (n < queue.length && bytes + queue[n].size <= this.maxMessageBytes) {
      bytes += queue[n].size;
      n++;
    }
    return queue.splice(0, n).map((q) => q.wire);
  }

  private openStream(peer: Peer): grpc.ClientWritableStream<WireBatch> {
    const svc = loadRaftService();
    peer.client ??= new grpc.Client(
      peer.address,
      this.credentials.client(peer.address),
      this.channelOptions(),
    );
    let done: () => void = () => {};
    peer.callDone = new Promise<void>((resolve) => {
      done = resolve;
    });
    const metadata = versionMetadata();
    if (this.advertise !== undefined) metadata.set(ADDRESS_METADATA_KEY, this.advertise);
    const call: grpc.ClientWritableStream<WireBatch> = peer.client.makeClientStreamRequest<WireBatch, object>(
      SEND_PATH,
      svc.Send.requestSerialize,
      svc.Send.responseDeserialize,
      metadata,
      {},
      (err) => {
        done();
        this.onStreamEnd(peer, call, err);
      },
    );
    // The server sends its headers as soon as it has accepted the stream: the peer is reachable again.
    call.on('metadata', () => {
      if (peer.call === call) peer.failures = 0;
    });
    // Failures arrive through the callback; this only keeps a stray stream error from being unhandled.
    call.on('error', (err) => this.log.debug({ err, address: peer.address }, 'raft stream error'));
    peer.call = call;
    peer.writable = true;
    return call;
  }

  private onStreamEnd(
    peer: Peer,
    call: grpc.ClientWritableStream<WireBatch>,
    err: grpc.ServiceError | null,
  ): void {
    if (peer.call !== call) return;
    peer.call = null;
    peer.writable = true;
    if (this.closed) return;
    if (err === null) {
      // The server ended the stream cleanly; anything still queued goes out on a new one.
      if (peer.queue.length > 0) this.flush(peer);
      return;
    }
    this.peerFailed(peer, err.code, err.details);
  }

  /** Drops the peer's queue, backs off, and reports it unreachable. `code` is null for a local failure. */
  private peerFailed(peer: Peer, code: grpc.status | null, details: string): void {
    this.stats.streamFailures++;
    const dropped = peer.queue.splice(0);
    this.stats.dropped += dropped.length;
    peer.failures++;
    const delay = this.backoffDelay(peer.failures);
    peer.retryAt = Date.now() + delay;
    // A fresh channel on reconnect: grpc's own reconnect backoff (1 s growing to 120 s) is far slower than
    // what Raft wants for a peer that restarts.
    peer.client?.close();
    peer.client = null;
    const fields = {
      address: peer.address,
      code: code === null ? null : grpc.status[code],
      details,
      failures: peer.failures,
      retryInMs: Math.round(delay),
      dropped: dropped.length,
    };
    if (code === null) this.log.error(fields, 'cannot open a raft stream');
    else if (REJECTIONS.has(code)) this.log.error(fields, 'raft peer stream rejected');
    else if (peer.failures === 1) this.log.warn(fields, 'raft peer unreachable');
    else this.log.debug(fields, 'raft peer still unreachable');
    this.reportUnreachable(peer.lastTo);
    for (const q of dropped) this.reportUnreachable(q.to);
  }

  private backoffDelay(failures: number): number {
    const { initialMs, maxMs } = this.backoff;
    const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(failures - 1, 30));
    // Jittered within [ceiling/2, ceiling] so peers that lost the same server do not reconnect in lockstep.
    return ceiling / 2 + (Math.random() * ceiling) / 2;
  }

  private reportUnreachable(serverId: string): void {
    if (serverId === '') return;
    if (this.unreachable.size === 0) {
      // Deferred: the driver may be inside send() and should not be re-entered.
      queueMicrotask(() => {
        const ids = [...this.unreachable];
        this.unreachable.clear();
        if (this.closed) return;
        for (const id of ids) {
          try {
            this.onUnreachable?.(id);
          } catch (err) {
            this.log.error({ err, serverId: id }, 'onUnreachable threw');
          }
        }
      });
    }
    this.unreachable.add(serverId);
  }

  private streamSnapshot(
    client: grpc.Client,
    address: string,
    header: WireSnapshotChunk,
    chunks: AsyncIterable<Uint8Array>,
  ): Promise<number> {
    const svc = loadRaftService();
    const chunkBytes = Math.min(SNAPSHOT_CHUNK_BYTES, this.maxMessageBytes - 1024);
    return new Promise<number>((resolve, reject) => {
      let settled = false;
      let total = 0;
      let timer: NodeJS.Timeout | undefined;
      const wakers = new Set<() => void>();
      const settle = (err: Error | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.snapshotSends.delete(abort);
        for (const wake of wakers) wake();
        if (err) reject(err);
        else resolve(total);
      };
      const call = client.makeClientStreamRequest<WireSnapshotChunk, object>(
        SNAPSHOT_PATH,
        svc.InstallSnapshot.requestSerialize,
        svc.InstallSnapshot.responseDeserialize,
        versionMetadata(),
        {},
        (err) => {
          settle(
            err
              ? new Error(`snapshot to ${address} failed: ${grpc.status[err.code]}: ${err.details}`, {
                  cause: err,
                })
              : null,
          );
        },
      );
      call.on('error', () => {});
      const abort = (reason: Error) => {
        settle(reason);
        call.cancel();
      };
      this.snapshotSends.add(abort);
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(
          () =>
            abort(
              new Error(`snapshot to ${address} timed out: no progress for ${this.snapshotTimeoutMs} ms`),
            ),
          this.snapshotTimeoutMs,
        );
      };
      const write = async (chunk: WireSnapshotChunk) => {
        if (!call.write(chunk) && !settled) {
          await new Promise<void>((wake) => {
            const done = () => {
              wakers.delete(done);
              call.off('drain', done);
              wake();
            };
            wakers.add(done);
            call.once('drain', done);
          });
        }
        // Not once settled: a stray timer would hold the process open for the whole timeout.
        if (!settled) arm();
      };
      const pump = async () => {
        arm();
        await write(header);
        let sent = 0;
        for await (const chunk of chunks) {
          if (settled) return;
          for (let off = 0; off < chunk.byteLength && !settled; off += chunkBytes) {
            const data = chunk.subarray(off, off + chunkBytes);
            sent += data.byteLength;
            await write({ data });
          }
        }
        if (settled) return;
        total = sent;
        await write({ trailer: { totalBytes: sent } });
        call.end();
      };
      pump().catch((err: unknown) => abort(err instanceof Error ? err : new Error(String(err))));
    });
  }

  private handleSend(
    call: grpc.ServerReadableStream<unknown, object>,
    callback: grpc.sendUnaryData<object>,
  ): void {
    const peer = call.getPeer();
    if (!this.acceptVersion(call, callback, peer)) return;
    call.sendMetadata(versionMetadata());
    const advertised = call.metadata.get(ADDRESS_METADATA_KEY);
    const fromAddress = advertised.length === 1 ? parseAdvertisedAddress(String(advertised[0])) : undefined;
    if (advertised.length > 0 && fromAddress === undefined) {
      this.log.debug({ peer }, 'ignoring an invalid advertised raft address');
    }
    let received = 0;
    let finished = false;
    call.on('data', (frame: unknown) => {
      if (finished) return;
      let messages: Message[];
      try {
        messages = this.decodeFrame(frame, decodeBatch);
      } catch (err) {
        finished = true;
        const rejection = this.reject(err, peer, 'Send');
        callback({ code: rejection.code, details: rejection.message });
        return;
      }
      const handler = this.handler;
      for (const msg of messages) {
        received++;
        this.stats.received++;
        try {
          handler?.onMessage(msg, fromAddress);
        } catch (err) {
          this.log.error({ err, from: msg.from, type: msg.type }, 'raft message handler threw');
        }
      }
    });
    call.on('end', () => {
      if (finished) return;
      finished = true;
      callback(null, { received });
    });
    call.on('cancelled', () => {
      finished = true;
    });
    call.on('error', (err) => {
      finished = true;
      this.log.debug({ err, peer }, 'inbound raft stream error');
    });
  }

  private handleInstallSnapshot(
    call: grpc.ServerReadableStream<unknown, object>,
    callback: grpc.sendUnaryData<object>,
  ): void {
    const peer = call.getPeer();
    if (!this.acceptVersion(call, callback, peer)) return;
    call.sendMetadata(versionMetadata());
    call.on('error', (err) => this.log.debug({ err, peer }, 'inbound snapshot stream error'));
    const frames: AsyncIterator<unknown> = call[Symbol.asyncIterator]();
    this.receiveSnapshot(frames, peer).then(
      () => {
        this.stats.snapshotsReceived++;
        callback(null, {});
      },
      (err: unknown) => {
        this.stats.snapshotsFailed++;
        const rejection =
          err instanceof CallRejection
            ? err
            : new CallRejection(grpc.status.ABORTED, `snapshot install failed: ${errorMessage(err)}`);
        this.log.warn(
          { peer, code: grpc.status[rejection.code], err: rejection.message },
          'raft snapshot rejected',
        );
        callback({ code: rejection.code, details: rejection.message });
      },
    );
  }

  private async receiveSnapshot(frames: AsyncIterator<unknown>, peer: string): Promise<void> {
    const first = await frames.next();
    if (first.done)
      throw new CallRejection(grpc.status.INVALID_ARGUMENT, 'snapshot stream ended before its header');
    const head = this.decodeFrame(first.value, decodeSnapshotChunk);
    if (head.part !== 'header') {
      this.stats.invalid++;
      throw new CallRejection(grpc.status.INVALID_ARGUMENT, 'snapshot stream must start with its header');
    }
    const msg = head.msg;
    this.log.info({ peer, from: msg.from, index: msg.snapshot.index }, 'receiving raft snapshot');
    const decode = (frame: unknown): SnapshotPart => this.decodeFrame(frame, decodeSnapshotChunk);
    const countInvalid = () => this.stats.invalid++;
    async function* data(): AsyncGenerator<Uint8Array> {
      let total = 0;
      for (;;) {
        const next = await frames.next();
        if (next.done) {
          throw new CallRejection(grpc.status.INVALID_ARGUMENT, 'snapshot stream ended without its trailer');
        }
        const part = decode(next.value);
        if (part.part === 'data') {
          total += part.data.byteLength;
          yield part.data;
        } else if (part.part === 'trailer') {
          if (part.totalBytes !== total) {
            countInvalid();
            throw new CallRejection(
              grpc.status.DATA_LOSS,
              `snapshot trailer says ${part.totalBytes} bytes, received ${total}`,
            );
          }
          return;
        } else {
          countInvalid();
          throw new CallRejection(grpc.status.INVALID_ARGUMENT, 'a second snapshot header');
        }
      }
    }
    if (this.handler === null) throw new CallRejection(grpc.status.UNAVAILABLE, 'not started');
    await this.handler.onSnapshot(msg, data());
  }

  /** Unwraps a deserialized frame and decodes it; counts and rethrows any rejection as a CallRejection. */
  private decodeFrame<T>(frame: unknown, decode: (v: unknown) => T): T {
    if (frame instanceof RejectedFrame) {
      if (frame.code === grpc.status.RESOURCE_EXHAUSTED) this.stats.oversized++;
      else this.stats.invalid++;
      throw new CallRejection(frame.code, frame.reason);
    }
    try {
      return decode(frame);
    } catch (err) {
      this.stats.invalid++;
      if (err instanceof WireError) throw new CallRejection(grpc.status.INVALID_ARGUMENT, err.message);
      throw new CallRejection(grpc.status.INTERNAL, errorMessage(err));
    }
  }

  private reject(err: unknown, peer: string, method: string): CallRejection {
    const rejection =
      err instanceof CallRejection ? err : new CallRejection(grpc.status.INTERNAL, errorMessage(err));
    this.log.warn(
      { peer, method, code: grpc.status[rejection.code], err: rejection.message },
      'rejected raft frame',
    );
    return rejection;
  }

  private acceptVersion(
    call: grpc.ServerReadableStream<unknown, object>,
    callback: grpc.sendUnaryData<object>,
    peer: string,
  ): boolean {
    const values = call.metadata.get(PROTOCOL_METADATA_KEY);
    const got = values.length === 1 ? String(values[0]).slice(0, 32) : null;
    if (got === String(RAFT_PROTOCOL_VERSION)) return true;
    this.stats.versionRejected++;
    const details =
      got === null
        ? `missing ${PROTOCOL_METADATA_KEY} metadata; this server speaks raft protocol ${RAFT_PROTOCOL_VERSION}`
        : `raft protocol version mismatch: peer speaks ${got}, this server speaks ${RAFT_PROTOCOL_VERSION}`;
    this.log.warn({ peer, version: got }, details);
    callback({ code: grpc.status.FAILED_PRECONDITION, details });
    return false;
  }
}
