/**
 * The server RPC service (Consul's server port, 8300, shared with Raft): client agents and
 * followers forward catalog writes and reads to a server, and servers discover each other for
 * `-bootstrap-expect` through it until gossip lands.
 *
 * Messages are JSON (commands and query results are JSON already: KV values travel base64), each
 * unary call answering an envelope: `{ok: true, value}` or `{ok: false, error: {kind, message}}`.
 * Transport failures stay gRPC errors; refusals by the server travel in the envelope, so a client
 * can tell "try another server" from "your request is wrong". Inbound JSON is parsed with a size
 * limit and validated by each handler's zod schema (the RPC edge, like HTTP's).
 */

import type * as grpc from '@grpc/grpc-js';

export const RPC_SERVICE = 'meshd.rpc.v1.Server';

/** Why a server refused: `not-leader` and `unavailable` mean another server may succeed. */
export type RpcErrorKind = 'not-leader' | 'unavailable' | 'bad-request' | 'timeout' | 'conflict' | 'internal';

export type RpcEnvelope<T> =
  | { ok: true; value: T }
  | { ok: false; error: { kind: RpcErrorKind; message: string } };

/** A refusal that a handler throws and the client rethrows, kind and message intact. */
export class RpcError extends Error {
  override readonly name = 'RpcError';
  readonly kind: RpcErrorKind;
  /** HTTP status the edge should answer for a `bad-request`/`conflict` refusal. */
  readonly status: number | undefined;
  constructor(kind: RpcErrorKind, message: string, status?: number) {
    super(message);
    this.kind = kind;
    this.status = status;
  }
}

/** Largest RPC message: a txn or KV value of 512 KiB base64-encoded, with room to spare. */
export const MAX_RPC_BYTES = 4 * 1024 * 1024;

export const RPC_METHODS = [
  'Apply',
  'Query',
  'Info',
  'Join',
  'RemovePeer',
  'RaftConfiguration',
  'RenewSession',
  'AutopilotHealth',
  'Snapshot',
] as const;
export type RpcMethod = (typeof RPC_METHODS)[number];

const encode = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

function decode(buf: Buffer): unknown {
  if (buf.length > MAX_RPC_BYTES)
    throw new RangeError(`RPC message of ${buf.length} bytes exceeds ${MAX_RPC_BYTES}`);
  return JSON.parse(buf.toString('utf8'));
}

/** The gRPC service definition (unary JSON methods). */
export function rpcServiceDefinition(): grpc.ServiceDefinition {
  return Object.fromEntries(
    RPC_METHODS.map((m) => [
      m,
      {
        path: `/${RPC_SERVICE}/${m}`,
        requestStream: false,
        responseStream: false,
        requestSerialize: encode,
        requestDeserialize: decode,
        responseSerialize: encode,
        responseDeserialize: decode,
      },
    ]),
  );
}

export type RpcHandlers = Record<RpcMethod, (request: unknown, signal: AbortSignal) => Promise<unknown>>;

/** Adapts async handlers to grpc-js: refusals become envelopes, a cancelled call aborts its handler. */
export function rpcImplementation(
  handlers: RpcHandlers,
  onInternalError: (err: unknown, method: RpcMethod) => void,
): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const m of RPC_METHODS) {
    impl[m] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort(new RpcError('unavailable', 'call cancelled')));
      handlers[m](call.request, abort.signal).then(
        (value) => callback(null, { ok: true, value } satisfies RpcEnvelope<unknown>),
        (err: unknown) => {
          if (abort.signal.aborted) return;
          if (err instanceof RpcError) {
            callback(null, {
              ok: false,
              error: { kind: err.kind, message: err.message, ...(err.status ? { status: err.status } : {}) },
            });
            return;
          }
          onInternalError(err, m);
          callback(null, { ok: false, error: { kind: 'internal', message: 'internal server error' } });
        },
      );
    };
  }
  return impl;
}
