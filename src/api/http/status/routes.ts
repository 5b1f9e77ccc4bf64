/** `/v1/status/leader` and `/v1/status/peers` (Consul's status endpoint: server RPC addresses). */

import Router from '@koa/router';
import type { ApiContext } from '../context.ts';
import { checkDatacenter } from '../read.ts';

export function statusRoutes(): Router {
  const router = new Router();
  router.get('/v1/status/leader', async (ctx: ApiContext) => {
    checkDatacenter(ctx, ctx.state.agent.datacenter);
    ctx.body = JSON.stringify(await ctx.state.agent.catalog.leader());
    ctx.type = 'application/json';
  });
  router.get('/v1/status/peers', async (ctx: ApiContext) => {
    checkDatacenter(ctx, ctx.state.agent.datacenter);
    ctx.body = await ctx.state.agent.catalog.peers();
  });
  return router;
}
