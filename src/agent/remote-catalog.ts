/**
 * The catalog as a client agent sees it: every read and write forwarded over the server RPC to
 * one of the known servers (sticky while it answers, the next one when it does not), which
 * forwards to the leader when needed.
 *
 * Retries across failures: reads, and writes whose repetition cannot change the outcome (a plain
 * KV set or delete, a registration, a deregistration, a session destroy), are retried on the next
 * server when one is unreachable or has no leader yet. A CAS, a lock, a txn or a session create
 * is retried only when the server said `not-leader` (then it was never proposed), since a
 * connection that broke mid-call may have delivered it.
 */

import type { Logger } from 'pino';
import type { QueryArgs, QueryName, QueryResult } from '../catalog/queries.ts';
import type { SessionRow } from '../catalog/types.ts';
import type {
  AutopilotHealthReply,
  CatalogBackend,
  CommandInput,
  RaftConfigurationReply,
  ReadOptions,
  ReadReply,
  WriteReply,
} from './backend.ts';
import type { RpcClient } from './rpc/client.ts';
import { RpcError, type RpcMethod } from './rpc/service.ts';

const CALL_TIMEOUT_MS = 35_000;
const BLOCKING_SLACK_MS = 15_000;
/** Total time spent retrying one request across servers before answering "No cluster leader". */
const RETRY_BUDGET_MS = 10_000;
/** Longest wait between two tries of one request. */
const MAX_RETRY_WAIT_MS = 250;

function idempotent(cmd: CommandInput): boolean {
  switch (cmd.type) {
    case 'kv':
      return cmd.op.Verb === 'set' || cmd.op.Verb === 'delete' || cmd.op.Verb === 'delete-tree';
    case 'register':
    case 'deregister':
    case 'session-destroy':
    case 'tombstone-reap':
      return true;
    default:
      return false;
  }
}

export class RemoteCatalog implements CatalogBackend {
  readonly #rpc: RpcClient;
  readonly #servers: () => string[];
  readonly #log: Logger;
  #preferred = 0;

  /** `servers` is read on every call, so the list can change (gossip will feed it). */
  constructor(rpc: RpcClient, servers: () => string[], logger: Logger) {
    this.#rpc = rpc;
    this.#servers = servers;
    this.#log = logger.child({ component: 'rpc-client' });
  }

  write(cmd: CommandInput, signal?: AbortSignal): Promise<WriteReply> {
    return this.#call<WriteReply>('Apply', { command: cmd }, CALL_TIMEOUT_MS, idempotent(cmd), signal);
  }

  read<N extends QueryName>(
    name: N,
    args: QueryArgs<N>,
    opts: ReadOptions,
  ): Promise<ReadReply<QueryResult<N>>> {
    const { signal, ...wire } = opts;
    return this.#call('Query', { name, args, opts: wire }, opts.waitMs + BLOCKING_SLACK_MS, true, signal);
  }

  renewSession(id: string): Promise<SessionRow | null> {
    return this.#call('RenewSession', { id }, CALL_TIMEOUT_MS, true);
  }

  raftConfiguration(): Promise<RaftConfigurationReply> {
    return this.#call('RaftConfiguration', {}, CALL_TIMEOUT_MS, true);
  }

  async removePeer(target: { id?: string; address?: string }): Promise<void> {
    await this.#call('RemovePeer', target, CALL_TIMEOUT_MS, false);
  }

  autopilotHealth(): Promise<AutopilotHealthReply> {
    return this.#call('AutopilotHealth', {}, CALL_TIMEOUT_MS, true);
  }

  async leader(): Promise<string> {
    const info = await this.#call<{ leaderAddress: string }>('Info', {}, CALL_TIMEOUT_MS, true);
    return info.leaderAddress;
  }

  async peers(): Promise<string[]> {
    const c = await this.raftConfiguration();
    return c.Servers.filter((s) => s.Voter)
      .map((s) => s.Address)
      .sort();
  }

  async snapshot(): Promise<{ index: number; chunks: Uint8Array[] }> {
    const r = await this.#call<{ index: number; data: string }>('Snapshot', {}, CALL_TIMEOUT_MS, true);
    return { index: r.index, chunks: [new Uint8Array(Buffer.from(r.data, 'base64'))] };
  }

  async #call<T>(
    method: RpcMethod,
    request: unknown,
    timeoutMs: number,
    retryUnavailable: boolean,
    signal?: AbortSignal,
  ): Promise<T> {
    const deadline = Date.now() + RETRY_BUDGET_MS;
    let lastError: unknown = new RpcError('unavailable', 'No known Consul servers');
    for (let attempt = 0; ; attempt++) {
      const servers = this.#servers();
      if (servers.length === 0) throw new RpcError('unavailable', 'No known Consul servers');
      const address = servers[this.#preferred % servers.length];
      try {
        return await this.#rpc.call<T>(address, method, request, timeoutMs, signal);
      } catch (err) {
        if (signal?.aborted) throw err;
        lastError = err;
        const retryable =
          err instanceof RpcError &&
          (err.kind === 'not-leader' || (retryUnavailable && err.kind === 'unavailable'));
        if (!retryable || Date.now() > deadline) throw err;
        if (err.kind === 'unavailable') {
          this.#log.debug({ server: address, err: err.message }, 'server unavailable; trying the next');
          this.#preferred++;
        }
        // Back off a little so an election can finish: 50, 100, 200, then every 250 ms. Until the
        // survivors of a dead leader elect another (~1-1.5 s), each forwards to the dead one and
        // answers `unavailable`; with a backoff that grew to 1 s, a write through a client waited
        // up to a second more after the new leader was there (2.6 s instead of 1.6 s in all).
        await new Promise((r) => setTimeout(r, Math.min(MAX_RETRY_WAIT_MS, 50 * 2 ** Math.min(attempt, 3))));
        if (Date.now() > deadline) throw lastError;
      }
    }
  }
}
