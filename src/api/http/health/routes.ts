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
import { blockingRead, filtered, filterParam, flag, nodeMetaParam, params } from '../read.ts';

const STATES = new Set(['any', 'passing', 'warning', 'critical', 'maintenance']);

export function healthRoutes(): Router {
  const router = new Router();

  router.get('/v1/health/node/:node', async (ctx: ApiContext) => {
    const filter = filterParam(ctx, CHECK_FIELDS);
    const rows = await blockingRead(ctx, 'health.node', { node: ctx.params.node });
    ctx.body = filtered(rows.map(presentCheck), filter);
  });

  router.get('/v1/health/checks/:service', async (ctx: ApiContext) => {
    const filter = filterParam(ctx, CHECK_FIELDS);
    const rows = await blockingRead(ctx, 'health.checks', { service: ctx.params.service });
    ctx.body = filtered(rows.map(presentCheck), filter);
  });

  router.get('/v1/health/state/:state', async (ctx: ApiContext) => {
    const state = ctx.params.state;
    if (!STATES.has(state)) throw badRequest(`Invalid state "${state}"`);
    const filter = filterParam(ctx, CHECK_FIELDS);
    const rows = await blockingRead(ctx, 'health.state', { state: state as HealthStatus | 'any' });
    ctx.body = filtered(rows.map(presentCheck), filter);
  });

  router.get('/v1/health/service/:service', async (ctx: ApiContext) => {
    const filter = filterParam(ctx, SERVICE_ENTRY_FIELDS);
    const tags = params(ctx, 'tag');
    const entries = await blockingRead(ctx, 'health.service', {
      service: ctx.params.service,
      ...(tags.length ? { tags } : {}),
      passingOnly: flag(ctx, 'passing'),
      nodeMeta: nodeMetaParam(ctx),
    });
    const rows = entries.map((r) => ({
      Node: presentNode(r.node),
      Service: presentService(r.service),
      Checks: r.checks.map(presentCheck),
    }));
    ctx.body = filtered(rows, filter);
  });

  return router;
}
