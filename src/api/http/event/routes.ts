/**
 * `/v1/event/fire/:name` and `/v1/event/list` (Consul's event endpoint, agent/event_endpoint.go).
 *
 * - fire: the raw request body is the payload; `?node`, `?service`, `?tag` are the filters
 *   (regular expressions). The answer is the event as Consul returns it. An event over the size
 *   limit is a 413 and a filter that does not compile a 400 (Consul answers both with 500; they
 *   are the caller's mistakes).
 * - list: the events this agent kept, oldest first, `?name` narrowing them; `X-Consul-Index` is
 *   derived from the last event's ID, and `?index=` with it blocks until another event arrives
 *   or `?wait` passes, as Consul's list does.
 */

import Router from '@koa/router';
import { eventIndex, USER_EVENT_SIZE_LIMIT, UserEventError } from '../../../agent/gossip/user-events.ts';
import { parseGoDuration } from '../../wire/duration.ts';
import { readRawBody } from '../body.ts';
import type { ApiContext, GossipApi } from '../context.ts';
import { badRequest, HttpError, notFound } from '../errors.ts';
import { checkDatacenter, clientGone, DEFAULT_WAIT_MS, MAX_WAIT_MS, param } from '../read.ts';

function gossipOf(ctx: ApiContext): GossipApi {
  const g = ctx.state.agent.gossip;
  if (!g) throw notFound(`404 page not found: ${ctx.method} ${ctx.path}`);
  return g;
}

/** Consul's list index is a uint64: compared as text, parsed only to reject garbage. */
function indexParam(ctx: ApiContext): string | undefined {
  const v = param(ctx, 'index');
  if (v === undefined || v === '') return undefined;
  if (!/^\d{1,20}$/.test(v) || BigInt(v) > 0xffff_ffff_ffff_ffffn)
    throw badRequest(`Invalid index: ${JSON.stringify(v)}`);
  return BigInt(v).toString();
}

function waitParam(ctx: ApiContext): number {
  const text = param(ctx, 'wait');
  if (text === undefined || text === '') return DEFAULT_WAIT_MS;
  let ms: number;
  try {
    ms = parseGoDuration(text);
  } catch {
    throw badRequest(`Invalid wait time: ${JSON.stringify(text)}`);
  }
  if (ms < 0) throw badRequest(`Invalid wait time: ${JSON.stringify(text)}`);
  return Math.min(ms, MAX_WAIT_MS);
}

export function eventRoutes(): Router {
  const router = new Router();

  router.put(/^\/v1\/event\/fire\/(.*)$/, async (ctx: ApiContext) => {
    const gossip = gossipOf(ctx);
    checkDatacenter(ctx, ctx.state.agent.datacenter);
    const name = decodeURIComponent(ctx.path.slice('/v1/event/fire/'.length));
    if (name === '') throw badRequest('Missing name');
    // Read a little past the limit so the 413 can say how big the event was.
    const payload = await readRawBody(ctx, USER_EVENT_SIZE_LIMIT * 16).catch((err: unknown) => {
      throw new HttpError(
        413,
        `user event exceeds configured limit of ${USER_EVENT_SIZE_LIMIT} bytes: ${(err as Error).message}`,
      );
    });
    try {
      ctx.body = gossip.events.fire({
        name,
        payload,
        nodeFilter: param(ctx, 'node') ?? '',
        serviceFilter: param(ctx, 'service') ?? '',
        tagFilter: param(ctx, 'tag') ?? '',
      });
    } catch (err) {
      if (err instanceof UserEventError) throw new HttpError(err.status, err.message);
      throw err;
    }
  });

  router.get('/v1/event/list', async (ctx: ApiContext) => {
    const gossip = gossipOf(ctx);
    const name = param(ctx, 'name');
    const minIndex = indexParam(ctx);
    const waitMs = waitParam(ctx);
    const read = () => {
      const events = gossip.events.list(name);
      const last = events.at(-1);
      return { events, index: last ? eventIndex(last.ID) : '0' };
    };
    let r = read();
    if (minIndex !== undefined && minIndex !== '0' && r.index === minIndex) {
      const signal = clientGone(ctx);
      const deadline = Date.now() + waitMs + Math.floor(Math.random() * (waitMs / 16));
      while (r.index === minIndex && !signal.aborted) {
        const left = deadline - Date.now();
        if (left <= 0) break;
        await gossip.events.waitForEvent(left, signal);
        r = read();
      }
    }
    ctx.set('X-Consul-Index', r.index);
    ctx.body = r.events;
  });

  return router;
}
