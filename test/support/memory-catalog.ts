/**
 * A CatalogBackend without Raft: commands apply straight to a CatalogState at increasing indexes,
 * reads run the real named queries and blocking-query loop. For route tests that want no server
 * (test/support/api-server.ts gives a real one when the Raft path matters).
 */

import type {
  AutopilotHealthReply,
  CatalogBackend,
  CommandInput,
  RaftConfigurationReply,
  ReadOptions,
  ReadReply,
  WriteReply,
} from '../../src/agent/backend.ts';
import { type QueryArgs, type QueryName, type QueryResult, runQuery } from '../../src/catalog/queries.ts';
import { CatalogState } from '../../src/catalog/state.ts';
import type { CatalogCommand, SessionRow } from '../../src/catalog/types.ts';
import { blockingQuery } from '../../src/catalog/watch.ts';

export class MemoryCatalog implements CatalogBackend {
  readonly state = new CatalogState();
  /** What raftConfiguration and peers report. */
  servers: RaftConfigurationReply['Servers'] = [];
  readonly #now: (index: number) => number;
  #index = 0;

  /** `now` stamps each command (by its index, for deterministic tests); the wall clock by default. */
  constructor(opts: { now?: (index: number) => number } = {}) {
    this.#now = opts.now ?? (() => Date.now());
  }

  /** Applies a command at the next index, synchronously. */
  apply(cmd: CommandInput): WriteReply {
    const index = ++this.#index;
    const result = this.state.apply(index, { ...cmd, now: this.#now(index) } as CatalogCommand);
    return { index, result };
  }

  async write(cmd: CommandInput): Promise<WriteReply> {
    return this.apply(cmd);
  }

  async read<N extends QueryName>(
    name: N,
    args: QueryArgs<N>,
    opts: ReadOptions,
  ): Promise<ReadReply<QueryResult<N>>> {
    const r = await blockingQuery({
      minIndex: opts.minIndex,
      waitMs: opts.waitMs,
      signal: opts.signal,
      registry: this.state.watches,
      run: () => runQuery(this.state, name, args),
      random: () => 0,
    });
    return { index: r.index, result: r.result, knownLeader: true, lastContactMs: 0 };
  }

  async renewSession(id: string): Promise<SessionRow | null> {
    const row = this.state.sessions.get(id);
    return row ? structuredClone(row) : null;
  }

  async raftConfiguration(): Promise<RaftConfigurationReply> {
    return { Servers: this.servers, Index: 1 };
  }

  async removePeer(): Promise<void> {}

  async autopilotHealth(): Promise<AutopilotHealthReply> {
    return { Healthy: true, FailureTolerance: 0, Servers: [] };
  }

  async leader(): Promise<string> {
    return this.servers.find((s) => s.Leader)?.Address ?? '127.0.0.1:8300';
  }

  async peers(): Promise<string[]> {
    return this.servers.map((s) => s.Address);
  }

  async snapshot(): Promise<{ index: number; chunks: Uint8Array[] }> {
    return { index: 0, chunks: [] };
  }
}
