/**
 * What routes see: `ctx.state.agent`, the narrow view of the agent the HTTP API needs (ARCHITECTURE:
 * api depends on agent through narrow interfaces only).
 */

import type { Context } from 'koa';
import type { CatalogBackend, WriteReply } from '../../agent/backend.ts';
import { HttpError } from './errors.ts';

export interface AgentApi {
  readonly catalog: CatalogBackend;
  readonly datacenter: string;
  readonly nodeName: string;
  readonly nodeId: string;
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
