import type { Message, SnapshotMessage } from './types.ts';

/** What the transport hands inbound traffic to (the driver). */
export interface TransportHandler {
  /**
   * A message arrived. Called in arrival order per peer. `fromAddress` is the sender's advertised
   * Raft address when the transport knows it: a server that is not yet in our configuration (a new
   * leader, a candidate) can then be answered.
   */
  onMessage(msg: Message, fromAddress?: string): void;
  /**
   * A snapshot is being streamed in. The handler stores the chunks and, once they are durable, steps
   * `msg` into the core. Rejecting tells the sender the install failed.
   */
  onSnapshot(msg: SnapshotMessage, chunks: AsyncIterable<Uint8Array>): Promise<void>;
}

/**
 * Moves Raft messages between servers. Delivery is best effort: Raft tolerates loss, duplication
 * and reordering, so `send` never blocks the core and never throws for an unreachable peer.
 */
export interface RaftTransport {
  /** Starts listening; resolves with the bound address "host:port". */
  start(handler: TransportHandler): Promise<string>;
  /** Queues `msg` for the server at `address`; drops it (and reports unreachable) if that peer is down. */
  send(address: string, msg: Message): void;
  /** Streams a snapshot; resolves once the receiver has stored it, rejects on failure. */
  sendSnapshot(address: string, msg: SnapshotMessage, chunks: AsyncIterable<Uint8Array>): Promise<void>;
  /** Called when a peer could not be reached, so the leader can stop pipelining to it. */
  onUnreachable?: (serverId: string) => void;
  close(): Promise<void>;
}
