/**
 * What the HTTP API needs from "the catalog", whichever agent it runs on: a server answers from
 * its own Raft node (forwarding to the leader when needed), a client agent forwards everything to
 * a server over RPC. Routes depend on this interface only.
 */

import type { QueryArgs, QueryName, QueryResult } from '../catalog/queries.ts';
import type { CatalogCommand, CommandResult, SessionRow } from '../catalog/types.ts';

export type Consistency = 'default' | 'consistent' | 'stale';

export interface ReadOptions {
  consistency: Consistency;
  /** With `stale`: a server that has not heard from the leader for longer forwards to it. */
  maxStaleMs?: number;
  /** `?index=`: 0 does not block. */
  minIndex: number;
  /** `?wait=` in ms, already capped by the edge. */
  waitMs: number;
  signal?: AbortSignal;
}

export interface ReadReply<T> {
  index: number;
  result: T;
  knownLeader: boolean;
  /** Ms since the answering server heard from the leader (0 on the leader). */
  lastContactMs: number;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A command as the edge builds it; the server stamps `now` when it proposes. */
export type CommandInput = DistributiveOmit<CatalogCommand, 'now'>;

export interface WriteReply {
  index: number;
  result: CommandResult;
}

export interface RaftServerView {
  ID: string;
  Node: string;
  Address: string;
  Leader: boolean;
  Voter: boolean;
  ProtocolVersion: string;
}

export interface RaftConfigurationReply {
  Servers: RaftServerView[];
  Index: number;
}

export interface AutopilotServerHealth {
  ID: string;
  Name: string;
  Address: string;
  SerfStatus: string;
  Version: string;
  Leader: boolean;
  LastContact: string;
  LastTerm: number;
  LastIndex: number;
  Healthy: boolean;
  Voter: boolean;
  StableSince: string;
}

export interface AutopilotHealthReply {
  Healthy: boolean;
  FailureTolerance: number;
  Servers: AutopilotServerHealth[];
}

export interface CatalogBackend {
  write(cmd: CommandInput, signal?: AbortSignal): Promise<WriteReply>;
  read<N extends QueryName>(
    name: N,
    args: QueryArgs<N>,
    opts: ReadOptions,
  ): Promise<ReadReply<QueryResult<N>>>;
  /** `PUT /v1/session/renew/:id` (handled by the leader, which owns TTL timers); null if unknown. */
  renewSession(id: string): Promise<SessionRow | null>;
  raftConfiguration(): Promise<RaftConfigurationReply>;
  /** `DELETE /v1/operator/raft/peer` by ID or address. */
  removePeer(target: { id?: string; address?: string }): Promise<void>;
  autopilotHealth(): Promise<AutopilotHealthReply>;
  /** `/v1/status/leader`: the leader's server RPC address, '' when none is known. */
  leader(): Promise<string>;
  /** `/v1/status/peers`: the voters' server RPC addresses. */
  peers(): Promise<string[]>;
  /** `GET /v1/snapshot`: the catalog snapshot of the leader, as chunks, and its index. */
  snapshot(): Promise<{ index: number; chunks: Uint8Array[] }>;
}
