/**
 * The query parameters and response headers every catalog read shares (Consul's `parseWait`,
 * `parseConsistency` and `setMeta`): `index`, `wait`, `stale`, `consistent`, `max_stale`, `dc`
 * in; `X-Consul-Index`, `X-Consul-KnownLeader`, `X-Consul-LastContact`,
 * `X-Consul-Effective-Consistency` out.
 */

import type { ServerResponse } from 'node:http';
import type { ParsedUrlQuery } from 'node:querystring';
import type { Consistency, ReadOptions, ReadReply } from '../../agent/backend.ts';
import type { QueryArgs, QueryName, QueryResult } from '../../catalog/queries.ts';
import { type CompiledFilter, compileFilter, type FieldSpec } from '../filter/index.ts';
import { parseGoDuration } from '../wire/duration.ts';
import type { ApiContext } from './context.ts';
import { badRequest } from './errors.ts';

/**
 * What these helpers need from a request: koa's context has it, and so has the koa-free read path
 * (direct.ts).
 */
export interface QueryView {
  readonly query: ParsedUrlQuery;
}
export interface RequestView extends QueryView {
  readonly res: ServerResponse;
}
/** Where response headers go. */
export interface HeaderSink {
  set(name: string, value: string): void;
}

/** Consul's defaults: a blocking query waits 5 minutes unless told, and never more than 10. */
export const DEFAULT_WAIT_MS = 5 * 60_000;
export const MAX_WAIT_MS = 10 * 60_000;

/** One query parameter as a string ('' for a bare flag like `?recurse`), or undefined. */
export function param(ctx: QueryView, name: string): string | undefined {
  const v = ctx.query[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? (v[0] ?? '') : v;
}

/** Every value of a repeatable parameter (`?tag=a&tag=b`). */
export function params(ctx: QueryView, name: string): string[] {
  const v = ctx.query[name];
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

export function flag(ctx: QueryView, name: string): boolean {
  const v = param(ctx, name);
  return v !== undefined && v !== 'false' && v !== '0';
}

/** A non-negative integer parameter; a malformed one is a 400 naming it. */
export function uintParam(ctx: QueryView, name: string, what = `?${name}`): number | undefined {
  const v = param(ctx, name);
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v)))
    throw badRequest(`Invalid ${what}: ${JSON.stringify(v)}`);
  return Number(v);
}

/** `?node-meta=key:value` pairs (repeatable), as Consul parses them. */
export function nodeMetaParam(ctx: QueryView): Record<string, string> | undefined {
  const pairs = params(ctx, 'node-meta');
  if (pairs.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const at = p.indexOf(':');
    if (at < 0) out[p] = '';
    else out[p.slice(0, at)] = p.slice(at + 1);
  }
  return out;
}

/** Checks `?dc`: meshd serves one datacenter (WAN federation is not there yet). */
export function checkDatacenter(ctx: QueryView, datacenter: string): void {
  const dc = param(ctx, 'dc');
  if (dc !== undefined && dc !== '' && dc !== datacenter) throw badRequest(`No path to datacenter "${dc}"`);
}

/**
 * The read parameters of a request. A blocking read (`?index=` > 0) also gets a signal that fires
 * when the client goes away, so a parked query stops; other reads skip that cost.
 */
export function readOptions(ctx: RequestView): ReadOptions {
  const stale = param(ctx, 'stale') !== undefined;
  const consistent = param(ctx, 'consistent') !== undefined;
  if (stale && consistent) throw badRequest('Cannot specify ?stale with ?consistent, conflicting semantics.');
  const consistency: Consistency = stale ? 'stale' : consistent ? 'consistent' : 'default';
  const minIndex = uintParam(ctx, 'index', 'index') ?? 0;
  const waitText = param(ctx, 'wait');
  let waitMs = DEFAULT_WAIT_MS;
  if (waitText !== undefined && waitText !== '') {
    try {
      waitMs = parseGoDuration(waitText);
    } catch {
      throw badRequest(`Invalid wait time: ${JSON.stringify(waitText)}`);
    }
    if (waitMs < 0) throw badRequest(`Invalid wait time: ${JSON.stringify(waitText)}`);
  }
  waitMs = Math.min(waitMs, MAX_WAIT_MS);
  const maxStaleText = param(ctx, 'max_stale');
  let maxStaleMs: number | undefined;
  if (maxStaleText !== undefined && maxStaleText !== '') {
    try {
      maxStaleMs = parseGoDuration(maxStaleText);
    } catch {
      throw badRequest(`Invalid max_stale value: ${JSON.stringify(maxStaleText)}`);
    }
  }
  return {
    consistency: maxStaleMs !== undefined && consistency === 'default' ? 'stale' : consistency,
    maxStaleMs,
    minIndex,
    waitMs,
    signal: minIndex > 0 ? clientGone(ctx) : undefined,
  };
}

/** An AbortSignal that fires when the HTTP client goes away (so a parked query stops). */
export function clientGone(ctx: RequestView): AbortSignal {
  const ac = new AbortController();
  const onClose = (): void => {
    if (!ctx.res.writableEnded) ac.abort(new DOMException('client went away', 'AbortError'));
  };
  ctx.res.once('close', onClose);
  return ac.signal;
}

export function setReadHeaders(
  ctx: HeaderSink,
  reply: Pick<ReadReply<unknown>, 'index' | 'knownLeader' | 'lastContactMs'>,
  consistency: Consistency,
): void {
  ctx.set('X-Consul-Index', String(Math.max(1, reply.index)));
  ctx.set('X-Consul-KnownLeader', reply.knownLeader ? 'true' : 'false');
  ctx.set('X-Consul-LastContact', String(Math.round(reply.lastContactMs)));
  ctx.set('X-Consul-Effective-Consistency', consistency === 'default' ? 'leader' : consistency);
}

/**
 * `?filter=` compiled against the endpoint's fields: call it before the read, so a bad expression
 * is a 400 at once rather than after a blocking query's wait.
 */
export function filterParam(ctx: QueryView, fields: FieldSpec): CompiledFilter | undefined {
  const expression = param(ctx, 'filter');
  if (expression === undefined || expression === '') return undefined;
  return compileFilter(expression, { fields });
}

/** The rows a compiled filter keeps (all of them without one). */
export function filtered<T>(rows: T[], filter: CompiledFilter | undefined): T[] {
  return filter ? rows.filter((row) => filter.matches(row)) : rows;
}

/**
 * A catalog read as every read route makes it: `?dc` checked, the read run with the request's
 * consistency and blocking parameters, Consul's headers set. Returns the query's result.
 */
export async function blockingRead<N extends QueryName>(
  ctx: ApiContext,
  name: N,
  args: QueryArgs<N>,
): Promise<QueryResult<N>> {
  const { agent } = ctx.state;
  checkDatacenter(ctx, agent.datacenter);
  const opts = readOptions(ctx);
  const reply = await agent.catalog.read(name, args, opts);
  setReadHeaders(ctx, reply, opts.consistency);
  return reply.result;
}
