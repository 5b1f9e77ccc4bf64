/**
 * libp2p's TCP transport with each connection's writes batched per event-loop turn.
 *
 * Under noise, every yamux frame leaves as two buffers (a 2-byte length and the ciphertext), and
 * @libp2p/tcp hands each to `socket.write` on its own: with TCP_NODELAY that is one `write(2)` and
 * one segment per buffer. A gossip agent sends many small frames (gossipsub messages, control,
 * yamux window updates), so its CPU went largely to system calls: `writeBuffer` was the largest
 * single item (19% of busy time) in a profile of a join seed at N = 50, and on a VM each system
 * call is dear. Here the socket is corked at a connection's first write in a turn and uncorked
 * when the turn's I/O callbacks are done (`setImmediate`), so everything written meanwhile goes
 * out as one `writev(2)`, as Node's own HTTP does for a response's head and body.
 *
 * Semantics are the transport's: the same bytes in the same order, back-pressure reported the same
 * way (`write` returning false stops the batch, and the stream resumes on 'drain'). Only the
 * moment the kernel sees them moves, by at most the rest of the turn. Connections that are not
 * TCP sockets (none today) are left alone.
 */

import { Socket } from 'node:net';
import type { Transport, Upgrader } from '@libp2p/interface';
import { type TCPComponents, type TCPOptions, tcp } from '@libp2p/tcp';

/** The part of @libp2p/tcp's connection that the batching replaces. */
interface TcpMaConn {
  socket?: unknown;
  sendData(data: Iterable<Uint8Array>): { sentBytes: number; canSendMore: boolean };
}

/** Replaces `maConn.sendData` with a corking one (when maConn is over a TCP socket). */
export function batchWrites(maConn: TcpMaConn): void {
  const socket = maConn.socket;
  if (!(socket instanceof Socket)) return;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  maConn.sendData = (data) => {
    if (!corked && !socket.destroyed) {
      corked = true;
      socket.cork();
      setImmediate(uncork);
    }
    let sentBytes = 0;
    let canSendMore = true;
    for (const buf of data) {
      sentBytes += buf.byteLength;
      canSendMore = socket.write(buf);
      if (!canSendMore) break;
    }
    return { sentBytes, canSendMore };
  };
}

/** `target` with some of its methods replaced; every other property read from it as is. */
function overriding<T extends object>(target: T, overrides: Partial<T>): T {
  return new Proxy(target, {
    get(t, prop) {
      if (Object.hasOwn(overrides, prop)) return overrides[prop as keyof T];
      const value = Reflect.get(t, prop, t);
      return typeof value === 'function' ? value.bind(t) : value;
    },
  });
}

/** An upgrader that batches each new connection's writes before upgrading it. */
function batchingUpgrader(upgrader: Upgrader): Upgrader {
  type Inbound = Parameters<Upgrader['upgradeInbound']>;
  type Outbound = Parameters<Upgrader['upgradeOutbound']>;
  return overriding(upgrader, {
    upgradeInbound: (maConn: Inbound[0], opts: Inbound[1]) => {
      batchWrites(maConn as unknown as TcpMaConn);
      return upgrader.upgradeInbound(maConn, opts);
    },
    upgradeOutbound: (maConn: Outbound[0], opts: Outbound[1]) => {
      batchWrites(maConn as unknown as TcpMaConn);
      return upgrader.upgradeOutbound(maConn, opts);
    },
  });
}

/** `tcp(init)`, with writes batched on every connection it dials or accepts. */
export function batchedTcp(init?: TCPOptions): (components: TCPComponents) => Transport {
  const factory = tcp(init);
  return (components) => {
    const transport = factory(components);
    return overriding(transport, {
      dial: (ma: Parameters<Transport['dial']>[0], opts: Parameters<Transport['dial']>[1]) =>
        transport.dial(ma, { ...opts, upgrader: batchingUpgrader(opts.upgrader) }),
      createListener: (opts: Parameters<Transport['createListener']>[0]) =>
        transport.createListener({ ...opts, upgrader: batchingUpgrader(opts.upgrader) }),
    });
  };
}
