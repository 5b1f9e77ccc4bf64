/**
 * Client side of the server RPC: one gRPC channel per server address, unary JSON calls with a
 * deadline, cancellation through an AbortSignal (an HTTP client that goes away cancels its
 * forwarded blocking query on the server too).
 */

import * as grpc from '@grpc/grpc-js';
import {
  MAX_RPC_BYTES,
  RPC_SERVICE,
  type RpcEnvelope,
  RpcError,
  type RpcMethod,
  rpcServiceDefinition,
} from './service.ts';

const ClientCtor = grpc.makeGenericClientConstructor(rpcServiceDefinition(), RPC_SERVICE);

export interface RpcClientOptions {
  credentials?: (address: string) => grpc.ChannelCredentials;
}

export class RpcClient {
  readonly #clients = new Map<string, grpc.Client>();
  readonly #credentials: (address: string) => grpc.ChannelCredentials;
  #closed = false;

  constructor(opts: RpcClientOptions = {}) {
    this.#credentials = opts.credentials ?? (() => grpc.credentials.createInsecure());
  }

  /**
   * Calls `method` on the server at `address`. Resolves with the value, rejects with
   * {@link RpcError}: the server's refusal as sent, or `unavailable` when the server cannot be
   * reached, or `timeout` past `timeoutMs`.
   */
  call<T>(
    address: string,
    method: RpcMethod,
    request: unknown,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<T> {
    if (this.#closed) return Promise.reject(new RpcError('unavailable', 'RPC client closed'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    const client = this.#client(address);
    return new Promise<T>((resolve, reject) => {
      const deadline = new Date(Date.now() + timeoutMs);
      const fn = (
        client as unknown as Record<
          string,
          grpc.requestCallback<unknown> & ((...a: unknown[]) => grpc.ClientUnaryCall)
        >
      )[method];
      let onAbort: (() => void) | undefined;
      const call = fn.call(
        client,
        request,
        new grpc.Metadata(),
        { deadline },
        (err: grpc.ServiceError | null, reply: unknown) => {
          if (onAbort) signal?.removeEventListener('abort', onAbort);
          if (signal?.aborted) {
            reject(signal.reason);
            return;
          }
          if (err) {
            reject(
              err.code === grpc.status.DEADLINE_EXCEEDED
                ? new RpcError('timeout', `RPC ${method} to ${address} timed out`)
                : new RpcError(
                    'unavailable',
                    `RPC ${method} to ${address} failed: ${err.details || err.message}`,
                  ),
            );
            return;
          }
          const env = reply as RpcEnvelope<T> & { error?: { status?: number } };
          if (env?.ok === true) resolve(env.value);
          else if (env?.ok === false)
            reject(new RpcError(env.error.kind, env.error.message, env.error.status));
          else reject(new RpcError('internal', `RPC ${method} to ${address}: malformed reply`));
        },
      );
      if (signal) {
        onAbort = () => call.cancel();
        signal.addEventListener('abort', onAbort, { once: true });
      }
    });
  }

  close(): void {
    this.#closed = true;
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }

  #client(address: string): grpc.Client {
    let c = this.#clients.get(address);
    if (!c) {
      c = new ClientCtor(address, this.#credentials(address), {
        'grpc.max_receive_message_length': MAX_RPC_BYTES,
        'grpc.max_send_message_length': MAX_RPC_BYTES,
        // Reconnect fast after a server restart: the default backoff reaches 2 min.
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 2000,
      });
      this.#clients.set(address, c);
    }
    return c;
  }
}
