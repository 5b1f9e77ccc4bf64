/**
 * `/v1/operator/raft/configuration`, `DELETE /v1/operator/raft/peer?id=|address=`,
 * `/v1/operator/autopilot/health`, and `GET /v1/snapshot`.
 */

import Router from '@koa/router';
import type { ApiContext } from '../context.ts';
import { badRequest } from '../errors.ts';
import { checkDatacenter, param } from '../read.ts';

export function operatorRoutes(): Router {
  const router = new Router();
  router.get('/v1/operator/raft/configuration', async (ctx: ApiContext) => {
    checkDatacenter(ctx, ctx.state.agent.datacenter);
    ctx.body = await ctx.state.agent.catalog.raftConfiguration();
  });
  router.delete('/v1/operator/raft/peer', async (ctx: ApiContext) => {
    checkDatacenter(ctx, ctx.state.agent.datacenter);
    const id = param(ctx, 'id');
    const address = param(ctx, 'address');
    if (!id && !address)
      throw badRequest("Must specify either ?id with the server's ID or ?address with IP:port");
    await ctx.state.agent.catalog.removePeer(id ? { id } : { address });
    ctx.status = 200;
    ctx.body = '';
  });
  router.get('/v1/operator/autopilot/health', async (ctx: ApiContext) => {
    checkDatacenter(ctx, ctx.state.agent.datacenter);
    const health = await ctx.state.agent.catalog.autopilotHealth();
    // Consul answers 429 when the cluster is unhealthy, so load balancers can probe it.
    ctx.status = health.Healthy ? 200 : 429;
    ctx.body = health;
  });
  router.get('/v1/snapshot', async (ctx: ApiContext) => {
    checkDatacenter(ctx, ctx.state.agent.datacenter);
    const { index, chunks } = await ctx.state.agent.catalog.snapshot();
    ctx.set('X-Consul-Index', String(Math.max(1, index)));
    ctx.type = 'application/x-meshd-snapshot';
    ctx.body = Buffer.concat(chunks);
  });
  return router;
}
