/**
 * `/v1/health/*` (Consul's health endpoint): node/:node, checks/:service, service/:service
 * (`passing`, `tag`, `node-meta`, `filter`), state/:state.
 */

import Router from '@koa/router';
import type { HealthStatus } from '../../../catalog/types.ts';
import { CHECK_FIELDS, SERVICE_ENTRY_FIELDS } from '../catalog/filter-fields.ts';
import { presentCheck, presentNode, presentService } from '../catalog/present.ts';
import type { ApiContext } from '../context.ts';
import { badRequest } from '../errors.ts';
import {
  checkDatacenter,
  filtered,
  filterParam,
  nodeMetaParam,
  param,
  params,
  readOptions,
  setReadHeaders,
} from '../read.ts';

const STATES = new Set(['any', 'passing', 'warning', 'critical', 'maintenance']);

export function healthRoutes(): Router {
  const router = new Router();

  router.get('/v1/health/node/:node', async (ctx: ApiContext) => {
    const { agent } = ctx.state;
    checkDatacenter(ctx, agent.datacenter);
    const filter = filterParam(ctx, CHECK_FIELDS);
    const opts = readOptions(ctx);
    const reply = await agent.catalog.read('health.node', { node: ctx.params.node }, opts);
    setReadHeaders(ctx, reply, opts.consistency);
    ctx.body = filtered(reply.result.map(presentCheck), filter);
  });

  router.get('/v1/health/checks/:service', async (ctx: ApiContext) => {
    const { agent } = ctx.state;
    checkDatacenter(ctx, agent.datacenter);
    const filter = filterParam(ctx, CHECK_FIELDS);
    const opts = readOptions(ctx);
    const reply = await agent.catalog.read('health.checks', { service: ctx.params.service }, opts);
    setReadHeaders(ctx, reply, opts.consistency);
    ctx.body = filtered(reply.result.map(presentCheck), filter);
  });

  router.get('/v1/health/state/:state', async (ctx: ApiContext) => {
    const { agent } = ctx.state;
    checkDatacenter(ctx, agent.datacenter);
    const state = ctx.params.state;
    if (!STATES.has(state)) throw badRequest(`Invalid state "${state}"`);
    const filter = filterParam(ctx, CHECK_FIELDS);
    const opts = readOptions(ctx);
    const reply = await agent.catalog.read('health.state', { state: state as HealthStatus | 'any' }, opts);
    setReadHeaders(ctx, reply, opts.consistency);
    ctx.body = filtered(reply.result.map(presentCheck), filter);
  });

  const serviceRoute = (connect: boolean) => async (ctx: ApiContext) => {
    const { agent } = ctx.state;
    checkDatacenter(ctx, agent.datacenter);
    const filter = filterParam(ctx, SERVICE_ENTRY_FIELDS);
    const opts = readOptions(ctx);
    const passing = param(ctx, 'passing');
    const tags = params(ctx, 'tag');
    const reply = await agent.catalog.read(
      'health.service',
      {
        service: ctx.params.service,
        ...(tags.length ? { tags } : {}),
        passingOnly: passing !== undefined && passing !== 'false' && passing !== '0',
        nodeMeta: nodeMetaParam(ctx),
      },
      opts,
    );
    setReadHeaders(ctx, reply, opts.consistency);
    const rows = reply.result
      .filter((r) => !connect || r.service.Kind === 'connect-proxy' || r.service.Connect?.Native === true)
      .map((r) => ({
        Node: presentNode(r.node),
        Service: presentService(r.service),
        Checks: r.checks.map(presentCheck),
      }));
    ctx.body = filtered(rows, filter);
  };
  router.get('/v1/health/service/:service', serviceRoute(false));

  return router;
}
