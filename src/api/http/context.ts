/**
 * What routes see: `ctx.state.agent`, the narrow view of the agent the HTTP API needs (ARCHITECTURE:
 * api depends on agent through narrow interfaces only).
 */

import type { Context } from 'koa';
import type { Logger } from 'pino';
import type { CatalogBackend, WriteReply } from '../../agent/backend.ts';
import type { ResolvedConfig } from '../../agent/config/load.ts';
import type { Member } from '../../agent/gossip/core/types.ts';
import type { UserEvents } from '../../agent/gossip/user-events.ts';
import type { LocalState } from '../../agent/local/state.ts';
import type { AgentMetrics } from '../../agent/metrics.ts';
import { HttpError } from './errors.ts';

export interface AgentApi {
  readonly catalog: CatalogBackend;
  readonly datacenter: string;
  readonly nodeName: string;
  readonly nodeId: string;
  /**
   * The agent itself, for `/v1/agent/*` (local services and checks, members, leave, reload,
   * metrics). Optional so that apps built for catalog-only tests need not provide it; those
   * routes answer 404 without it.
   */
  readonly local?: LocalAgentApi;
  /** Gossip membership and user events (`/v1/agent/members|join|force-leave`, `/v1/event/*`). */
  readonly gossip?: GossipApi;
}

/** What the HTTP API needs from the agent's gossip (implemented by `agent/agent.ts`). */
export interface GossipApi {
  members(): Member[];
  /** Joins through the addresses; resolves with how many answered, rejects (JoinError) if none. */
  join(addrs: string[]): Promise<number>;
  /** Serf's force-leave of a failed member (prune: forget it now); false if it is unknown. */
  forceLeave(name: string, prune: boolean): boolean;
  /** Whether this agent has left the pool (its own member shows `leaving`). */
  readonly left: boolean;
  readonly events: UserEvents;
}

/** What `/v1/agent/*` needs from the running agent (implemented by `agent/local/local-agent.ts`). */
export interface LocalAgentApi {
  readonly state: LocalState;
  readonly metrics: AgentMetrics;
  /** The configuration the agent started with. */
  readonly config: ResolvedConfig;
  /** Clock ms at start. */
  readonly startedAt: number;
  readonly logger: Logger;
  /** `Stats` of `/v1/agent/self`: section → key → value, all strings (Consul's shape). */
  stats(): Promise<Record<string, Record<string, string>>>;
  /** Graceful leave; the agent stops once `beforeStop` settles (so the HTTP answer goes out first). */
  leave(opts?: { beforeStop?: Promise<unknown> }): Promise<void>;
  /** Re-reads the configuration; throws `ConfigError` (and changes nothing) when it is bad. */
  reload(): Promise<void>;
  /** Resolves once the local state is on disk (nothing to wait for without a data dir). */
  persisted(): Promise<void>;
}

export interface ApiState {
  agent: AgentApi;
}

export type ApiContext = Context & { state: ApiState };

/** A write's outcome: its value, or the state's refusal as a 4xx with Consul's words. */
export function writeValue(reply: WriteReply): unknown {
  const r = reply.result;
  if (!r.ok) throw new HttpError(r.status ?? 400, r.error);
  return r.value;
}
